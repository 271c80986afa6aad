"""Adopting a Uone device already on the LAN (from the discovered list): only if it attests
over pinned TLS; a device that fails is never adopted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hub.discovery.models import MdnsService
from hub.hub import Hub
from integrations.uone.factory import FactoryPKI
from integrations.uone.simulator import Simulator, make_identity

DID = "uone-00000000000000b2"
MAC = "24:0a:c4:00:00:b2"


@pytest.fixture
def hub_config(anchor: Path) -> dict[str, Any]:
    return {"integrations": {"virtual": {"devices": []}, "uone": {"check_interval": 3600}},
            "provisioning": {"trust_anchors": [str(anchor)]}}


async def _device(pki: FactoryPKI, faults: set[str], txt_mac: str = MAC) -> tuple[Simulator,
                                                                                  MdnsService]:
    sim = Simulator(make_identity(pki, DID, MAC, faults), faults, lan_host="127.0.0.1")
    await sim.start_lan(announce=False)
    service = MdnsService("_uone._tcp.local.", "Plug._uone._tcp.local.", "plug.local.",
                          ("127.0.0.1",), sim.lan_port,
                          {"did": DID, "mac": txt_mac, "model": "plug", "fw": "1.0.0"})
    return sim, service


async def _adopt(api_client, hub: Hub, service: MdnsService) -> str:
    """Adopt the announced device through the API; its device id."""
    hub.discovery.handle_mdns(service)
    item = next(d for d in hub.discovery.registry if d.did == DID)
    resp = await api_client.post(f"/api/discovered/{item.id}/adopt")
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["device"]["id"])


@pytest.mark.parametrize(("faults", "txt_mac", "words"), [
    ({"wrong_key"}, MAC, "does not verify"),
    ({"expired"}, MAC, "expired"),
    (set(), "24:0a:c4:00:00:ff", "advertises MAC"),
])
async def test_device_that_fails_attestation_is_not_adopted(
        api_client, hub: Hub, pki: FactoryPKI, faults: set[str], txt_mac: str,
        words: str) -> None:
    sim, service = await _device(pki, faults, txt_mac)
    try:
        hub.discovery.handle_mdns(service)
        item = next(d for d in hub.discovery.registry if d.did == DID)
        resp = await api_client.post(f"/api/discovered/{item.id}/adopt")
        assert resp.status == 400, await resp.text()
        assert words in (await resp.json())["error"]["message"]
        assert hub.devices.by_integration("uone") == []
        assert not await hub.vault.exists("device_key", f"uone:{DID}")
        assert hub.discovery.registry.get(item.id).state == "new"
    finally:
        await sim.stop()


async def test_genuine_device_on_the_lan_is_adopted_and_commanded(
        api_client, hub: Hub, pki: FactoryPKI) -> None:
    sim, service = await _device(pki, set())
    try:
        device_id = await _adopt(api_client, hub, service)
        # the state the device sent in its first hello is there at once, before any command
        # (it used to be dropped: the device was registered only after the connection opened)
        resp = await api_client.get(f"/api/devices/{device_id}/state")
        attributes = {k: a["value"] for k, a in (await resp.json())["attributes"].items()}
        assert attributes == {"on": False, "power": 0.0}
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "turn_on"})
        assert resp.status == 200, await resp.text()
        assert sim.commands_seen == ["turn_on"] and sim.state["on"] is True
    finally:
        await sim.stop()


async def test_after_a_restart_the_hub_reconnects_and_re_attests(
        config_factory, hub_config: dict[str, Any], pki: FactoryPKI) -> None:
    sim, service = await _device(pki, set())
    loaded = config_factory(hub_config)
    try:
        async with Hub(loaded) as hub:
            hub.discovery.handle_mdns(service)
            item = next(d for d in hub.discovery.registry if d.did == DID)
            device = await hub.discovery.adopt(item.id)
        async with Hub(loaded) as hub:  # no mDNS this time: the pinned address is used
            link = hub.integrations.instance("uone").links[device.id]
            for _ in range(250):
                if hub.states.available(device.id) and link.attestations == 1:
                    break
                await asyncio.sleep(0.02)
            assert hub.states.available(device.id) and link.attestations == 1
            result = await hub.integrations.command(device.id, "toggle", {})
            assert result["on"] is True
    finally:
        await sim.stop()


@pytest.mark.parametrize("how", ["erase", "delete"])
async def test_erasing_or_deleting_a_device_ends_its_connection_and_its_key(
        api_client, hub: Hub, pki: FactoryPKI, how: str) -> None:
    """Before the fix both left the LAN connection open (and reconnecting) and the vault's
    device_key entry behind."""
    sim, service = await _device(pki, set())
    try:
        device_id = await _adopt(api_client, hub, service)
        assert len(sim._writers) == 1
        assert await hub.vault.exists("device_key", f"uone:{DID}")
        if how == "erase":
            resp = await api_client.post("/api/privacy/erase",
                                         json={"target": "device", "device_id": device_id})
            assert resp.status == 200, await resp.text()
        else:
            resp = await api_client.delete(f"/api/devices/{device_id}")
            assert resp.status == 204, await resp.text()
        for _ in range(100):  # the device notices the hub hung up
            if not sim._writers:
                break
            await asyncio.sleep(0.02)
        assert not sim._writers
        assert not await hub.vault.exists("device_key", f"uone:{DID}")
        assert await hub.vault.entries("device_key") == []
        uone = hub.integrations.instance("uone")
        assert device_id not in uone.links and DID not in uone.adopted
        assert hub.devices.find(device_id) is None
        # nothing reconnects: the device's mDNS announcement comes again, still no link
        hub.discovery.handle_mdns(service)
        await asyncio.sleep(0.2)
        assert not sim._writers and device_id not in uone.links
    finally:
        await sim.stop()
