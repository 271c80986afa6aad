"""The whole Uone flow against the simulator: fake BlueZ (real bleak), mDNS and the local
API in the test namespace: discovered -> provisioned -> on the LAN -> adopted -> verified ->
commanded; every fault ends in a clear `failed` with nothing half-adopted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.hub import Hub
from hub.provisioning.service import ProvisioningUpdate, ProvisionTarget
from tests.provisioning.conftest import needs_netns

pytestmark = needs_netns

SSID, PASSWORD = "Home-Net", "correct-horse-battery"


async def _network(hub: Hub) -> None:
    await hub.provisioning.wifi.put(SSID, PASSWORD, "wpa2-psk")


async def _run(hub: Hub, sim: Any, did: str | None = None) -> Any:
    target = ProvisionTarget(f"ble-{sim.mac.replace(':', '')}", "uone", sim.mac.upper(),
                             did or sim.did, f"Plug {sim.did}")
    job = await hub.provisioning.start_job(target, SSID, "test")
    await asyncio.wait_for(job.done.wait(), 40)
    return job


async def test_full_flow_to_a_commanded_device(uone_hub: Hub, simulators) -> None:
    hub = uone_hub
    await _network(hub)
    events = hub.bus.listen([ProvisioningUpdate])
    sim = await simulators("uone-0001", "a4:c1:38:00:00:01")
    job = await _run(hub, sim)
    assert job.state == "succeeded", job.to_json()
    assert job.encrypted is True and job.credentials_sent is True
    assert job.attestation.outcome == "verified"
    # the device got exactly the vault's credentials, sealed to its key
    assert sim.credentials == {"ssid": SSID, "password": PASSWORD, "security": "wpa2-psk"}
    states = []
    while (ev := events.get_nowait()) is not None:
        states.append(ev.state)
    events.close()
    assert states == ["pending", "connecting", "reading_certificate", "attesting",
                      "sending_credentials", "joining_wifi", "waiting_for_lan", "adopting",
                      "succeeded"]
    device = hub.devices.get(job.device_id)
    assert (device.did, device.mac, device.transport) == ("uone-0001", "a4:c1:38:00:00:01",
                                                          "lan")
    assert hub.states.available(device.id)
    result = await hub.integrations.command(device.id, "turn_on", {})
    assert result["on"] is True and sim.commands_seen == ["turn_on"]
    assert hub.states.value(device.id, "on") is True
    # state pushed by the device reaches the hub
    sim.set_state(on=False, power=0.0)
    for _ in range(100):
        if hub.states.value(device.id, "on") is False:
            break
        await asyncio.sleep(0.02)
    assert hub.states.value(device.id, "on") is False
    # the pinned key and address are in the vault (encrypted), the Wi-Fi marked as used
    assert await hub.vault.exists("device_key", "uone:uone-0001")
    nets = await hub.provisioning.wifi.list()
    assert nets[0].last_used is not None
    # the device drops off and comes back: the hub reconnects and re-attests
    link = hub.integrations.instance("uone").links[device.id]
    assert link.attestations == 1
    port = sim.lan_port
    await sim.stop_lan()
    for _ in range(200):
        if not hub.states.available(device.id):
            break
        await asyncio.sleep(0.02)
    assert not hub.states.available(device.id)
    await sim.start_lan(port)
    for _ in range(400):
        if hub.states.available(device.id):
            break
        await asyncio.sleep(0.02)
    assert hub.states.available(device.id) and link.attestations == 2


@pytest.mark.parametrize(
    ("faults", "code", "attestation_code", "sent"),
    [
        ({"wrong_key"}, "attestation_failed", "bad_signature", False),
        ({"mac_mismatch"}, "attestation_failed", "mac_mismatch", False),
        ({"expired"}, "attestation_failed", "expired", False),
        ({"refuse_password"}, "wifi_refused", None, True),
        ({"drop_connection"}, "connection_lost", None, True),
        ({"garbage"}, "protocol_error", None, False),
    ],
)
async def test_faults_end_failed_with_nothing_left(uone_hub: Hub, simulators, faults,
                                                   code, attestation_code, sent) -> None:
    hub = uone_hub
    await _network(hub)
    sim = await simulators("uone-0002", "a4:c1:38:00:00:02", faults)
    job = await _run(hub, sim)
    assert job.state == "failed", job.to_json()
    assert job.error["code"] == code, job.error
    assert job.error["message"]
    if attestation_code:
        assert job.attestation.outcome == "failed"
        assert job.attestation.code == attestation_code
        assert sim.wifi_received == 0, "a device that failed attestation got credentials"
    assert job.credentials_sent is sent
    assert sim.credentials is None, "a rejected device kept the Wi-Fi credentials"
    assert hub.devices.by_integration("uone") == []
    assert not await hub.vault.exists("device_key", "uone:uone-0002")
    rows = await hub.db.fetchall(
        "SELECT action, details FROM audit WHERE action LIKE 'provisioning.%' ORDER BY id")
    actions = [r["action"] for r in rows]
    assert actions[0] == "provisioning.started" and actions[-1] == "provisioning.failed"
    if attestation_code:
        assert "provisioning.attestation_failed" in actions
    assert all(PASSWORD not in r["details"] for r in rows)


async def test_revoked_device_is_refused(uone_config, simulators, pki) -> None:
    from tests.provisioning.conftest import hygiene

    sim = await simulators("uone-0003", "a4:c1:38:00:00:03")
    serial = f"{sim.identity.cert.serial_number:x}"
    async with hygiene():
        async with Hub(uone_config({"provisioning": {"revoked_serials": [serial]}})) as hub:
            await _network(hub)
            job = await _run(hub, sim)
            assert job.state == "failed" and job.attestation.code == "revoked"
            assert sim.wifi_received == 0 and hub.devices.by_integration("uone") == []


async def test_did_advertised_over_ble_must_match(uone_hub: Hub, simulators) -> None:
    await _network(uone_hub)
    sim = await simulators("uone-0004", "a4:c1:38:00:00:04")
    job = await _run(uone_hub, sim, did="uone-impostor")
    assert job.state == "failed" and job.attestation.code == "did_mismatch"
    assert sim.wifi_received == 0


async def test_device_not_found_is_a_clear_failure(uone_config, fake_bluez) -> None:
    from tests.provisioning.conftest import hygiene

    async with hygiene():
        async with Hub(uone_config({"provisioning": {"ble_timeout": 1.0}})) as hub:
            await _network(hub)
            target = ProvisionTarget("ble-x", "uone", "A4:C1:38:00:00:99", "uone-x")
            job = await hub.provisioning.start_job(target, SSID, "test")
            await asyncio.wait_for(job.done.wait(), 20)
            assert job.state == "failed" and job.error["code"] == "not_found"
            assert "A4:C1:38:00:00:99" in job.error["message"]
