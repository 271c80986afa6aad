"""MQTT devices as hub devices like any other, through a real mosquitto: an automation run
by a Zigbee2MQTT button's action, and privacy (export, restriction) for a device found with
the plain discovery convention (tests/mqtt/test_tasmota_native.py does Tasmota's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.auth.principal import Principal, Role
from hub.errors import NotFound
from tests.mqtt import tasmota_firmware as fw
from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    publish_json,
    recording,
    subscribed,
    wait_until,
)
from tests.privacy.test_export_erase import read_export

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "zigbee2mqtt.json").read_text())
BUTTON_ID = "mqtt.id_zigbee2mqtt_0x0017880104e45520"
SWITCH_ID = "mqtt.id_zigbee2mqtt_0x0017880104e45542"


async def test_a_zigbee2mqtt_button_action_runs_an_automation(hub, broker, api_client) -> None:
    """The button's `single` action (its device trigger, as Zigbee2MQTT announces it) turns
    on the right relay of the double wall switch; the run is in the automation's traces."""
    wanted = {"zigbee2mqtt_0x0017880104e45520", "zigbee2mqtt_0x0017880104e45542"}
    async with device_client(broker) as z2m:
        await publish_json(z2m, "zigbee2mqtt/bridge/state", {"state": "online"})
        for m in FIXTURE["messages"]:
            if set(m["payload"].get("device", {}).get("identifiers", ())) & wanted:
                await publish_json(z2m, m["topic"], m["payload"])
        await wait_until(lambda: len(mqtt_discovered(hub)) == 2)
        for item in mqtt_discovered(hub):
            r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
            assert r.status == 201, await r.text()
        assert "action_single" in hub.devices.get(BUTTON_ID).events
        body = {"id": "button_lights", "name": "Button turns the light on",
                "triggers": [{"type": "event", "device": BUTTON_ID,
                              "event": "action_single"}],
                "actions": [{"type": "command", "device": SWITCH_ID, "command": "turn_on",
                             "params": {"entity": "switch_right"}}]}
        r = await api_client.post("/api/automations", json=body)
        assert r.status == 201, await r.text()
        assert (await r.json())["valid"] is True
        await wait_until(lambda: subscribed(hub, "zigbee2mqtt/button/action"))

        async with recording(broker, "zigbee2mqtt/wall_switch_double/right/set") as rec:
            await z2m.publish("zigbee2mqtt/button/action", "double", qos=1)  # another action
            await z2m.publish("zigbee2mqtt/button/action", "single", qos=1)
            await wait_until(lambda: rec.on("zigbee2mqtt/wall_switch_double/right/set"))
            assert rec.on("zigbee2mqtt/wall_switch_double/right/set") == ["ON"]

        await wait_until(lambda: [t for t in hub.automations.traces("button_lights")
                                  if t["state"] != "running"])
        r = await api_client.get("/api/automations/button_lights/traces")
        traces = (await r.json())["traces"]
        assert len(traces) == 1 and traces[0]["state"] != "running"
        assert traces[0]["trigger"]["type"] == "event"
        assert traces[0]["trigger"]["device"] == BUTTON_ID


LAMP = {"name": None, "uniq_id": "pl1", "~": "privlamp", "stat_t": "~/state",
        "cmd_t": "~/set", "dev": {"ids": "pl1", "name": "Bedside lamp"}}
OTHER = {"name": None, "uniq_id": "po1", "stat_t": "privother/state",
         "dev": {"ids": "po1", "name": "Not adopted"}}


async def test_export_and_restriction_of_a_convention_device(hub, broker, api_client) -> None:
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/switch/pl1/config", LAMP)
        await publish_json(dev, "homeassistant/switch/po1/config", OTHER)
        await dev.publish("privother/state", "ON", qos=1, retain=True)
        item = (await wait_until(lambda: [d for d in mqtt_discovered(hub)
                                          if d.name == "Bedside lamp"]))[0]
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        device_id = (await r.json())["device"]["id"]
        await wait_until(lambda: subscribed(hub, "privlamp/state"))
        for payload in ("ON", "OFF"):
            await dev.publish("privlamp/state", payload, qos=1)
            await wait_until(lambda p=payload: hub.states.value(device_id, "switch")
                             is (p == "ON"))
        await hub.db.flush()

        # export: the adopted device and its history; nothing of the one not adopted
        r = await api_client.post("/api/privacy/export")
        assert r.status == 200, await r.text()
        doc = read_export(await r.read())
        exported = [d for d in doc["devices"] if d["id"] == device_id]
        assert exported and exported[0]["name"] == "Bedside lamp"
        assert exported[0]["integration"] == "mqtt"
        assert [h["value"] for h in doc["state_history"] if h["device_id"] == device_id
                and h["attribute"] == "switch"] == [True, False]
        assert not [d for d in doc["devices"] if "po1" in d["id"]]
        assert not [h for h in doc["state_history"] if "po1" in h["device_id"]]

        # restricted: a remote command (the cloud's channel) is refused as if the device
        # did not exist, and nothing is published; lifted, the same command goes out
        owner = Principal(api_client.user.id, "owner", Role.OWNER)
        r = await api_client.put(f"/api/privacy/restrictions/devices/{device_id}",
                                 json={"restricted": True})
        assert r.status == 200, await r.text()
        assert hub.privacy.device_usable(device_id) is False
        async with recording(broker, "privlamp/set") as rec:
            with pytest.raises(NotFound):
                await hub.commands.authorize_and_send(owner, device_id, "turn_on", {},
                                                      remote=True)
            # an automation may not use its events or state either
            body = {"id": "uses_lamp", "triggers": [{"type": "state", "device": device_id,
                                                     "attribute": "switch"}],
                    "actions": [{"type": "command", "device": device_id,
                                 "command": "turn_off"}]}
            r = await api_client.post("/api/automations", json=body)
            assert r.status == 400 and "is restricted" in await r.text(), await r.text()
            r = await api_client.put(f"/api/privacy/restrictions/devices/{device_id}",
                                     json={"restricted": False})
            assert r.status == 200
            result = await hub.commands.authorize_and_send(owner, device_id, "turn_on", {},
                                                           remote=True)
            assert result == {"published": [{"topic": "privlamp/set", "payload": "ON"}]}
            await wait_until(lambda: rec.on("privlamp/set"))
            assert rec.on("privlamp/set") == ["ON"]  # only the command after lifting it


DEVICES = {"zigbee2mqtt_0x0017880104e45542", "zigbee2mqtt_0x18fc2600000d7ae2",
           "zigbee2mqtt_0x18fc2600000d7ae3", "zigbee2mqtt_0xa4c138018cf95021"}


async def test_commands_say_which_entities_take_them(hub, broker, api_client) -> None:
    """Each command of an MQTT device lists in `choices.entity` the entities that take it
    (the double switch's two relays, the dual cover's two curtains, a Tasmota Shelly 2.5's
    two relays), and a string parameter its announced values (the thermostat's modes); the
    hub refuses another entity or value with a 400 naming the parameter."""
    async with device_client(broker) as client:
        await publish_json(client, "zigbee2mqtt/bridge/state", {"state": "online"})
        for m in FIXTURE["messages"]:
            if set(m["payload"].get("device", {}).get("identifiers", ())) & DEVICES:
                await publish_json(client, m["topic"], m["payload"])
        await client.publish(f"tele/{fw.SHELLY_TOPIC}/LWT", "Online", qos=1, retain=True)
        await client.publish(f"tasmota/discovery/{fw.SHELLY_MAC}/config",
                             fw.SHELLY["config"], qos=1, retain=True)
        await wait_until(lambda: len(mqtt_discovered(hub)) == 5 and any(
            e["key"] == "relay_2" for d in mqtt_discovered(hub)
            for e in d.data["entities"]))
        for item in mqtt_discovered(hub):
            r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
            assert r.status == 201, await r.text()

        async def commands(device_id: str) -> dict[str, dict]:
            r = await api_client.get(f"/api/devices/{device_id}")
            assert r.status == 200, await r.text()
            return {c["name"]: c for c in (await r.json())["commands"]}

        switch = await commands(SWITCH_ID)
        for name in ("turn_on", "turn_off", "toggle"):
            assert switch[name]["choices"] == {"entity": ["switch_left", "switch_right"]}
        curtains = await commands("mqtt.id_zigbee2mqtt_0xa4c138018cf95021")
        for name in ("open", "close", "stop", "set_position"):
            assert curtains[name]["choices"] == {"entity": ["cover_left", "cover_right"]}
        shelly = await commands("mqtt.tasmota_3c6105c0ffee")
        assert shelly["turn_on"]["choices"] == {"entity": ["relay_1", "relay_2"]}
        radiator = await commands("mqtt.id_zigbee2mqtt_0x18fc2600000d7ae2")
        assert radiator["set_value"]["choices"] == {"entity": ["pi_heating_demand"]}
        assert radiator["set_value"]["ranges"] == {"value": [0, 100]}
        assert radiator["set_hvac_mode"]["choices"] == {"entity": ["climate"],
                                                        "hvac_mode": ["off", "heat", "auto"]}
        room = await commands("mqtt.id_zigbee2mqtt_0x18fc2600000d7ae3")
        assert room["set_temperature"]["required"] == []
        assert room["set_temperature"]["ranges"] == {"target_temp_low": [5, 30],
                                                     "target_temp_high": [5, 30]}

        async def refused(device_id: str, command: str, field: str, **params) -> None:
            r = await api_client.post(f"/api/devices/{device_id}/commands",
                                      json={"command": command, "params": params})
            body = await r.json()
            assert r.status == 400 and body["error"]["field"] == field, body

        await refused(SWITCH_ID, "turn_on", "params.entity", entity="switch_middle")
        await refused("mqtt.tasmota_3c6105c0ffee", "turn_on", "params.entity", entity="relay_3")
        await refused("mqtt.id_zigbee2mqtt_0x18fc2600000d7ae2", "set_hvac_mode",
                      "params.hvac_mode", hvac_mode="cool")
        await refused("mqtt.id_zigbee2mqtt_0x18fc2600000d7ae2", "set_value", "params.entity",
                      entity="climate", value=3)

        async with recording(broker, "zigbee2mqtt/wall_switch_double/right/set",
                             "cmnd/shelly25_C0FFEE/Power2") as rec:
            for device_id, entity in ((SWITCH_ID, "switch_right"),
                                      ("mqtt.tasmota_3c6105c0ffee", "relay_2")):
                r = await api_client.post(f"/api/devices/{device_id}/commands", json={
                    "command": "turn_on", "params": {"entity": entity}})
                assert r.status == 200, await r.text()
            await wait_until(lambda: len(rec.messages) >= 2)
        assert sorted(rec.messages) == [("cmnd/shelly25_C0FFEE/Power2", "ON"),
                                        ("zigbee2mqtt/wall_switch_double/right/set", "ON")]
