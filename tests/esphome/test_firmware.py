"""The ESPHome integration against real ESPHome firmware (2026.6.5, built for Linux).

Two devices, each its own firmware in its own namespace joined to the hub's by a veth pair,
published on mDNS as a real device does: discovered, adopted through the API, state read,
every entity type commanded (the firmware's answer is the proof), the firmware killed and
started again (available again), and a new firmware with another entity list (the same hub
device updated in place, its history and automations kept).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.bus import DeviceEvent
from hub.hub import Hub
from tests.discovery.util import wait_for
from tests.esphome import devices, firmware

pytestmark = pytest.mark.skipif(devices.skip_reason() is not None,
                                reason=f"ESPHome firmware tests: {devices.skip_reason()}")

PLUG_MAC = "06:35:69:ab:f6:01"
CTRL_MAC = "06:35:69:ab:f6:02"
PLUG_ID = "esphome.063569abf601"
CTRL_ID = "esphome.063569abf602"


@pytest.fixture(scope="module")
def binaries() -> Iterator[dict[str, Path]]:
    """Built once (cached across runs: ~/.cache/uone-test/esphome-fw)."""
    yield {name: firmware.build(f"{name}.yaml") for name in ("plug", "controller", "plug_v2")}


@pytest.fixture
async def plug(binaries: dict[str, Path], tmp_path: Path
               ) -> AsyncIterator[devices.FirmwareDevice]:
    async with devices.running(binaries["plug"], "uone-plug", "Kitchen plug", PLUG_MAC,
                               tmp_path) as d:
        yield d


@pytest.fixture
async def ctrl(binaries: dict[str, Path], tmp_path: Path
               ) -> AsyncIterator[devices.FirmwareDevice]:
    async with devices.running(binaries["controller"], "uone-ctrl", "Living room controller",
                               CTRL_MAC, tmp_path) as d:
        yield d


@pytest.fixture
def hub_config(plug: devices.FirmwareDevice, ctrl: devices.FirmwareDevice) -> dict[str, Any]:
    return {
        "discovery": {"mdns": {"enabled": True, "advertise": False,
                               "interfaces": [plug.lan.hub_if, ctrl.lan.hub_if]}},
        "integrations": {"virtual": {"devices": []}, "esphome": {}},
    }


async def _discovered(client: Any, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        body = await (await client.get("/api/discovered?integration=esphome")).json()
        items = body["discovered"]
        return items if len(items) >= count else None

    return await wait_for(found, within=20)


async def _state(client: Any, device_id: str) -> dict[str, Any]:
    body = await (await client.get(f"/api/devices/{device_id}/state")).json()
    return {k: v["value"] for k, v in body["attributes"].items()}


async def _until(client: Any, device_id: str, within: float = 10, **want: Any
                 ) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        state = await _state(client, device_id)
        return state if all(state.get(k) == v for k, v in want.items()) else None

    try:
        return await wait_for(reached, within=within)
    except AssertionError:
        raise AssertionError(f"{device_id}: wanted {want}, have "
                             f"{await _state(client, device_id)}") from None


async def _command(client: Any, device_id: str, command: str, **params: Any) -> None:
    resp = await client.post(f"/api/devices/{device_id}/commands",
                             json={"command": command, "params": params})
    assert resp.status < 300, (command, params, resp.status, await resp.text())


async def test_discover_adopt_read_and_command_every_entity_type(
        api_client: Any, hub: Hub, plug: devices.FirmwareDevice,
        ctrl: devices.FirmwareDevice) -> None:
    items = {d["mac"]: d for d in await _discovered(api_client, 2)}
    item = items[PLUG_MAC]
    assert (item["name"], item["model"], item["fw"]) == ("Kitchen plug", "esp32dev",
                                                         firmware.ESPHOME_VERSION)
    assert item["addresses"] == [plug.lan.dev_ip] and item["port"] == 6053
    assert item["data"]["needs_key"] is False and item["data"]["node"] == "uone-plug"

    for mac, device_id in ((PLUG_MAC, PLUG_ID), (CTRL_MAC, CTRL_ID)):
        resp = await api_client.post(f"/api/discovered/{items[mac]['id']}/adopt", json={})
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["device"]["id"] == device_id

    device = hub.devices.get(PLUG_ID)
    assert device.transport == "lan" and device.mac == PLUG_MAC
    assert device.fw_version == firmware.ESPHOME_VERSION
    assert {"relay", "power", "energy", "overload", "status"} <= set(device.attributes)
    assert {"turn_on", "turn_off", "toggle", "press"} <= {c.name for c in device.commands}
    assert set(device.events) == {"identified", "long_press"}
    ctrl_device = hub.devices.get(CTRL_ID)
    assert {"strip", "strip_brightness", "strip_color_temp", "strip_rgb", "strip_effect",
            "blind", "blind_position", "fan", "fan_percentage", "fan_oscillating",
            "fan_direction", "fan_preset_mode", "thermostat",
            "thermostat_current_temperature", "brightness_limit", "scene", "door",
            "room_temperature"} <= set(ctrl_device.attributes)

    # what the entity info says of the values: units, state classes, a select's options
    plug_meta = (await (await api_client.get(f"/api/devices/{PLUG_ID}")).json())[
        "attribute_meta"]
    assert plug_meta["energy"] == {"unit": "kWh", "device_class": "energy",
                                   "state_class": "total_increasing"}
    assert plug_meta["power"]["state_class"] == "measurement"
    ctrl_meta = (await (await api_client.get(f"/api/devices/{CTRL_ID}")).json())[
        "attribute_meta"]
    assert ctrl_meta["scene"] == {"options": ["day", "evening", "night"]}
    assert ctrl_meta["room_temperature"] == {"unit": "°C", "device_class": "temperature",
                                             "state_class": "measurement"}

    # state as the firmware reports it
    await _until(api_client, PLUG_ID, relay=False, power=0.0, energy=12.25, overload=False,
                 status="off")
    await _until(api_client, CTRL_ID, room_temperature=19.5, scene="day",
                 brightness_limit=80.0, thermostat_current_temperature=19.5)
    assert hub.states.available(PLUG_ID) is True

    # switch: the template lambda reads the relay, so power and status follow it
    await _command(api_client, PLUG_ID, "turn_on")
    await _until(api_client, PLUG_ID, relay=True, power=42.5, status="on")
    await _command(api_client, PLUG_ID, "toggle", entity="relay")
    await _until(api_client, PLUG_ID, relay=False)

    # button -> the firmware's on_press fires its event entity -> a hub device event
    events: list[DeviceEvent] = []
    hub.bus.subscribe(DeviceEvent, events.append)
    await _command(api_client, PLUG_ID, "press", entity="identify")

    async def fired() -> bool:
        return any(e.device_id == PLUG_ID and e.event_type == "identified" for e in events)

    await wait_for(fired, within=5)
    assert next(e for e in events if e.event_type == "identified").data == {
        "entity": "presses"}

    # light: brightness, colour temperature, RGB, effect, off
    await _command(api_client, CTRL_ID, "turn_on", entity="strip", brightness=128)
    await _until(api_client, CTRL_ID, strip=True, strip_brightness=128)
    await _command(api_client, CTRL_ID, "turn_on", color_temp=300)
    await _until(api_client, CTRL_ID, strip_color_temp=300)
    await _command(api_client, CTRL_ID, "turn_on", rgb="255,0,0")
    state = await _until(api_client, CTRL_ID, strip=True)

    async def red() -> bool:
        rgb = (await _state(api_client, CTRL_ID))["strip_rgb"]
        return rgb[0] == 255 and rgb[1] == 0 and rgb[2] == 0

    await wait_for(red, within=5)
    await _command(api_client, CTRL_ID, "turn_on", effect="Strobe")
    await _until(api_client, CTRL_ID, strip_effect="Strobe")
    await _command(api_client, CTRL_ID, "turn_off", entity="strip")
    await _until(api_client, CTRL_ID, strip=False)

    # cover, fan, climate, number, select, lock
    await _command(api_client, CTRL_ID, "set_position", position=40)
    await _until(api_client, CTRL_ID, blind_position=40, blind="open")
    await _command(api_client, CTRL_ID, "close")
    await _until(api_client, CTRL_ID, blind="closed", blind_position=0)
    await _command(api_client, CTRL_ID, "turn_on", entity="fan", percentage=66)
    await _until(api_client, CTRL_ID, fan=True, fan_percentage=67)
    await _command(api_client, CTRL_ID, "oscillate", oscillating=True)
    await _command(api_client, CTRL_ID, "set_direction", direction="reverse")
    await _command(api_client, CTRL_ID, "set_preset_mode", entity="fan", preset_mode="eco")
    await _until(api_client, CTRL_ID, fan_oscillating=True, fan_direction="reverse",
                 fan_preset_mode="eco")
    await _command(api_client, CTRL_ID, "set_hvac_mode", hvac_mode="heat")
    await _command(api_client, CTRL_ID, "set_temperature", temperature=22.5)
    await _until(api_client, CTRL_ID, thermostat="heat", thermostat_target_temperature=22.5)
    await _command(api_client, CTRL_ID, "set_value", value=55)
    await _command(api_client, CTRL_ID, "select_option", option="evening")
    await _command(api_client, CTRL_ID, "lock")
    await _until(api_client, CTRL_ID, brightness_limit=55.0, scene="evening", door="locked")
    await _command(api_client, CTRL_ID, "unlock")
    await _until(api_client, CTRL_ID, door="unlocked")
    assert state["strip"] is True

    # bad commands: a clear 400 naming the field, nothing sent
    for command, params, field in (
            ("set_value", {"value": 7}, "params.value"),  # below min 10
            ("set_value", {"value": 57}, "params.value"),  # not on the step of 5
            ("select_option", {"option": "party"}, "params.option"),
            ("turn_on", {"entity": "strip", "brightness": 300}, "params.brightness"),
            ("turn_on", {"entity": "strip", "rgb": "red"}, "params.rgb"),
            ("set_hvac_mode", {"hvac_mode": "cool"}, "params.hvac_mode"),
            ("press", {"entity": "nope"}, "params.entity")):
        target = PLUG_ID if command == "press" else CTRL_ID
        resp = await api_client.post(f"/api/devices/{target}/commands",
                                     json={"command": command, "params": params})
        body = await resp.json()
        assert resp.status == 400, (command, body)
        assert body["error"]["field"] == field, (command, body)


async def test_firmware_killed_and_restarted_then_updated_in_place(
        api_client: Any, hub: Hub, plug: devices.FirmwareDevice,
        ctrl: devices.FirmwareDevice, binaries: dict[str, Path]) -> None:
    items = {d["mac"]: d for d in await _discovered(api_client, 2)}
    resp = await api_client.post(f"/api/discovered/{items[PLUG_MAC]['id']}/adopt",
                                 json={"name": "Kettle plug"})
    assert resp.status == 201, await resp.text()
    await _until(api_client, PLUG_ID, relay=False, status="off")
    # an automation on the device, made before its firmware changes: the Identify button's
    # event (fired by the firmware's on_press) turns the relay on
    resp = await api_client.post("/api/automations", json={
        "id": "identify_turns_relay_on",
        "triggers": [{"type": "event", "device": PLUG_ID, "event": "identified"}],
        "actions": [{"type": "command", "device": PLUG_ID, "command": "turn_on",
                     "params": {"entity": "relay"}}]})
    assert resp.status == 201, await resp.text()
    await _command(api_client, PLUG_ID, "press", entity="identify")
    await _until(api_client, PLUG_ID, relay=True)

    # power cut: unavailable; power back: available again and states flow
    await plug.kill()

    async def unavailable() -> bool:
        return hub.states.available(PLUG_ID) is False

    await wait_for(unavailable, within=20)
    with pytest.raises(AssertionError):
        await _command(api_client, PLUG_ID, "turn_on")  # 503: not connected
    await plug.start()  # returns once the firmware accepts connections
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await plug.publish()  # a booting device announces itself: cuts the backoff short

    async def available() -> bool:
        return hub.states.available(PLUG_ID) is True

    await wait_for(available, within=15)
    back_after = loop.time() - t0
    await _until(api_client, PLUG_ID, relay=False)  # restore_mode ALWAYS_OFF after a boot
    print(f"available again {back_after:.2f} s after the firmware answered")

    # new firmware: Voltage added, Status removed; same device, history kept
    before = hub.devices.get(PLUG_ID)
    await plug.kill()
    await wait_for(unavailable, within=20)
    plug.binary = binaries["plug_v2"]
    await plug.start()
    await plug.publish()

    async def updated() -> bool:
        d = hub.devices.get(PLUG_ID)
        return "voltage" in d.attributes and "status" not in d.attributes

    await wait_for(updated, within=20)
    await _until(api_client, PLUG_ID, voltage=230.0)
    after = hub.devices.get(PLUG_ID)
    assert after.id == before.id and after.name == "Kettle plug"
    assert after.created_at == before.created_at
    await hub.db.flush()
    history = await hub.states.history(PLUG_ID)
    assert any(h["attribute"] == "relay" and h["value"] is True for h in history)
    assert any(h["attribute"] == "status" for h in history)  # the old entity's past stays
    # the automation is still there, valid and enabled, and still works on the new firmware
    auto = await (await api_client.get("/api/automations/identify_turns_relay_on")).json()
    assert auto["valid"] and auto["enabled"] and auto["errors"] == [], auto
    await _until(api_client, PLUG_ID, relay=False)  # restore_mode ALWAYS_OFF after a boot
    await _command(api_client, PLUG_ID, "press", entity="identify")
    await _until(api_client, PLUG_ID, relay=True)
