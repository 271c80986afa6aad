"""BTHome through the whole stack: fake BlueZ -> real bleak -> hub scanner -> matcher ->
bthome-ble -> discovered -> adopted over the API -> device state and events via the API."""

from __future__ import annotations

from typing import Any

import pytest

from hub.bus import DeviceEvent
from hub.hub import Hub
from tests.discovery import bthome_adv as adv
from tests.discovery.conftest import ENCRYPTED_MAC, KEY, ble_config
from tests.discovery.util import discovered, wait_for
from tests.doubles.bluez import FakeBlueZ

PLAIN_MAC = "A4:C1:38:00:00:01"


@pytest.fixture
def hub_config(fake_bluez: FakeBlueZ) -> dict[str, Any]:
    return ble_config()


async def test_plain_bthome_is_discovered_adopted_and_reports_state(
    api_client, hub: Hub, fake_bluez: FakeBlueZ,
) -> None:
    path = await fake_bluez.add_le_device(
        PLAIN_MAC, "TH Sensor", rssi=-58,
        service_data={adv.BTHOME_UUID: adv.plain(adv.objects(
            packet_id=1, battery=90, temperature=21.5, humidity=40.25))})
    item = await wait_for(lambda: discovered(api_client, "ble-a4c138000001"))
    assert item["source"] == "ble" and item["integration"] == "bthome"
    assert item["addresses"] == [PLAIN_MAC] and item["mac"] == PLAIN_MAC.lower()
    assert item["rssi"] == -58 and item["state"] == "new"
    assert item["data"]["encrypted"] is False
    assert set(item["data"]["sensors"]) == {"battery", "temperature", "humidity"}

    resp = await api_client.post("/api/discovered/ble-a4c138000001/adopt",
                                 json={"name": "Living room", "area": "living"})
    assert resp.status == 201, await resp.text()
    device = (await resp.json())["device"]
    assert device["id"] == "bthome.a4c138000001" and device["area"] == "living"
    assert device["transport"] == "ble" and device["mac"] == PLAIN_MAC

    await fake_bluez.set_advertisement(path, service_data={adv.BTHOME_UUID: adv.plain(
        adv.objects(packet_id=2, battery=89, temperature=22.25, humidity=41.0))})

    async def state() -> dict[str, Any] | None:
        body = await (await api_client.get("/api/devices/bthome.a4c138000001/state")).json()
        attrs = body["attributes"]
        return body if attrs.get("temperature", {}).get("value") == 22.25 else None

    body = await wait_for(state)
    assert body["available"] is True
    assert body["attributes"]["humidity"]["value"] == 41.0
    assert body["attributes"]["battery"]["value"] == 89
    listed = await discovered(api_client, "ble-a4c138000001")
    assert listed is not None and listed["state"] == "adopted"
    assert listed["device_id"] == "bthome.a4c138000001"
    health = await (await api_client.get("/api/health")).json()
    assert health["discovery"]["ble"]["state"] == "scanning"
    assert health["discovery"]["ble"]["adapter"] == "hci0"
    # the fake offers advertisement monitors and every matcher is expressible: passive
    assert health["discovery"]["ble"]["mode"] == "passive"


async def test_encrypted_bthome_decrypts_with_bind_key_and_button_is_an_event(
    api_client, hub: Hub, fake_bluez: FakeBlueZ,
) -> None:
    events: list[DeviceEvent] = []
    hub.bus.subscribe(DeviceEvent, events.append)
    payload = adv.objects(packet_id=5, temperature=19.5, motion=True)
    path = await fake_bluez.add_le_device(
        ENCRYPTED_MAC, "", rssi=-70,
        service_data={adv.BTHOME_UUID: adv.encrypted(payload, ENCRYPTED_MAC, KEY, 1)})
    item = await wait_for(lambda: discovered(api_client, "ble-5448e68f80a5"))
    assert item["data"]["encrypted"] is True and item["data"]["bind_key"] == "ok"
    assert "temperature" in item["data"]["sensors"]
    resp = await api_client.post("/api/discovered/ble-5448e68f80a5/adopt")
    assert resp.status == 201, await resp.text()
    device_id = (await resp.json())["device"]["id"]

    await fake_bluez.set_advertisement(path, service_data={adv.BTHOME_UUID: adv.encrypted(
        adv.objects(packet_id=6, temperature=19.75, motion=False, button="press"),
        ENCRYPTED_MAC, KEY, 2)})

    async def state() -> dict[str, Any] | None:
        body = await (await api_client.get(f"/api/devices/{device_id}/state")).json()
        attrs = body["attributes"]
        return attrs if attrs.get("temperature", {}).get("value") == 19.75 else None

    attrs = await wait_for(state)
    assert attrs["motion"]["value"] is False
    presses = [e for e in events if e.device_id == device_id]
    assert [e.event_type for e in presses] == ["press"]
    assert presses[0].data == {"source": "button"}


async def test_unchanged_repeats_are_not_dispatched_and_rssi_is_tracked(
    hub: Hub, fake_bluez: FakeBlueZ,
) -> None:
    path = await fake_bluez.add_le_device(
        PLAIN_MAC, "S", rssi=-60,
        service_data={adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, battery=50))})
    stats = hub.discovery.stats

    async def enough() -> bool:
        return stats.duplicates >= 3

    await wait_for(enough)
    assert stats.dispatched == 1  # the advertisement repeated every 100 ms went through once
    await fake_bluez.set_advertisement(path, rssi=-45)
    await wait_for(lambda: _rssi_is(hub, -45))
    assert stats.dispatched == 1  # RSSI alone is not new content
    assert hub.discovery.ble_seen(PLAIN_MAC)[0] == -45


async def _rssi_is(hub: Hub, rssi: int) -> bool:
    item = hub.discovery.registry.find("ble-a4c138000001")
    return item is not None and item.rssi == rssi


class TestImprovAndUone:
    @pytest.fixture
    def hub_config(self, fake_bluez: FakeBlueZ) -> dict[str, Any]:
        cfg = ble_config(scanning_mode="active")
        cfg["integrations"].update({"improv": {}, "uone": {}})
        return cfg

    async def test_improv_and_uone_devices_waiting_for_wifi_are_discovered(
        self, api_client, hub: Hub, fake_bluez: FakeBlueZ,
    ) -> None:
        from integrations.uone.advert import FLAG_IMPROV, FLAG_NEEDS_SETUP, build_ble

        await fake_bluez.add_le_device(
            "11:22:33:44:55:66", "Improv-Dev", rssi=-50,
            service_uuids=["00467768-6228-2272-4663-277478268000"],
            service_data={"00004677-0000-1000-8000-00805f9b34fb": bytes([2, 1, 0, 0, 0, 0])})
        await fake_bluez.add_le_device(
            "24:0A:C4:00:00:03", "Uone-0001", rssi=-66,
            manufacturer_data={0xFFFF: build_ble("uone-0000000000000001", "24:0a:c4:00:00:01",
                                                 FLAG_NEEDS_SETUP | FLAG_IMPROV)})
        improv = await wait_for(lambda: discovered(api_client, "ble-112233445566"))
        assert improv["integration"] == "improv" and improv["name"] == "Improv-Dev"
        assert improv["data"] == {"state": "authorized", "capabilities": ["identify"],
                                  "waiting_for_wifi": True}
        uone = await wait_for(lambda: discovered(api_client, "ble-240ac4000003"))
        assert uone["integration"] == "uone" and uone["did"] == "uone-0000000000000001"
        assert uone["mac"] == "24:0a:c4:00:00:01" and uone["rssi"] == -66
        assert uone["data"] == {"on_wifi": False, "needs_setup": True, "improv": True}
        assert hub.discovery.ble.mode == "active"
