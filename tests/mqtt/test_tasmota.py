"""Tasmota's Home Assistant discovery (tests/mqtt/fixtures/tasmota.json: the firmware's own
format strings filled for three devices, provenance inside) replayed through mosquitto with
Tasmota's state messages: devices, attributes, values, triggers and the exact command
payloads the firmware expects."""

from __future__ import annotations

import json
from pathlib import Path

from hub.facade import DeviceEvent
from tests.mqtt.conftest import device_client, mqtt_discovered, recording, status, wait_until

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "tasmota.json").read_text())
STATES = {
    "tele/tasmota_1A2B3C/STATE": {"Time": "2026-12-03T08:00:00", "Uptime": "0T00:10:00",
                                  "POWER": "ON", "Wifi": {"RSSI": 76}},
    "tele/tasmota_1A2B3C/SENSOR": {"Time": "2026-12-03T08:00:00",
                                   "BME280": {"Temperature": 21.3, "Humidity": 45.2,
                                              "Pressure": 1013.2},
                                   "ENERGY": {"Total": 1.234, "Power": 42, "Voltage": 230},
                                   "TempUnit": "C"},
    "tele/tasmota_1A2B3C/HASS_STATE": {"Version": "13.4.0(tasmota)", "RSSI": "76",
                                       "Hostname": "tasmota-1A2B3C"},
    "tele/dimmer_0D0E0F/STATE": {"POWER": "ON", "Dimmer": 40},
    "stat/shutter_112233/SHUTTER1": 30,
}


async def test_tasmota_devices_replayed(hub, broker, api_client) -> None:
    async with device_client(broker) as tasmota:
        for t in ("tasmota_1A2B3C", "dimmer_0D0E0F", "shutter_112233"):
            await tasmota.publish(f"tele/{t}/LWT", "Online", qos=1, retain=True)
        for m in FIXTURE["messages"]:
            await tasmota.publish(m["topic"], m["payload"].encode(), qos=1, retain=True)
        for topic, body in STATES.items():
            await tasmota.publish(topic, json.dumps(body), qos=1, retain=True)
        await wait_until(lambda: status(hub)["stats"]["configs"] == 11)
        assert status(hub)["stats"]["refused_config"] == 0
        items = await wait_until(lambda: mqtt_discovered(hub)
                                 if len(mqtt_discovered(hub)) == 3 else None)
        assert sorted((i.name, i.model, i.fw) for i in items) == [
            ("Bedroom", "PWM Dimmer", "13.4.0(tasmota)"),
            ("Kitchen", "Sonoff Basic", "13.4.0(tasmota)"),
            ("Living", "Shelly 2.5", "13.4.0(tasmota)")]
        for item in items:
            r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
            assert r.status == 201, await r.text()

        basic = hub.devices.get("mqtt.id_1a2b3c")
        assert basic.manufacturer == "Tasmota"
        expected = {"rl_1": True, "bme280_temperature": 21.3, "bme280_humidity": 45.2,
                    "energy_power": 42, "energy_total": 1.234, "status": 76}
        await wait_until(lambda: {a: hub.states.value(basic.id, a) for a in expected}
                         == expected)
        assert "button_short_press_button_1" in basic.events
        attrs = hub.states.value(basic.id, "status_attributes")
        assert attrs["Hostname"] == "tasmota-1A2B3C"
        dimmer = hub.devices.get("mqtt.id_0d0e0f")
        await wait_until(lambda: hub.states.value(dimmer.id, "li_1") is True
                         and hub.states.value(dimmer.id, "li_1_brightness") == 102)
        shutter = hub.devices.get("mqtt.id_112233")
        await wait_until(lambda: hub.states.value(shutter.id, "sht_1_position") == 30)
        assert hub.states.value(shutter.id, "sht_1") == "open"  # no state topic: from position
        assert all(hub.states.available(d.id) for d in (basic, dimmer, shutter))

        async def command(device_id: str, name: str, **params) -> None:
            r = await api_client.post(f"/api/devices/{device_id}/commands",
                                      json={"command": name, "params": params})
            assert r.status == 200, await r.text()

        topics = ("cmnd/tasmota_1A2B3C/POWER", "cmnd/dimmer_0D0E0F/Dimmer",
                  "cmnd/dimmer_0D0E0F/POWER", "cmnd/shutter_112233/Backlog",
                  "cmnd/shutter_112233/ShutterPosition1")
        async with recording(broker, *topics) as rec:
            await command(basic.id, "turn_off")
            await command(dimmer.id, "turn_on", brightness=255)
            await command(dimmer.id, "turn_off")
            await command(shutter.id, "close")
            await command(shutter.id, "set_position", position=75)
            await wait_until(lambda: len(rec.messages) >= 5)
        assert rec.on("cmnd/tasmota_1A2B3C/POWER") == ["OFF"]
        # on_cmd_type "brightness": the dimmer level alone switches it on
        assert rec.on("cmnd/dimmer_0D0E0F/Dimmer") == ["100"]
        assert rec.on("cmnd/dimmer_0D0E0F/POWER") == ["OFF"]
        assert rec.on("cmnd/shutter_112233/Backlog") == ["ShutterClose1"]
        assert rec.on("cmnd/shutter_112233/ShutterPosition1") == ["75"]

        seen: list[tuple[str, str]] = []
        undo = hub.bus.subscribe(DeviceEvent, lambda e: seen.append((e.device_id,
                                                                      e.event_type)))
        try:
            await tasmota.publish("stat/tasmota_1A2B3C/BUTTON1T", '{"TRIG":"SINGLE"}', qos=1)
            await wait_until(lambda: seen)
        finally:
            undo()
        assert seen == [(basic.id, "button_short_press_button_1")]

        await tasmota.publish("tele/dimmer_0D0E0F/LWT", "Offline", qos=1, retain=True)
        await wait_until(lambda: hub.states.available(dimmer.id) is False)
        assert hub.states.available(basic.id) is True
