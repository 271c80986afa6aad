"""Adoption, ignoring, auto-adoption, linking mDNS and BLE sightings, transport choice.

Advertisements and services are fed to the discovery service directly (the scanner and
browser are covered by the fake-BlueZ and namespace tests); everything else is real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.bus import AvailabilityChanged
from hub.discovery.models import DiscoveryAdopted, MdnsService
from hub.hub import Hub
from integrations.uone.advert import build_ble
from integrations.uone.factory import FactoryPKI
from integrations.uone.simulator import Simulator, make_identity
from tests.discovery import bthome_adv as adv
from tests.discovery.util import wait_for

DID = "uone-a1b2c3d4e5f60718"
WIFI_MAC = "24:0a:c4:aa:bb:cc"
BLE_ADDR = "24:0A:C4:AA:BB:CE"
TXT = {"did": DID, "mac": WIFI_MAC, "model": "plug-eu-1", "fw": "1.0.0"}
IMPROV_SD = "00004677-0000-1000-8000-00805f9b34fb"


@pytest.fixture(scope="module")
def pki() -> FactoryPKI:
    return FactoryPKI.create()


@pytest.fixture
def hub_config(tmp_path, pki: FactoryPKI) -> dict[str, Any]:
    anchor = tmp_path / "uone-root.pem"  # Uone devices are adopted only if they attest
    anchor.write_bytes(pki.root_pem())
    return {"integrations": {"virtual": {"devices": []}, "uone": {"check_interval": 3600},
                             "bthome": {}, "improv": {}},
            "provisioning": {"trust_anchors": [str(anchor)]}}


@pytest.fixture
async def device_lan(pki: FactoryPKI) -> Any:
    """A genuine Uone device's local API (the simulator), not announced: tests feed mDNS."""
    sim = Simulator(make_identity(pki, DID, WIFI_MAC, set()), lan_host="127.0.0.1")
    await sim.start_lan(announce=False)
    yield sim
    await sim.stop()


def bthome(hub: Hub, address: str, packet: int = 1, **values: Any) -> None:
    hub.discovery.handle_advertisement(
        address, None, -60, (), {adv.BTHOME_UUID: adv.plain(
            adv.objects(packet_id=packet, **(values or {"temperature": 20.0})))}, {})


def uone_service(port: int, host: str = "127.0.0.1", **txt: str) -> MdnsService:
    return MdnsService("_uone._tcp.local.", "Plug._uone._tcp.local.", "plug.local.",
                       (host,), port, {**TXT, **txt})


async def test_adopt_and_ignore_errors_are_4xx(api_client, hub: Hub) -> None:
    bthome(hub, "A4:C1:38:00:00:21")
    bthome(hub, "A4:C1:38:00:00:22")
    hub.discovery.handle_advertisement("A4:C1:38:00:00:23", "Improv", -50, (),
                                       {IMPROV_SD: bytes([1, 3, 0, 0, 0, 0])}, {})
    assert (await api_client.post("/api/discovered/nope/adopt")).status == 404
    resp = await api_client.post("/api/discovered/ble-a4c138000021/adopt",
                                 json={"name": "x", "colour": "red"})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "colour"
    resp = await api_client.post("/api/discovered/ble-a4c138000021/adopt", json={"name": 5})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "name"
    resp = await api_client.post("/api/discovered/ble-a4c138000021/adopt", json={"name": " "})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "name"
    assert hub.devices.find("bthome.a4c138000021") is None  # nothing stored half-way
    assert (await api_client.post("/api/discovered/ble-a4c138000021/adopt")).status == 201
    resp = await api_client.post("/api/discovered/ble-a4c138000021/adopt")
    assert resp.status == 409
    assert (await api_client.post("/api/discovered/ble-a4c138000021/ignore")).status == 409
    resp = await api_client.post("/api/discovered/ble-a4c138000023/adopt")
    assert resp.status == 409 and "does not adopt" in (await resp.json())["error"]["message"]
    improv = (await (await api_client.get("/api/discovered?integration=improv")).json())
    assert improv["discovered"][0]["data"]["state"] == "authorization_required"
    assert improv["discovered"][0]["data"]["waiting_for_wifi"] is True
    resp = await api_client.post("/api/discovered/ble-a4c138000022/ignore")
    assert resp.status == 200 and (await resp.json())["discovered"]["state"] == "ignored"
    listed = await (await api_client.get("/api/discovered?state=ignored")).json()
    assert [d["id"] for d in listed["discovered"]] == ["ble-a4c138000022"]
    resp = await api_client.get("/api/discovered?state=bogus")
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "state"


async def test_decisions_survive_a_restart(config_factory, hub_config) -> None:
    loaded = config_factory(hub_config)
    async with Hub(loaded) as hub:
        bthome(hub, "A4:C1:38:00:00:31")
        bthome(hub, "A4:C1:38:00:00:32")
        await hub.discovery.adopt("ble-a4c138000031")
        await hub.discovery.ignore("ble-a4c138000032")
    async with Hub(loaded) as hub:
        bthome(hub, "A4:C1:38:00:00:31")
        bthome(hub, "A4:C1:38:00:00:32")
        assert hub.discovery.registry.get("ble-a4c138000031").state == "adopted"
        assert hub.discovery.registry.get("ble-a4c138000032").state == "ignored"
        # readings of the adopted sensor flow into its state after the restart
        bthome(hub, "A4:C1:38:00:00:31", packet=2, temperature=23.5)
        assert hub.states.value("bthome.a4c138000031", "temperature") == 23.5
        # removing the device makes its discovery adoptable again
        await hub.devices.remove("bthome.a4c138000031")
        await wait_for(lambda: _state_is(hub, "ble-a4c138000031", "new"))


async def _state_is(hub: Hub, discovery_id: str, state: str) -> bool:
    return hub.discovery.registry.get(discovery_id).state == state


class TestAutoAdopt:
    @pytest.fixture
    def hub_config(self) -> dict[str, Any]:
        return {"discovery": {"auto_adopt": ["bthome"]},
                "integrations": {"virtual": {"devices": []}, "bthome": {}, "uone": {}}}

    async def test_only_the_listed_integration_is_adopted_by_itself(self, hub: Hub) -> None:
        adopted: list[DiscoveryAdopted] = []
        hub.bus.subscribe(DiscoveryAdopted, adopted.append)
        bthome(hub, "A4:C1:38:00:00:41")
        hub.discovery.handle_mdns(uone_service(1))
        await wait_for(lambda: _state_is(hub, "ble-a4c138000041", "adopted"))
        assert hub.devices.find("bthome.a4c138000041") is not None
        assert [e.id for e in adopted] == ["ble-a4c138000041"]
        uone = [d for d in hub.discovery.registry if d.integration == "uone"]
        assert uone and uone[0].state == "new"


async def test_auto_adopt_is_off_by_default(hub: Hub) -> None:
    bthome(hub, "A4:C1:38:00:00:51")
    await asyncio.sleep(0.05)
    assert hub.discovery.registry.get("ble-a4c138000051").state == "new"
    assert hub.devices.find("bthome.a4c138000051") is None


async def test_uone_lan_and_ble_are_linked_and_transport_falls_back(
    api_client, hub: Hub, device_lan: Simulator,
) -> None:
    port = device_lan.lan_port
    try:
        hub.discovery.handle_mdns(uone_service(port))
        hub.discovery.handle_advertisement(BLE_ADDR, "Uone-0718", -61, (), {},
                                           {0xFFFF: build_ble(DID, WIFI_MAC)})
        items = {d.source: d for d in hub.discovery.registry}
        assert items["mdns"].did == items["ble"].did == DID
        registry = hub.discovery.registry
        assert registry.lookup(did=DID, source="mdns") == [items["mdns"]]
        assert {d.id for d in registry.lookup(mac=WIFI_MAC.upper())} == {
            items["mdns"].id, items["ble"].id}
        assert registry.lookup(did=DID, integration="bthome") == []
        assert items["ble"].mac == WIFI_MAC and items["ble"].data["needs_setup"] is True
        resp = await api_client.post(f"/api/discovered/{items['mdns'].id}/adopt",
                                     json={"name": "Plug"})
        assert resp.status == 201, await resp.text()
        device_id = (await resp.json())["device"]["id"]
        assert device_id == "uone.a1b2c3d4e5f60718"
        # both sightings now belong to the device
        assert {d.state for d in hub.discovery.registry} == {"adopted"}
        body = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert body["transport"] == "lan"
        assert body["connectivity"]["transport"] == "lan"
        assert "answered" in body["connectivity"]["reason"]
        assert "fallback" in body["connectivity"]["reason"]
    finally:
        await device_lan.stop_lan()
    # the LAN stops answering: the next check falls back to BLE and says why
    resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                 json={"command": "check_connectivity"})
    assert resp.status == 200, await resp.text()
    body = await (await api_client.get(f"/api/devices/{device_id}")).json()
    assert body["transport"] == "ble"
    assert body["connectivity"]["transport"] == "ble"
    assert "-61 dBm" in body["connectivity"]["reason"]
    assert "did not answer" in body["connectivity"]["reason"]


async def test_mdns_removal_makes_adopted_device_unavailable(
    hub: Hub, device_lan: Simulator,
) -> None:
    changes: list[AvailabilityChanged] = []
    hub.bus.subscribe(AvailabilityChanged, changes.append)
    service = uone_service(device_lan.lan_port)
    hub.discovery.handle_mdns(service)
    item = next(iter(hub.discovery.registry))
    device = await hub.discovery.adopt(item.id)
    assert hub.states.available(device.id) is True
    hub.discovery.handle_mdns(service, removed=True)
    assert hub.states.available(device.id) is False
    hub.discovery.handle_mdns(uone_service(device_lan.lan_port, fw="2.0.0"))
    assert hub.states.available(device.id) is True
    await wait_for(lambda: _fw_is(hub, device.id, "2.0.0"))
    assert [c.available for c in changes if c.device_id == device.id][-2:] == [False, True]


async def _fw_is(hub: Hub, device_id: str, fw: str) -> bool:
    return hub.devices.get(device_id).fw_version == fw
