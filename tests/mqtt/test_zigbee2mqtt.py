"""Zigbee2MQTT's own discovery payloads (tests/mqtt/fixtures/zigbee2mqtt.json, with their
provenance) replayed through mosquitto: the hub's devices, attributes, values and outgoing
command payloads are checked exactly."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    publish_json,
    recording,
    status,
    wait_until,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "zigbee2mqtt.json").read_text())
MODELS = {"E11-G13", "WSDCGQ11LM", "QBKG03LM", "LED1545G12", "WXKG11LM", "QBKG04LM", "99432",
          "TS0601_thermostat", "1TST-EU", "BTH-RA", "BTH-RM230Z", "SV01", "ZFP-1A-CH",
          "TS130F_GIRIER_DUAL", "BMCT-SLZ"}
STATES = {
    "zigbee2mqtt/bulb": {"state": "ON", "brightness": 127, "color_temp": 370,
                         "color_mode": "color_temp", "linkquality": 80,
                         "last_seen": "2026-12-03T08:00:00Z"},
    "zigbee2mqtt/weather_sensor": {"temperature": 21.5, "humidity": 48, "pressure": 1002.5,
                                   "battery": 97, "linkquality": 120},
    "zigbee2mqtt/wall_switch_double": {"state_left": "ON", "state_right": "OFF"},
    "zigbee2mqtt/TS0601_thermostat": {"system_mode": "heat", "current_heating_setpoint": 21,
                                      "local_temperature": 19.5, "running_state": "heat",
                                      "preset": "manual"},
    "zigbee2mqtt/fan": {"fan_state": "ON", "fan_mode": "medium"},
    "zigbee2mqtt/smart vent": {"state": "OPEN", "position": 60},
    "zigbee2mqtt/0x18fc26000000cafe": {"device_mode": "shutter"},
    "zigbee2mqtt/bosch_radiator": {"pi_heating_demand": 35},
    "zigbee2mqtt/bosch_rm230z": {"operating_mode": "manual", "system_mode": "heat",
                                 "occupied_heating_setpoint": 20.5,
                                 "occupied_cooling_setpoint": 26, "local_temperature": 21.2,
                                 "humidity": 45, "running_state": "idle"},
}


def dev_id(ieee: str) -> str:
    return f"mqtt.id_zigbee2mqtt_{ieee}"


async def test_zigbee2mqtt_models_replayed(hub, broker, api_client) -> None:
    models = {m["payload"].get("device", {}).get("model_id") for m in FIXTURE["messages"]}
    assert MODELS <= models and len(MODELS) >= 10
    async with device_client(broker) as z2m:
        await publish_json(z2m, "zigbee2mqtt/bridge/state", {"state": "online"})
        for m in FIXTURE["messages"]:
            await publish_json(z2m, m["topic"], m["payload"])
        for topic, body in STATES.items():
            await publish_json(z2m, topic, body)
        await wait_until(lambda: status(hub)["stats"]["configs"] >= 24)
        # siren, update (and a scene) are components the hub does not model: counted refusals
        assert status(hub)["stats"]["refused_config"] == 2
        items = {d.name: d for d in mqtt_discovered(hub)}
        assert {"bulb", "weather_sensor", "wall_switch_double", "button", "fan",
                "TS0601_thermostat", "smart vent", "bosch_radiator"} <= set(items)
        for item in mqtt_discovered(hub):
            r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
            assert r.status in (200, 201), await r.text()

        bulb = hub.devices.get(dev_id("0x000b57fffec6a5b2"))
        assert bulb.model == "TRADFRI bulb E26/E27, white spectrum, globe, opal, 980 lm"
        assert bulb.manufacturer == "IKEA" and bulb.transport == "mqtt"
        assert set(bulb.attributes) == {"light", "light_brightness", "light_color_temp",
                                        "light_effect", "light_color_mode", "last_seen"}
        await wait_until(lambda: hub.states.available(bulb.id) is True)
        values = {a: hub.states.value(bulb.id, a) for a in bulb.attributes}
        assert values == {"light": True, "light_brightness": 128, "light_color_temp": 370,
                          "light_effect": None, "light_color_mode": "color_temp",
                          "last_seen": "2026-12-03T08:00:00Z"}

        # what the values mean, from the announcements: units, classes, ranges
        meta = {a: m.to_json() for a, m in bulb.attribute_meta.items()}
        assert meta["light_color_temp"] == {"unit": "mired", "min": 250, "max": 454}
        assert meta["light_brightness"] == {"min": 0, "max": 255}
        r = await api_client.post(f"/api/devices/{bulb.id}/commands", json={
            "command": "turn_on", "params": {"color_temp": 600}})
        body = await r.json()
        assert r.status == 400 and "params.color_temp" in json.dumps(body), body
        weather = hub.devices.get(dev_id("0x0017880104e45522"))
        assert weather.attribute_meta["temperature"].to_json() == {
            "unit": "°C", "device_class": "temperature", "state_class": "measurement"}
        assert weather.attribute_meta["pressure"].to_json() == {
            "unit": "hPa", "device_class": "atmospheric_pressure",
            "state_class": "measurement"}
        assert {a: hub.states.value(weather.id, a) for a in weather.attributes} == {
            "temperature": 21.5, "humidity": 48, "pressure": 1002.5, "battery": 97,
            "linkquality": 120}

        switch = hub.devices.get(dev_id("0x0017880104e45542"))
        assert hub.states.value(switch.id, "switch_left") is True
        assert hub.states.value(switch.id, "switch_right") is False

        thermo = hub.devices.get(dev_id("0x0017882104a44559"))
        assert {a: hub.states.value(thermo.id, a) for a in thermo.attributes} == {
            "climate": "heat", "climate_target_temperature": 21,
            "climate_current_temperature": 19.5, "climate_action": "heating",
            "climate_preset_mode": "manual"}

        # a room thermostat with a heating and a cooling setpoint (temperature_low/high_*)
        # and a humidity reading (current_humidity_*)
        room = hub.devices.get(dev_id("0x18fc2600000d7ae3"))
        await wait_until(lambda: hub.states.value(room.id, "climate_current_humidity") == 45)
        assert {a: hub.states.value(room.id, a) for a in room.attributes} == {
            "climate": "heat", "climate_target_temperature_low": 20.5,
            "climate_target_temperature_high": 26, "climate_current_temperature": 21.2,
            "climate_current_humidity": 45, "climate_action": "idle",
            "local_temperature": 21.2}
        assert room.attribute_meta["climate_current_humidity"].to_json() == {
            "unit": "%", "device_class": "humidity"}
        assert room.attribute_meta["climate_target_temperature_high"].to_json() == {
            "unit": "°C", "min": 5, "max": 30, "step": 0.5}
        spec = room.command("set_temperature")
        assert set(spec.params) == {"entity", "target_temp_low", "target_temp_high"}

        fan = hub.devices.get(dev_id("0x0017880104e45548"))
        assert hub.states.value(fan.id, "fan") is True
        assert hub.states.value(fan.id, "fan_percentage") == 50

        vent = hub.devices.get(dev_id("0x0017880104e45551"))
        assert hub.states.value(vent.id, "cover") == "open"
        assert hub.states.value(vent.id, "cover_position") == 60

        select = hub.devices.get(dev_id("0x18fc26000000cafe"))
        assert hub.states.value(select.id, "device_mode") == "shutter"
        # state class and a select's options reach the API (and are stored with the device)
        body = await (await api_client.get(f"/api/devices/{select.id}")).json()
        assert body["attribute_meta"]["device_mode"] == {"options": ["light", "shutter",
                                                                     "disabled"]}
        body = await (await api_client.get(f"/api/devices/{weather.id}")).json()
        assert body["attribute_meta"]["temperature"]["state_class"] == "measurement"

        async def command(device_id: str, name: str, **params) -> None:
            r = await api_client.post(f"/api/devices/{device_id}/commands",
                                      json={"command": name, "params": params})
            assert r.status == 200, await r.text()

        topics = ["zigbee2mqtt/bulb/set", "zigbee2mqtt/wall_switch_double/right/set",
                  "zigbee2mqtt/TS0601_thermostat/set/current_heating_setpoint",
                  "zigbee2mqtt/TS0601_thermostat/set/system_mode", "zigbee2mqtt/fan/set/fan_mode",
                  "zigbee2mqtt/smart vent/set", "zigbee2mqtt/0x18fc26000000cafe/set/device_mode",
                  "zigbee2mqtt/bosch_radiator/set",
                  "zigbee2mqtt/bosch_radiator/set/pi_heating_demand",
                  "zigbee2mqtt/bosch_rm230z/set/occupied_heating_setpoint",
                  "zigbee2mqtt/bosch_rm230z/set/occupied_cooling_setpoint"]
        async with recording(broker, *topics) as rec:
            await command(bulb.id, "turn_on", brightness=255, color_temp=250, transition=2)
            await command(bulb.id, "turn_off")
            await command(switch.id, "turn_on", entity="switch_right")
            await command(thermo.id, "set_temperature", temperature=22.5)
            await command(thermo.id, "set_hvac_mode", hvac_mode="off")
            await command(fan.id, "set_percentage", percentage=100)
            await command(vent.id, "set_position", position=30)
            await command(vent.id, "close")
            await command(select.id, "select_option", option="light")
            radiator = hub.devices.get(dev_id("0x18fc2600000d7ae2"))
            await command(radiator.id, "set_hvac_mode", hvac_mode="auto")
            await command(radiator.id, "set_value", value=40)
            await command(room.id, "set_temperature", target_temp_low=19,
                          target_temp_high=25.5)
            await wait_until(lambda: len(rec.messages) >= 13)
        assert [json.loads(p) for p in rec.on("zigbee2mqtt/bulb/set")] == [
            {"state": "ON", "brightness": 254, "color_temp": 250, "transition": 2},
            {"state": "OFF"}]
        assert rec.on("zigbee2mqtt/wall_switch_double/right/set") == ["ON"]
        assert rec.on("zigbee2mqtt/TS0601_thermostat/set/current_heating_setpoint") == ["22.5"]
        assert rec.on("zigbee2mqtt/TS0601_thermostat/set/system_mode") == ["off"]
        assert rec.on("zigbee2mqtt/fan/set/fan_mode") == ["on"]
        assert [p.replace(" ", "") for p in rec.on("zigbee2mqtt/smart vent/set")] == [
            '{"position":30}', "CLOSE"]
        assert rec.on("zigbee2mqtt/0x18fc26000000cafe/set/device_mode") == ["light"]
        assert [json.loads(p) for p in rec.on("zigbee2mqtt/bosch_radiator/set")] == [
            {"operating_mode": "schedule"}]
        assert rec.on("zigbee2mqtt/bosch_radiator/set/pi_heating_demand") == ["40"]
        assert rec.on("zigbee2mqtt/bosch_rm230z/set/occupied_heating_setpoint") == ["19"]
        assert rec.on("zigbee2mqtt/bosch_rm230z/set/occupied_cooling_setpoint") == ["25.5"]

        # the button: a device trigger and an event entity become hub device events
        button = hub.devices.get(dev_id("0x0017880104e45520"))
        assert set(button.events) >= {"action_single", "single", "double", "hold"}
        seen: list[tuple[str, dict]] = []
        from hub.facade import DeviceEvent
        undo = hub.bus.subscribe(DeviceEvent, lambda e: seen.append((e.event_type, e.data)))
        try:
            await z2m.publish("zigbee2mqtt/button/action", "single", qos=1)
            await publish_json(z2m, "zigbee2mqtt/button", {"action": "double", "battery": 90},
                               retain=False)
            await wait_until(lambda: len(seen) >= 2)
        finally:
            undo()
        assert ("action_single", {"type": "action", "subtype": "single"}) in seen
        assert ("double", {"entity": "action"}) in seen

        # the bridge going offline makes every Zigbee device unavailable
        await publish_json(z2m, "zigbee2mqtt/bridge/state", {"state": "offline"})
        await wait_until(lambda: hub.states.available(bulb.id) is False)
        assert hub.states.available(weather.id) is False
