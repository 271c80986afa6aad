"""Tasmota's native discovery (tasmota/discovery/<MAC>/config and /sensors, what standard
builds publish with SetOption19 0) read through hatasmota: four models in the firmware's own
format (tests/mqtt/tasmota_firmware.py) replayed through mosquitto with their state messages;
adoption, the hub's devices, attributes and values, the exact commands Tasmota expects, LWT
availability, device triggers as hub events, removal and erasure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.config import load_config
from hub.errors import ConfigError
from hub.facade import DeviceEvent
from hub.hub import Hub
from tests.conftest import write_config
from tests.mqtt import tasmota_firmware as fw
from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    mqtt_section,
    recording,
    status,
    wait_until,
)


def tasmota_items(hub) -> list[Any]:
    return [d for d in mqtt_discovered(hub) if d.data.get("protocol") == "tasmota"]


async def announce(client, *models: dict[str, str]) -> None:
    """Publish what the firmware publishes on connecting (LWT, then discovery), retained;
    the four models of MODELS unless some are named."""
    everything = {**fw.MODELS, fw.BLIND_MAC: fw.BLIND}
    for mac, model in everything.items():
        if model not in (models or fw.MODELS.values()):
            continue
        topic = fw.TOPICS[mac]
        await client.publish(f"tele/{topic}/LWT", "Online", qos=1, retain=True)
        await client.publish(f"tasmota/discovery/{mac}/config", model["config"], qos=1,
                             retain=True)
        await client.publish(f"tasmota/discovery/{mac}/sensors", model["sensors"], qos=1,
                             retain=True)


PLUG_ID, BULB_ID = "mqtt.tasmota_a4cf12abcdef", "mqtt.tasmota_c45bbe123456"
SHELLY_ID, IFAN_ID = "mqtt.tasmota_3c6105c0ffee", "mqtt.tasmota_dc4f22a1b2c3"
STATUS = {"ip", "last_restart_time", "link_count", "mqtt_count", "restart_reason", "rssi",
          "signal", "ssid", "version"}
ENERGY = {"energy_totalstarttime", "energy_total", "energy_yesterday", "energy_today"}
PER_PHASE = ("power", "apparentpower", "reactivepower", "factor", "current")


async def adopt_all(hub, api_client) -> list[Any]:
    items = await wait_until(lambda: tasmota_items(hub) if len(tasmota_items(hub)) == 4
                             and all(len(i.data["entities"]) > 9 for i in tasmota_items(hub))
                             else None)
    for item in items:
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        assert r.status == 201, await r.text()
    return items


async def command(api_client, device_id: str, name: str, **params: Any) -> dict[str, Any]:
    r = await api_client.post(f"/api/devices/{device_id}/commands",
                              json={"command": name, "params": params})
    assert r.status == 200, await r.text()
    return await r.json()


async def test_four_models_adopted_read_and_commanded(hub, broker, api_client) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota)
        items = await wait_until(lambda: tasmota_items(hub) if len(tasmota_items(hub)) == 4
                                 else None)
        assert sorted((i.name, i.model, i.fw, i.mac) for i in items) == [
            ("Ceiling fan", "Sonoff iFan03", "14.3.0(release-tasmota)", "dc:4f:22:a1:b2:c3"),
            ("Desk lamp", "Athom LB01-15W", "14.3.0(release-tasmota)", "c4:5b:be:12:34:56"),
            ("Hall", "Shelly 2.5", "14.3.0(release-tasmota)", "3c:61:05:c0:ff:ee"),
            ("Kitchen plug", "Gosund SP111", "14.3.0(release-tasmota)", "a4:cf:12:ab:cd:ef")]
        # seen, not adopted: nothing in the hub's devices, state or history
        await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/STATE", fw.state(POWER="ON"), qos=1)
        await wait_until(lambda: any(d.values.get("relay_1") is True for d in
                                     hub.integrations.instance("mqtt").tasmota.devices.values()))
        assert hub.devices.by_integration("mqtt") == []
        await hub.db.flush()
        assert await hub.db.fetchall(
            "SELECT device_id FROM history WHERE device_id LIKE 'mqtt.%'") == []
        await adopt_all(hub, api_client)

        plug = hub.devices.get(PLUG_ID)
        assert (plug.name, plug.manufacturer, plug.model, plug.mac, plug.transport) == (
            "Kitchen plug", "Tasmota", "Gosund SP111", "a4:cf:12:ab:cd:ef", "mqtt")
        assert set(plug.attributes) == {"relay_1", *STATUS, *ENERGY, "energy_power",
                                        "energy_apparentpower", "energy_reactivepower",
                                        "energy_factor", "energy_voltage", "energy_current"}
        assert {c.name for c in plug.commands} == {"turn_on", "turn_off", "toggle"}
        meta = (await (await api_client.get(f"/api/devices/{PLUG_ID}")).json())["attribute_meta"]
        assert meta["energy_power"] == {"unit": "W", "device_class": "power",
                                        "state_class": "measurement"}
        assert meta["energy_today"] == {"unit": "kWh", "device_class": "energy",
                                        "state_class": "total_increasing"}
        assert meta["energy_total"] == {"unit": "kWh", "device_class": "energy",
                                        "state_class": "total"}
        assert meta["energy_voltage"] == {"unit": "V", "device_class": "voltage",
                                          "state_class": "measurement"}
        assert meta["signal"] == {"unit": "dBm", "device_class": "signal_strength",
                                  "state_class": "measurement"}

        bulb = hub.devices.get(BULB_ID)
        assert set(bulb.attributes) == {"light_1", "light_1_brightness", "light_1_color_temp",
                                        "light_1_rgb", "light_1_hs", "light_1_effect", *STATUS}
        assert bulb.command("turn_on").ranges["brightness"] == (0, 100)
        assert bulb.command("turn_on").ranges["color_temp"] == (153, 500)
        assert bulb.attribute_meta["light_1_effect"].options == (
            "Solid", "Wake up", "Cycle up", "Cycle down", "Random")

        shelly = hub.devices.get(SHELLY_ID)
        assert set(shelly.attributes) == {
            "relay_1", "relay_2", "switch_1", "analog_temperature", "energy_frequency",
            "energy_voltage", *STATUS, *ENERGY, "energy_period_1", "energy_period_2",
            *(f"energy_{q}_{n}" for q in PER_PHASE for n in (1, 2))}
        assert shelly.attribute_meta["analog_temperature"].to_json() == {
            "unit": "°C", "device_class": "temperature", "state_class": "measurement"}
        assert set(shelly.events) == {
            "button_short_press_button_1", "button_double_press_button_1",
            "button_triple_press_button_1", "button_quadruple_press_button_1",
            "button_quintuple_press_button_1", "button_long_press_button_1",
            "button_short_press_switch_2"}  # switch 2 in mode 0 (toggle) only triggers

        ifan = hub.devices.get(IFAN_ID)
        assert set(ifan.attributes) == {"light_1", "fan", "fan_percentage", *STATUS}
        assert {c.name for c in ifan.commands} == {"turn_on", "turn_off", "toggle",
                                                   "set_percentage"}

        # state messages as the firmware sends them
        await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/STATE", fw.state(POWER="ON"), qos=1)
        await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/SENSOR", fw.compact(
            {"Time": "2026-12-03T08:05:00", "ENERGY": {**fw.PLUG_ENERGY, "Power": 43.5,
                                                       "Today": 0.125}}), qos=1)
        await tasmota.publish(f"tele/{fw.BULB_TOPIC}/STATE", fw.state(
            POWER="ON", Dimmer=40, Color="FF80000000", HSBColor="30,100,40", White=0, CT=153,
            Channels=[100, 50, 0, 0, 0], Scheme=0, Fade="OFF", Speed=1, LedTable="ON"),
            qos=1)
        await tasmota.publish(f"tele/{fw.SHELLY_TOPIC}/STATE", fw.state(
            POWER1="ON", POWER2="OFF"), qos=1)
        await tasmota.publish(f"tele/{fw.SHELLY_TOPIC}/SENSOR", fw.compact(
            {"Time": "2026-12-03T08:05:00", "Switch1": "ON", "Switch2": "OFF",
             "ANALOG": {"Temperature": 47.1}, "ENERGY": fw.SHELLY_ENERGY, "TempUnit": "C"}),
            qos=1)
        await tasmota.publish(f"tele/{fw.IFAN_TOPIC}/STATE", fw.state(
            POWER1="ON", FanSpeed=2), qos=1)
        expected = {
            PLUG_ID: {"relay_1": True, "energy_power": 43.5, "energy_today": 0.125,
                      "energy_total": 1.234, "energy_voltage": 230, "energy_current": 0.217,
                      "energy_factor": 0.84, "rssi": 76, "signal": -62, "link_count": 1,
                      "mqtt_count": 1, "ip": "192.168.1.50"},
            BULB_ID: {"light_1": True, "light_1_brightness": 40, "light_1_rgb": [255, 128, 0],
                      "light_1_hs": [30.0, 100.0], "light_1_color_temp": 153,
                      "light_1_effect": "Solid"},
            SHELLY_ID: {"relay_1": True, "relay_2": False, "switch_1": True,
                        "analog_temperature": 47.1, "energy_power_1": 12,
                        "energy_power_2": 0, "energy_voltage": 231, "energy_frequency": 50},
            IFAN_ID: {"light_1": True, "fan": True, "fan_percentage": 67},
        }
        for device_id, values in expected.items():
            await wait_until(lambda d=device_id, v=values: {
                a: hub.states.value(d, a) for a in v} == v)
            assert hub.states.available(device_id) is True

        # commands: exactly what hatasmota publishes for Tasmota
        topics = [f"cmnd/{t}/#" for t in (fw.PLUG_TOPIC, fw.BULB_TOPIC, fw.SHELLY_TOPIC,
                                           fw.IFAN_TOPIC)]
        async with recording(broker, *topics) as rec:
            sent = await command(api_client, PLUG_ID, "turn_off")
            assert sent["result"]["published"] == [{"topic": "cmnd/tasmota_ABCDEF/Power1",
                                                    "payload": "OFF"}]
            await command(api_client, BULB_ID, "turn_on", brightness=60)
            await command(api_client, BULB_ID, "turn_on", color_temp=300)
            await command(api_client, BULB_ID, "turn_on", rgb="#00ff00")
            await command(api_client, BULB_ID, "turn_on", effect="Wake up")
            await command(api_client, BULB_ID, "turn_off")
            await command(api_client, SHELLY_ID, "turn_on", entity="relay_2")
            await command(api_client, IFAN_ID, "set_percentage", percentage=100)
            await command(api_client, IFAN_ID, "turn_off", entity="fan")
            await command(api_client, IFAN_ID, "toggle", entity="light_1")
            want = [("cmnd/tasmota_ABCDEF/Power1", "OFF"),
                    ("cmnd/tasmota_123456/Backlog", "NoDelay;Dimmer 60"),
                    ("cmnd/tasmota_123456/Backlog", "NoDelay;Power1 ON;NoDelay;CT 300"),
                    ("cmnd/tasmota_123456/Backlog", "NoDelay;Power1 ON;NoDelay;Color2 0,255,0"),
                    ("cmnd/tasmota_123456/Backlog", "NoDelay;Power1 ON;NoDelay;Scheme 1"),
                    ("cmnd/tasmota_123456/Backlog", "NoDelay;Power1 OFF"),
                    ("cmnd/shelly25_C0FFEE/Power2", "ON"),
                    ("cmnd/ifan03_A1B2C3/FanSpeed", "3"),
                    ("cmnd/ifan03_A1B2C3/FanSpeed", "0"),
                    ("cmnd/ifan03_A1B2C3/Power1", "OFF")]
            await wait_until(lambda: [m for m in rec.messages if m in want] == want)

        # the device's answer on stat/RESULT is the new state (no optimistic guess)
        assert hub.states.value(PLUG_ID, "relay_1") is True
        await tasmota.publish(f"stat/{fw.PLUG_TOPIC}/RESULT", '{"POWER":"OFF"}', qos=1)
        await tasmota.publish(f"stat/{fw.BULB_TOPIC}/RESULT", fw.compact(
            {"POWER": "ON", "Dimmer": 60, "Color": "00FF000000", "HSBColor": "120,100,60",
             "White": 0, "CT": 300, "Channels": [0, 100, 0, 0, 0]}), qos=1)
        await wait_until(lambda: hub.states.value(PLUG_ID, "relay_1") is False)
        await wait_until(lambda: (hub.states.value(BULB_ID, "light_1_brightness"),
                                  hub.states.value(BULB_ID, "light_1_rgb"),
                                  hub.states.value(BULB_ID, "light_1_color_temp"))
                         == (60, [0, 255, 0], 300))

        # bad commands: a 400 naming the field, nothing published
        for device_id, name, params, field in (
                (BULB_ID, "turn_on", {"brightness": 101}, "params.brightness"),
                (BULB_ID, "turn_on", {"effect": "Disco"}, "params.effect"),
                (BULB_ID, "turn_on", {"rgb": "green"}, "params.rgb"),
                (PLUG_ID, "turn_on", {"entity": "fan"}, "params.entity"),
                (IFAN_ID, "set_percentage", {}, "params.percentage")):
            r = await api_client.post(f"/api/devices/{device_id}/commands",
                                      json={"command": name, "params": params})
            body = await r.json()
            assert r.status == 400 and body["error"]["field"] == field, (name, body)


async def test_triggers_availability_and_removal(hub, broker, api_client) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota)
        await adopt_all(hub, api_client)
        events: list[DeviceEvent] = []
        hub.bus.subscribe(DeviceEvent, events.append)
        # a button press (SetOption73) and switch 2 toggled (SetOption114), as stat/RESULT
        await tasmota.publish(f"stat/{fw.SHELLY_TOPIC}/RESULT",
                              '{"Button1":{"Action":"DOUBLE"}}', qos=1)
        await tasmota.publish(f"stat/{fw.SHELLY_TOPIC}/RESULT",
                              '{"Switch2":{"Action":"TOGGLE"}}', qos=1)
        await tasmota.publish(f"stat/{fw.SHELLY_TOPIC}/RESULT",
                              '{"Switch1":{"Action":"ON"}}', qos=1)
        await wait_until(lambda: len([e for e in events if e.device_id == SHELLY_ID]) == 2)
        assert [(e.event_type, e.data) for e in events if e.device_id == SHELLY_ID] == [
            ("button_double_press_button_1", {"type": "button_double_press",
                                              "subtype": "button_1"}),
            ("button_short_press_switch_2", {"type": "button_short_press",
                                             "subtype": "switch_2"})]
        await wait_until(lambda: hub.states.value(SHELLY_ID, "switch_1") is True)

        # LWT: the firmware's last will, then back; on Online hatasmota polls the state
        async with recording(broker, f"cmnd/{fw.PLUG_TOPIC}/#") as rec:
            await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/LWT", "Offline", qos=1, retain=True)
            await wait_until(lambda: hub.states.available(PLUG_ID) is False)
            assert hub.states.available(BULB_ID) is True
            await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/LWT", "Online", qos=1, retain=True)
            await wait_until(lambda: hub.states.available(PLUG_ID) is True)
            await wait_until(lambda: ("cmnd/tasmota_ABCDEF/STATUS", "10") in rec.messages
                             and ("cmnd/tasmota_ABCDEF/STATE", "") in rec.messages)

        # removal: Tasmota clears its retained config (SetOption19 1, a reset)
        await tasmota.publish(f"tasmota/discovery/{fw.PLUG_MAC}/config", b"", qos=1,
                              retain=True)
        await wait_until(lambda: len(tasmota_items(hub)) == 3)
        await wait_until(lambda: hub.states.available(PLUG_ID) is False)
        assert fw.PLUG_MAC not in hub.integrations.instance("mqtt").tasmota.devices
        # it announces again: offered again, and the adopted device comes back
        await announce(tasmota, fw.PLUG)
        await wait_until(lambda: hub.states.available(PLUG_ID) is True)


async def test_erasure_restriction_and_broker_loss(hub, broker, api_client) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota)
        await adopt_all(hub, api_client)
        await tasmota.publish(f"tele/{fw.IFAN_TOPIC}/STATE", fw.state(POWER1="ON",
                                                                      FanSpeed=1), qos=1)
        await wait_until(lambda: hub.states.value(IFAN_ID, "fan_percentage") == 33)
        await hub.db.flush()
        assert [h["value"] for h in await hub.states.history(IFAN_ID)
                if h["attribute"] == "fan_percentage"] == [33]

        # scope and restriction are the owner's: a new announcement (a firmware update)
        # re-registers the device without changing them
        r = await api_client.patch(f"/api/devices/{IFAN_ID}", json={
            "name": "Bedroom fan", "scope": {"attributes": ["fan"], "events": []}})
        assert r.status == 200, await r.text()
        await hub.privacy.restrict_device(IFAN_ID, True, "owner")
        await tasmota.publish(f"tasmota/discovery/{fw.IFAN_MAC}/config", fw.IFAN[
            "config"].replace("14.3.0(release-tasmota)", "14.4.1(release-tasmota)"), qos=1,
            retain=True)
        await wait_until(lambda: hub.devices.get(IFAN_ID).fw_version
                         == "14.4.1(release-tasmota)")
        assert hub.devices.get(IFAN_ID).restricted is True
        fan = hub.devices.get(IFAN_ID)
        assert fan.name == "Bedroom fan" and fan.scope.attributes == frozenset({"fan"})
        assert fan.scope.events == frozenset()
        assert hub.privacy.device_usable(IFAN_ID) is False
        await hub.privacy.restrict_device(IFAN_ID, False, "owner")

        # erasure: the device, its state and history go; it is offered for adoption again
        r = await api_client.post("/api/privacy/erase",
                                  json={"target": "device", "device_id": IFAN_ID})
        assert r.status in (200, 202, 204), await r.text()
        await wait_until(lambda: hub.devices.find(IFAN_ID) is None)
        await tasmota.publish(f"tele/{fw.IFAN_TOPIC}/STATE", fw.state(POWER1="ON",
                                                                      FanSpeed=3), qos=1)
        await wait_until(lambda: [i for i in tasmota_items(hub)
                                  if i.mac == "dc:4f:22:a1:b2:c3" and i.state == "new"])
        await hub.db.flush()
        assert await hub.states.history(IFAN_ID) == []
        assert hub.devices.find(IFAN_ID) is None

    # the broker goes: every Tasmota device is unavailable until it is back
    broker.stop()
    await wait_until(lambda: hub.states.available(PLUG_ID) is False
                     and hub.states.available(BULB_ID) is False)
    broker.start()
    await wait_until(lambda: status(hub)["state"] == "connected")
    await wait_until(lambda: hub.states.available(PLUG_ID) is True
                     and hub.states.available(BULB_ID) is True)


async def test_bad_tasmota_messages_are_refused_and_counted(hub, broker) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota, fw.BULB)
        await wait_until(lambda: len(tasmota_items(hub)) == 1)
        before = status(hub)["tasmota"]["refused"]
        await tasmota.publish("tasmota/discovery/AABBCCDDEEFF/config", b"{not json", qos=1)
        await tasmota.publish("tasmota/discovery/AABBCCDDEEFF/config",
                              b'{"ip": 5, "ver": 1}', qos=1)  # fails hatasmota's schema
        await tasmota.publish(f"tele/{fw.BULB_TOPIC}/STATE", b"\xff\xfe garbage", qos=1)
        await tasmota.publish(f"tele/{fw.BULB_TOPIC}/STATE", b"x" * (70 * 1024), qos=1)
        await wait_until(lambda: status(hub)["tasmota"]["oversize"] == 1)
        # the oversized one, one that is not JSON, one that fails hatasmota's schema of the
        # firmware's message
        await wait_until(lambda: status(hub)["tasmota"]["refused"] == before + 3)
        assert len(tasmota_items(hub)) == 1
        await tasmota.publish(f"tele/{fw.BULB_TOPIC}/STATE", fw.state(POWER="ON"), qos=1)
        await wait_until(lambda: any(d.values.get("light_1") is True for d in
                                     hub.integrations.instance("mqtt").tasmota.devices.values()))
        assert status(hub)["state"] == "connected"


def test_settings_are_checked_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("integrations:\n  mqtt:\n    broker_url: mqtt://127.0.0.1:1883\n"
                    "    tasmota_discovery: \"yes\"\n"
                    "    tasmota_discovery_prefix: \"tasmota/#\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:4:24: integrations.mqtt.tasmota_discovery: expected a boolean, got str "
        "'yes'",
        f"{path}:5:31: integrations.mqtt.tasmota_discovery_prefix: must match "
        "'^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$', got 'tasmota/#'"]


async def test_tasmota_discovery_can_be_turned_off(broker, make_hub) -> None:
    async with make_hub(mqtt_section(broker, tasmota_discovery=False)) as hub, \
            device_client(broker) as tasmota:
        await wait_until(lambda: status(hub)["state"] == "connected")
        assert "tasmota" not in status(hub)
        assert not any(t.startswith("tasmota/") for t in
                       hub.integrations.instance("mqtt").connection.subscribed)
        await announce(tasmota, fw.PLUG)
        # then a device of the convention: once it is listed, the Tasmota one would be too
        await tasmota.publish("homeassistant/switch/plug9/relay/config",
                              '{"cmd_t": "p9/set", "dev": {"ids": "plug9"}}', qos=1)
        await wait_until(lambda: mqtt_discovered(hub))
        assert tasmota_items(hub) == [] and len(mqtt_discovered(hub)) == 1


async def test_shutter_with_tilt(hub, broker, api_client) -> None:
    blind_id = "mqtt.tasmota_3c6105b11d00"
    async with device_client(broker) as tasmota:
        await announce(tasmota, fw.BLIND)
        item = (await wait_until(lambda: [i for i in tasmota_items(hub)
                                          if len(i.data["entities"]) > 9]))[0]
        assert [e["key"] for e in item.data["entities"] if e["component"] == "cover"] == [
            "shutter_1"]  # two relays, one shutter
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        assert r.status == 201, await r.text()
        blind = hub.devices.get(blind_id)
        assert {"shutter_1", "shutter_1_position", "shutter_1_tilt"} <= set(blind.attributes)
        assert not {"relay_1", "relay_2"} & set(blind.attributes)
        assert {c.name for c in blind.commands} == {"open", "close", "stop", "set_position",
                                                    "set_tilt"}
        # moving down, then stopped at 30 %, tilt 45 of 0-90 (50 %)
        await tasmota.publish(f"stat/{fw.BLIND_TOPIC}/RESULT", fw.compact(
            {"Shutter1": {"Position": 60, "Direction": -1, "Target": 30, "Tilt": 90}}), qos=1)
        await wait_until(lambda: hub.states.value(blind_id, "shutter_1") == "closing")
        await tasmota.publish(f"tele/{fw.BLIND_TOPIC}/SENSOR", fw.compact(
            {"Time": "2026-12-03T08:06:00", "Shutter1": {"Position": 30, "Direction": 0,
                                                         "Target": 30, "Tilt": 45}}), qos=1)
        want = {"shutter_1": "open", "shutter_1_position": 30, "shutter_1_tilt": 50}
        await wait_until(lambda: {a: hub.states.value(blind_id, a) for a in want} == want)
        async with recording(broker, f"cmnd/{fw.BLIND_TOPIC}/#") as rec:
            for name, params in (("open", {}), ("stop", {}), ("close", {}),
                                 ("set_position", {"position": 40}), ("set_tilt", {"tilt": 50})):
                await command(api_client, blind_id, name, **params)
            sent = [("cmnd/blind_B11D00/ShutterOpen1", ""), ("cmnd/blind_B11D00/ShutterStop1", ""),
                    ("cmnd/blind_B11D00/ShutterClose1", ""),
                    ("cmnd/blind_B11D00/ShutterPosition1", "40"),
                    ("cmnd/blind_B11D00/ShutterTilt1", "45")]
            await wait_until(lambda: [m for m in rec.messages if m in sent] == sent)


async def test_hub_restart_keeps_adopted_tasmota_devices(broker, make_hub, tmp_path) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota, fw.PLUG)
        await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/STATE", fw.state(POWER="ON"), qos=1,
                              retain=True)  # with StateRetain 1
    async with make_hub(mqtt_section(broker)) as hub:
        item = (await wait_until(lambda: tasmota_items(hub)))[0]
        device = await hub.discovery.adopt(item.id, "Plug")
        await wait_until(lambda: hub.states.value(device.id, "relay_1") is True)
    async with device_client(broker) as tasmota:  # changed while the hub was down
        await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/STATE", fw.state(POWER="OFF"), qos=1,
                              retain=True)
    async with Hub(load_config(write_config(tmp_path, {
            "integrations": {"mqtt": mqtt_section(broker)}}))) as hub:
        assert hub.devices.get(PLUG_ID).name == "Plug"
        await wait_until(lambda: hub.states.available(PLUG_ID) is True
                         and hub.states.value(PLUG_ID, "relay_1") is False)
        items = tasmota_items(hub)
        assert len(items) == 1 and items[0].state == "adopted"
        assert hub.devices.get(PLUG_ID).attributes == device.attributes


async def test_a_flooding_tasmota_device_is_limited(broker, make_hub) -> None:
    async with make_hub(mqtt_section(broker, max_messages_per_device=5)) as hub, \
            device_client(broker) as tasmota:
        await wait_until(lambda: status(hub)["state"] == "connected")
        await announce(tasmota, fw.PLUG)
        await wait_until(lambda: tasmota_items(hub))
        for n in range(50):  # one burst: far more than 5 in the same second
            await tasmota.publish(f"tele/{fw.PLUG_TOPIC}/STATE",
                                  fw.state(POWER="ON" if n % 2 else "OFF"), qos=0)
        await wait_until(lambda: status(hub)["tasmota"]["flood_dropped"] > 0)
        assert status(hub)["state"] == "connected"
