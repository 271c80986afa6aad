"""The whole Uone flow through the API against the simulator: fake BlueZ under real bleak
(shared scanner + GATT), mDNS and the local API in the test namespace.

discovered -> provisioned -> on the LAN -> adopted -> verified -> commanded; every fault
ends in a clear `failed` with nothing half-adopted and no credential left on the device."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from hub.hub import Hub
from tests.discovery.util import wait_for
from tests.provisioning.conftest import needs_netns, uone_settings

pytestmark = needs_netns

SSID, PASSWORD = "Home-Net", "correct-horse-battery"
DID = "uone-00000000000000a1"
MAC = "24:0a:c4:00:00:a1"


@pytest.fixture
def hub_config(anchor: Path) -> dict[str, Any]:
    return uone_settings(anchor)


async def discovered_ble(client, did: str) -> dict[str, Any]:
    async def find():
        body = await (await client.get("/api/discovered")).json()
        return next((d for d in body["discovered"]
                     if d["did"] == did and d["source"] == "ble"), None)

    return await wait_for(find, within=10)


async def provision(client, did: str, ssid: str = SSID) -> dict[str, Any]:
    item = await discovered_ble(client, did)
    resp = await client.post(f"/api/discovered/{item['id']}/provision", json={"ssid": ssid})
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert resp.headers["Location"] == f"/api/provisioning/{job['id']}"

    async def final():
        body = await (await client.get(f"/api/provisioning/{job['id']}")).json()
        return body if body["state"] in ("succeeded", "failed") else None

    return await wait_for(final, within=40)


async def add_network(client) -> None:
    resp = await client.put(f"/api/wifi/networks/{SSID}", json={"password": PASSWORD})
    assert resp.status == 200 and (await resp.json())["created"], await resp.text()


async def test_full_flow_discovered_to_commanded(api_client, hub: Hub, simulators) -> None:
    await add_network(api_client)
    ws = await api_client.ws_connect("/api/ws",
                                     headers={"Authorization": f"Bearer {api_client.token}"})
    assert (await ws.receive_json())["type"] == "ready"
    await ws.send_json({"type": "subscribe", "events": ["provisioning"]})
    assert (await ws.receive_json())["type"] == "subscribed"
    sim = await simulators(DID, MAC)
    job = await provision(api_client, DID)
    assert job["state"] == "succeeded", job
    assert job["encrypted"] is True and job["warnings"] == []
    assert job["attestation"]["outcome"] == "verified"
    assert job["attestation"]["did"] == DID and job["attestation"]["mac"] == MAC
    assert PASSWORD not in json.dumps(job)
    # the device holds exactly the vault's credentials, which crossed the air sealed
    assert sim.credentials == {"ssid": SSID, "password": PASSWORD, "security": "wpa2-psk"}
    states = []
    while len(states) < 9:
        msg = await asyncio.wait_for(ws.receive_json(), 5)
        assert msg["type"] == "event" and msg["event"]["type"] == "provisioning"
        assert PASSWORD not in json.dumps(msg)
        states.append(msg["event"]["state"])
    await ws.close()
    assert states == ["pending", "connecting", "reading_certificate", "attesting",
                      "sending_credentials", "joining_wifi", "waiting_for_lan", "adopting",
                      "succeeded"]
    device_id = job["device_id"]
    assert device_id == "uone.00000000000000a1"
    device = await (await api_client.get(f"/api/devices/{device_id}")).json()
    assert (device["did"], device["mac"], device["transport"]) == (DID, MAC, "lan")
    # both sightings (BLE before Wi-Fi, mDNS after) now belong to the device
    listing = (await (await api_client.get("/api/discovered")).json())["discovered"]
    mine = [d for d in listing if d["did"] == DID]
    assert {d["source"] for d in mine} == {"ble", "mdns"}
    assert {d["state"] for d in mine} == {"adopted"}
    # commanded through the API, acknowledged by the device, state recorded
    resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                 json={"command": "turn_on"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["result"]["on"] is True
    assert sim.commands_seen == ["turn_on"]
    assert hub.states.value(device_id, "on") is True
    # state pushed by the device reaches the hub
    sim.set_state(on=False, power=0.0)

    async def pushed():
        return hub.states.value(device_id, "on") is False

    await wait_for(pushed, within=10)
    # the Wi-Fi network shows when it was used, never its password
    nets = await (await api_client.get("/api/wifi/networks")).text()
    assert PASSWORD not in nets and json.loads(nets)["networks"][0]["last_used"]
    # the device drops off the LAN and comes back: reconnected and re-attested
    link = hub.integrations.instance("uone").links[device_id]
    assert link.attestations == 1
    port = sim.lan_port
    await sim.stop_lan()

    async def unavailable():
        return not hub.states.available(device_id)

    await wait_for(unavailable, within=10)
    await sim.start_lan(port)

    async def back():
        return hub.states.available(device_id) and link.attestations == 2

    await wait_for(back, within=15)
    resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                 json={"command": "toggle"})
    assert resp.status == 200 and (await resp.json())["result"]["on"] is True
    rows = await hub.db.fetchall("SELECT action FROM audit WHERE action LIKE 'provisioning.%'")
    assert [r["action"] for r in rows] == ["provisioning.started", "provisioning.succeeded"]


@pytest.mark.parametrize(
    ("faults", "code", "attestation_code", "sent"),
    [
        ({"wrong_key"}, "attestation_failed", "bad_signature", False),
        ({"mac_mismatch"}, "attestation_failed", "mac_mismatch", False),
        ({"expired"}, "attestation_failed", "expired", False),
        ({"not_yet_valid"}, "attestation_failed", "not_yet_valid", False),
        ({"refuse_password"}, "wifi_refused", None, True),
        ({"drop_connection"}, "connection_lost", None, True),
        ({"garbage"}, "protocol_error", None, False),
    ],
)
async def test_faults_end_failed_with_nothing_left(api_client, hub: Hub, simulators, faults,
                                                   code, attestation_code, sent) -> None:
    await add_network(api_client)
    sim = await simulators(DID, MAC, faults)
    job = await provision(api_client, DID)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    assert job["error"]["message"]
    if attestation_code:
        assert job["attestation"]["outcome"] == "failed"
        assert job["attestation"]["code"] == attestation_code
        assert sim.wifi_received == 0, "a device that failed attestation got credentials"
    assert job["credentials_sent"] is sent
    assert sim.credentials is None, "a rejected device kept the Wi-Fi credentials"
    assert hub.devices.by_integration("uone") == []
    assert not await hub.vault.exists("device_key", f"uone:{DID}")
    listing = (await (await api_client.get("/api/discovered")).json())["discovered"]
    assert all(d["state"] != "adopted" for d in listing)
    rows = await hub.db.fetchall(
        "SELECT action, details FROM audit WHERE action LIKE 'provisioning.%' ORDER BY id")
    actions = [r["action"] for r in rows]
    assert actions[0] == "provisioning.started" and actions[-1] == "provisioning.failed"
    if attestation_code:
        assert "provisioning.attestation_failed" in actions
        # a possible breach: the owner is notified and it is in the audit log
        signals = await hub.db.fetchall(
            "SELECT details FROM audit WHERE action = 'signal.attestation_failed'")
        assert len(signals) == 1 and attestation_code in signals[0]["details"]
    assert all(PASSWORD not in r["details"] for r in rows)


async def test_revoked_device_is_refused(config_factory, anchor: Path, simulators) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from hub.api.app import make_app
    from hub.auth.principal import Role

    sim = await simulators(DID, MAC)
    serial = f"{sim.identity.cert.serial_number:x}"
    async with Hub(config_factory(uone_settings(anchor, revoked_serials=[serial]))) as hub:
        user = await hub.auth.create_user("owner", "a long test password 1", Role.OWNER)
        token, _ = await hub.auth.create_token(user.id, "test")
        client = TestClient(TestServer(make_app(hub)),
                            headers={"Authorization": f"Bearer {token}"})
        await client.start_server()
        try:
            await add_network(client)
            job = await provision(client, DID)
        finally:
            await client.close()
        assert job["state"] == "failed" and job["attestation"]["code"] == "revoked"
        assert sim.wifi_received == 0 and hub.devices.by_integration("uone") == []


async def test_bad_provision_requests(api_client, hub: Hub, simulators) -> None:
    sim = await simulators(DID, MAC)
    item = await discovered_ble(api_client, DID)
    url = f"/api/discovered/{item['id']}/provision"
    resp = await api_client.post(url, json={"ssid": "Not-In-Vault"})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "ssid"
    resp = await api_client.post(url, json={"ssid": "x" * 33})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "ssid"
    resp = await api_client.post(url, json={})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "ssid"
    resp = await api_client.post(url, json={"ssid": SSID, "password": "x"})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "password"
    resp = await api_client.post("/api/discovered/nope/provision", json={"ssid": SSID})
    assert resp.status == 404
    resp = await api_client.get("/api/provisioning/nope")
    assert resp.status == 404
    assert sim.wifi_received == 0 and hub.provisioning.jobs() == []


class TestLanTimeout:
    @pytest.fixture
    def hub_config(self, anchor: Path) -> dict[str, Any]:
        return uone_settings(anchor, lan_timeout=1.0)

    async def test_device_never_on_the_lan_is_a_clear_failure(
            self, api_client, hub: Hub, simulators) -> None:
        await add_network(api_client)
        sim = await simulators(DID, MAC, {"silent_lan"})
        job = await provision(api_client, DID)
        assert job["state"] == "failed" and job["error"]["code"] == "lan_timeout"
        assert "did not appear on the LAN" in job["error"]["message"]
        assert job["attestation"]["outcome"] == "verified" and sim.credentials is not None
        assert hub.devices.by_integration("uone") == []
        assert not await hub.vault.exists("device_key", f"uone:{DID}")


class TestWithoutSharedMdns:
    """mDNS discovery switched off: the job browses for the device by itself while it waits."""

    @pytest.fixture
    def hub_config(self, anchor: Path) -> dict[str, Any]:
        cfg = uone_settings(anchor)
        cfg["discovery"]["mdns"] = {"enabled": False, "interfaces": ["lo"]}
        return cfg

    async def test_provisioned_and_adopted(self, api_client, hub: Hub, simulators) -> None:
        await add_network(api_client)
        sim = await simulators(DID, MAC)
        job = await provision(api_client, DID)
        assert job["state"] == "succeeded", job
        result = await hub.integrations.command(job["device_id"], "turn_on", {})
        assert result["on"] is True and sim.commands_seen == ["turn_on"]
