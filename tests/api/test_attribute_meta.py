"""Attribute metadata (unit, device class, range) from the device's definition, in the device
API, the state answer and websocket state changes (issue 18, point 16)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import make_app
from hub.auth.principal import Role
from hub.bus import EventBus
from hub.clock import SystemClock
from hub.devices import AttributeMeta, Device, DeviceRegistry
from hub.hub import Hub
from tests.conftest import DEFAULT_VIRTUAL, TEST_PASSWORD
from tests.discovery import bthome_adv as adv

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = {"id": "outside", "name": "Outside", "kind": "sensor", "unit": "°C",
           "device_class": "temperature", "min": -40, "max": 85, "initial": 27}


async def signed_in(hub: Hub) -> dict[str, str]:
    user = await hub.auth.create_user("owner", TEST_PASSWORD, Role.OWNER)
    token, _ = await hub.auth.create_token(user.id, "t")
    return {"Authorization": f"Bearer {token}"}


async def test_a_configured_unit_reaches_the_api_and_the_websocket(config_factory) -> None:
    config = config_factory({"integrations": {"virtual": {"devices": [*DEFAULT_VIRTUAL,
                                                                      OUTSIDE]}}})
    async with Hub(config) as hub:
        headers = await signed_in(hub)
        async with TestClient(TestServer(make_app(hub)), headers=headers) as client:
            device = await (await client.get("/api/devices/virtual.outside")).json()
            assert device["attribute_meta"] == {"value": {
                "unit": "°C", "device_class": "temperature", "min": -40, "max": 85}}
            listed = {d["id"]: d for d in
                      (await (await client.get("/api/devices")).json())["devices"]}
            assert listed["virtual.outside"]["attribute_meta"] == device["attribute_meta"]
            assert "attribute_meta" not in listed["virtual.lamp"]  # lean: nothing known
            state = await (await client.get("/api/devices/virtual.outside/state")).json()
            assert state["attributes"]["value"]["value"] == 27
            assert state["attributes"]["value"]["unit"] == "°C"
            lamp = await (await client.get("/api/devices/virtual.lamp/state")).json()
            assert "unit" not in lamp["attributes"]["on"]

            async with client.ws_connect("/api/ws") as ws:
                assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "ready"
                await ws.send_json({"type": "subscribe", "events": ["state_changed"],
                                    "devices": ["virtual.outside", "virtual.lamp"]})
                assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "subscribed"
                hub.states.set("virtual.outside", {"value": 28.5})
                hub.states.set("virtual.lamp", {"on": True})
                first = (await asyncio.wait_for(ws.receive_json(), 10))["event"]
                second = (await asyncio.wait_for(ws.receive_json(), 10))["event"]
            assert (first["device_id"], first["new"], first["unit"]) == (
                "virtual.outside", 28.5, "°C")
            assert second["device_id"] == "virtual.lamp" and "unit" not in second


async def test_bthome_units_come_from_the_format(config_factory) -> None:
    config = config_factory({"integrations": {"virtual": {"devices": []}, "bthome": {}}})
    address = "A4:C1:38:00:00:51"

    def advertise(packet: int, **values: Any) -> None:
        hub.discovery.handle_advertisement(
            address, None, -60, (), {adv.BTHOME_UUID: adv.plain(
                adv.objects(packet_id=packet, **values))}, {})

    async with Hub(config) as hub:
        advertise(1, temperature=21.5, humidity=40.0)
        await hub.discovery.adopt("ble-a4c138000051")
        device = hub.devices.get("bthome.a4c138000051")
        assert device.attribute_meta["temperature"] == AttributeMeta(
            unit="°C", device_class="temperature")
        assert device.attribute_meta["humidity"] == AttributeMeta(
            unit="%", device_class="humidity")
        headers = await signed_in(hub)
        async with TestClient(TestServer(make_app(hub)), headers=headers) as client:
            advertise(2, temperature=22.0, humidity=41.0)
            state = await (await client.get("/api/devices/bthome.a4c138000051/state")).json()
            assert state["attributes"]["temperature"] == {
                **state["attributes"]["temperature"], "value": 22.0, "unit": "°C"}


async def test_metadata_is_stored_with_the_device(hub: Hub) -> None:
    meta = {"power": AttributeMeta(unit="W", device_class="power", minimum=0, step=0.1)}
    hub.devices.add(Device("test.plug", "Plug", "test", attributes=("power", "on"),
                           attribute_meta=meta))
    await hub.db.flush()
    again = DeviceRegistry(hub.db, EventBus(), SystemClock())
    await again.load()
    assert again.get("test.plug").attribute_meta == meta
    assert again.get("test.plug").to_json()["attribute_meta"] == {
        "power": {"unit": "W", "device_class": "power", "min": 0, "step": 0.1}}


async def test_state_class_and_options_are_stored_and_old_rows_still_read(hub: Hub) -> None:
    """state_class and options (added later) round-trip through the database; a row stored
    before they existed reads back with them absent, and they stay out of its JSON."""
    meta = {"energy": AttributeMeta(unit="kWh", device_class="energy",
                                    state_class="total_increasing"),
            "mode": AttributeMeta(options=("eco", "comfort", "boost"))}
    hub.devices.add(Device("test.meter", "Meter", "test", attributes=("energy", "mode"),
                           attribute_meta=meta))
    await hub.db.flush()
    old = ('{"commands": [], "attributes": ["power"], "events": [], '
           '"attribute_meta": {"power": {"unit": "W", "min": 0}}}')
    await hub.db.write(
        "INSERT INTO devices(id, name, integration, created_at, updated_at, capabilities) "
        "VALUES('test.old', 'Old', 'test', 1, 1, ?)", (old,))
    again = DeviceRegistry(hub.db, EventBus(), SystemClock())
    await again.load()
    assert again.get("test.meter").attribute_meta == meta
    assert again.get("test.meter").to_json()["attribute_meta"] == {
        "energy": {"unit": "kWh", "device_class": "energy", "state_class": "total_increasing"},
        "mode": {"options": ["eco", "comfort", "boost"]}}
    assert again.get("test.old").attribute_meta == {"power": AttributeMeta(unit="W",
                                                                            minimum=0)}
    assert again.get("test.old").to_json()["attribute_meta"] == {"power": {"unit": "W",
                                                                           "min": 0}}


async def test_the_documented_example_holds_for_the_example_config(config_factory) -> None:
    """docs/api.md shows virtual.living_temp of config.example.yaml with its unit."""
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    devices = example["integrations"]["virtual"]["devices"]
    assert "virtual.living_temp" in (ROOT / "docs" / "api.md").read_text()
    config = config_factory({"integrations": {"virtual": {"devices": devices}}})
    async with Hub(config) as hub:
        headers = await signed_in(hub)
        async with TestClient(TestServer(make_app(hub)), headers=headers) as client:
            device = await (await client.get("/api/devices/virtual.living_temp")).json()
            assert device["attribute_meta"] == {
                "value": {"unit": "°C", "device_class": "temperature"}}
            state = await (await client.get("/api/devices/virtual.living_temp/state")).json()
            assert state["attributes"]["value"]["value"] == 21.0
            assert state["attributes"]["value"]["unit"] == "°C"
