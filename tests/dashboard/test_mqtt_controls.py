"""MQTT devices on the dashboard: controls that fit each component (brightness and colour
temperature sliders, cover open/stop/close and position, a thermostat setpoint, a select)
publish the right messages on a real mosquitto."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
from playwright.async_api import expect

from tests.dashboard.conftest import open_page, screenshot, sign_in, start_hub, stop_hub
from tests.dashboard.mqtt_pages import broker_for, set_value
from tests.doubles import mosquitto
from tests.mqtt import tasmota_firmware as fw

FIXTURE = json.loads((Path(__file__).parents[1] / "mqtt" / "fixtures" /
                      "zigbee2mqtt.json").read_text())
WANTED = {"homeassistant/light/0x000b57fffec6a5b2/light/config",
          "homeassistant/cover/0x0017880104e45551/cover/config",
          "homeassistant/climate/0x0017882104a44559/climate/config",
          "homeassistant/select/0x18fc26000000cafe/device_mode/config"}
STATES = {
    "zigbee2mqtt/bulb": {"state": "ON", "brightness": 127, "color_temp": 370},
    "zigbee2mqtt/smart vent": {"state": "OPEN", "position": 60},
    "zigbee2mqtt/TS0601_thermostat": {"system_mode": "heat", "current_heating_setpoint": 21,
                                      "local_temperature": 19.5},
    "zigbee2mqtt/0x18fc26000000cafe": {"device_mode": "shutter"},
}


async def test_mqtt_device_controls(browser, tmp_path: Path) -> None:
    with broker_for(tmp_path) as broker:
        await _controls(browser, tmp_path, broker)


async def _controls(browser, tmp_path: Path, broker: mosquitto.Mosquitto) -> None:
    hub = None
    try:
        async with aiomqtt.Client("127.0.0.1", broker.plain_port) as z2m:
            await z2m.publish("zigbee2mqtt/bridge/state", '{"state": "online"}', qos=1,
                              retain=True)
            for m in FIXTURE["messages"]:
                if m["topic"] in WANTED:
                    await z2m.publish(m["topic"], json.dumps(m["payload"]), qos=1, retain=True)
            # one more entity on the bulb, with a template the hub refuses when it runs
            await z2m.publish("homeassistant/sensor/0x000b57fffec6a5b2/hostile/config",
                              json.dumps({"stat_t": "zigbee2mqtt/bulb", "unit_of_meas": "x",
                                          "val_tpl": "{{ 'a' * 100000000 }}",
                                          "dev": {"ids": ["zigbee2mqtt_0x000b57fffec6a5b2"]}}),
                              qos=1, retain=True)
            for topic, body in STATES.items():
                await z2m.publish(topic, json.dumps(body), qos=1, retain=True)
            hub = start_hub(tmp_path, {"integrations": {"mqtt": {
                "broker_url": f"mqtt://127.0.0.1:{broker.plain_port}"}}})
            for _ in range(200):
                found = hub.request("GET", "/api/discovered?source=mqtt")["discovered"]
                if len(found) == 4:
                    break
                await asyncio.sleep(0.05)
            assert len(found) == 4
            for item in found:
                hub.request("POST", f"/api/discovered/{item['id']}/adopt", {})
            await z2m.subscribe("zigbee2mqtt/+/set", qos=1)
            await z2m.subscribe("zigbee2mqtt/+/set/#", qos=1)

            context, page, watch = await open_page(browser, hub)
            await page.goto(hub.url + "/")
            await sign_in(page, hub)
            # the discovery page lists what each MQTT device announced
            await page.goto(hub.url + "/#/discovery")
            bulb_item = next(i for i in found if i["name"] == "bulb")
            listed = page.locator(f'[data-entities="{bulb_item["id"]}"]')
            await expect(listed).to_contain_text("(light)")
            await page.goto(hub.url + "/#/home")
            bulb = '[data-device="mqtt.id_zigbee2mqtt_0x000b57fffec6a5b2"]'
            vent = '[data-device="mqtt.id_zigbee2mqtt_0x0017880104e45551"]'
            thermo = '[data-device="mqtt.id_zigbee2mqtt_0x0017882104a44559"]'
            select = '[data-device="mqtt.id_zigbee2mqtt_0x18fc26000000cafe"]'
            await page.wait_for_selector(f"{bulb} [data-control=light_brightness]")
            assert await page.locator(f"{bulb} [data-control=light_brightness]").input_value() \
                == "128"
            problems = page.locator(f"{bulb} [data-problems]")
            await expect(problems).to_contain_text("hostile: value_template: a repeated value "
                                                   "would be too large")
            await screenshot(page, "mqtt-controls")

            await set_value(page, f"{bulb} [data-control=light_brightness]", "200")
            await set_value(page, f"{bulb} [data-control=light_color_temp]", "300")
            await set_value(page, f"{vent} [data-control=cover_position]", "25")
            await page.click(f'{vent} [data-command="stop"]')
            await set_value(page, f"{thermo} [data-control=climate_target_temperature]",
                             "22.5")
            # the select is a list of the announced options, showing the current one
            choice = page.locator(f'{select} [data-command="select_option"] select')
            assert await choice.locator("option").all_inner_texts() == ["light", "shutter",
                                                                         "disabled"]
            assert await choice.input_value() == "shutter"
            await choice.select_option("light")
            await page.click(f'{select} [data-command="select_option"] button')

            got: list[tuple[str, str]] = []

            async def collect() -> None:
                async for m in z2m.messages:
                    got.append((str(m.topic), m.payload.decode()))
                    if len(got) >= 6:
                        return
            await asyncio.wait_for(collect(), 10)
            assert ("zigbee2mqtt/bulb/set", json.dumps({"state": "ON", "brightness": 199})) \
                in got
            assert ("zigbee2mqtt/bulb/set", json.dumps({"state": "ON", "color_temp": 300})) \
                in got
            assert ("zigbee2mqtt/smart vent/set", '{ "position": 25 }') in got
            assert ("zigbee2mqtt/smart vent/set", "STOP") in got
            assert ("zigbee2mqtt/TS0601_thermostat/set/current_heating_setpoint", "22.5") in got
            assert ("zigbee2mqtt/0x18fc26000000cafe/set/device_mode", "light") in got
            assert watch.errors == [] and watch.foreign == []
            await context.close()
    finally:
        if hub is not None:
            stop_hub(hub)


# devices with several entities of a kind, and a number and two-point thermostat
SEVERAL = {"zigbee2mqtt_0x0017880104e45542",   # Aqara double wall switch: left, right
           "zigbee2mqtt_0xa4c138018cf95021",   # Girier TS130F: two curtains
           "zigbee2mqtt_0x18fc2600000d7ae2",   # Bosch BTH-RA: climate and a number
           "zigbee2mqtt_0x18fc2600000d7ae3"}   # Bosch BTH-RM230Z: heating/cooling setpoints
SEVERAL_STATES = {
    "zigbee2mqtt/wall_switch_double": {"state_left": "OFF", "state_right": "OFF"},
    "zigbee2mqtt/bosch_radiator": {"pi_heating_demand": 35, "operating_mode": "manual"},
    "zigbee2mqtt/bosch_rm230z": {"operating_mode": "manual", "system_mode": "heat",
                                 "occupied_heating_setpoint": 20.5,
                                 "occupied_cooling_setpoint": 26, "local_temperature": 21.2},
}


async def test_each_entity_of_a_device_has_its_controls(browser, tmp_path: Path) -> None:
    """The right rocker of a Zigbee2MQTT double switch, the second relay of a Tasmota Shelly
    2.5 and the right curtain of a dual cover module, each switched from its own row of
    buttons; a number field and a thermostat's low/high setpoints that refuse a value
    outside the entity's range in the page; the HVAC modes the thermostat announced. The
    exact messages are read on the broker."""
    with broker_for(tmp_path) as broker:
        await _several(browser, tmp_path, broker)


async def _several(browser, tmp_path: Path, broker: mosquitto.Mosquitto) -> None:
    hub = None
    try:
        async with aiomqtt.Client("127.0.0.1", broker.plain_port) as client:
            await client.publish("zigbee2mqtt/bridge/state", '{"state": "online"}', qos=1,
                                 retain=True)
            for m in FIXTURE["messages"]:
                if set(m["payload"].get("device", {}).get("identifiers", ())) & SEVERAL:
                    await client.publish(m["topic"], json.dumps(m["payload"]), qos=1,
                                         retain=True)
            for topic, body in SEVERAL_STATES.items():
                await client.publish(topic, json.dumps(body), qos=1, retain=True)
            await client.publish(f"tele/{fw.SHELLY_TOPIC}/LWT", "Online", qos=1, retain=True)
            await client.publish(f"tasmota/discovery/{fw.SHELLY_MAC}/config",
                                 fw.SHELLY["config"], qos=1, retain=True)
            hub = start_hub(tmp_path, {"integrations": {"mqtt": {
                "broker_url": f"mqtt://127.0.0.1:{broker.plain_port}"}}})
            for _ in range(200):
                found = hub.request("GET", "/api/discovered?source=mqtt")["discovered"]
                keys = {e["key"] for i in found for e in i["data"]["entities"]}
                if len(found) == 5 and {"relay_2", "switch_right", "cover_right"} <= keys:
                    break
                await asyncio.sleep(0.05)
            assert len(found) == 5
            for item in found:
                hub.request("POST", f"/api/discovered/{item['id']}/adopt", {})
            # the relays' commands (hatasmota also polls the device's status on cmnd/)
            relays = [f"cmnd/{fw.SHELLY_TOPIC}/{c}" for c in ("Power1", "Power2", "Backlog")]
            for pattern in ("zigbee2mqtt/+/set", "zigbee2mqtt/+/set/#", "zigbee2mqtt/+/+/set",
                            *relays):
                await client.subscribe(pattern, qos=1)

            context, page, watch = await open_page(browser, hub)
            sent: list[dict] = []  # every command the page asks the hub for
            page.on("request", lambda r: sent.append(r.post_data_json)
                    if r.method == "POST" and r.url.endswith("/commands") else None)
            await page.goto(hub.url + "/")
            await sign_in(page, hub)
            await page.goto(hub.url + "/#/home")
            switch = '[data-device="mqtt.id_zigbee2mqtt_0x0017880104e45542"]'
            shelly = '[data-device="mqtt.tasmota_3c6105c0ffee"]'
            curtains = '[data-device="mqtt.id_zigbee2mqtt_0xa4c138018cf95021"]'
            radiator = '[data-device="mqtt.id_zigbee2mqtt_0x18fc2600000d7ae2"]'
            room = '[data-device="mqtt.id_zigbee2mqtt_0x18fc2600000d7ae3"]'

            # one row of buttons per entity, named after it
            right = page.locator(f'{switch} [data-entity-controls="switch_right"]')
            await expect(right).to_contain_text("switch right")
            await expect(page.locator(f'{switch} [data-entity-controls="switch_left"]')) \
                .to_contain_text("switch left")
            second = page.locator(f'{shelly} [data-entity-controls="relay_2"]')
            await expect(second).to_contain_text("relay 2")
            await expect(page.locator(f'{curtains} [data-entity-controls="cover_right"]')) \
                .to_contain_text("cover right")

            # the number: a field with the entity's range, refusing 150 in the page
            number = page.locator(f'{radiator} form[data-command="set_value"]'
                                  '[data-entity="pi_heating_demand"]')
            field = number.locator("input")
            await expect(field).to_have_attribute("min", "0")
            await expect(field).to_have_attribute("max", "100")
            await expect(field).to_have_attribute("step", "1")
            await expect(field).to_have_value("35")
            await field.fill("150")
            await number.locator("button").click()
            assert await field.evaluate("el => el.validity.rangeOverflow") is True
            # the modes the thermostat announced, not a fixed list
            modes = page.locator(f'{radiator} form[data-command="set_hvac_mode"] select')
            assert await modes.locator("option").all_inner_texts() == ["off", "heat", "auto"]
            # the two-point thermostat's setpoints, refusing one above its maximum
            low = f"{room} [data-control=climate_target_temperature_low]"
            high = f"{room} [data-control=climate_target_temperature_high]"
            await expect(page.locator(low)).to_have_attribute("max", "30")
            await expect(page.locator(low)).to_have_value("20.5")
            await expect(page.locator(high)).to_have_value("26")
            await set_value(page, high, "40")
            assert await page.locator(high).evaluate("el => el.validity.rangeOverflow")
            await screenshot(page, "mqtt-several-entities")

            await right.locator('[data-command="turn_on"]').click()
            await second.locator('[data-command="turn_on"]').click()
            await page.click(f'{curtains} [data-entity-controls="cover_right"] '
                             '[data-command="stop"]')
            await field.fill("40")
            await number.locator("button").click()
            await modes.select_option("auto")
            await page.click(f'{radiator} form[data-command="set_hvac_mode"] button')
            await set_value(page, low, "19.5")
            await set_value(page, high, "25")

            want = [("zigbee2mqtt/wall_switch_double/right/set", "ON"),
                    ("cmnd/shelly25_C0FFEE/Power2", "ON"),
                    ("zigbee2mqtt/0xa4c138018cf95021/right/set", "STOP"),
                    ("zigbee2mqtt/bosch_radiator/set/pi_heating_demand", "40"),
                    ("zigbee2mqtt/bosch_radiator/set", '{"operating_mode": "schedule"}'),
                    ("zigbee2mqtt/bosch_rm230z/set/occupied_heating_setpoint", "19.5"),
                    ("zigbee2mqtt/bosch_rm230z/set/occupied_cooling_setpoint", "25")]
            got: list[tuple[str, str]] = []

            async def collect() -> None:
                async for m in client.messages:
                    got.append((str(m.topic), m.payload.decode()))
                    if all(w in got for w in want):
                        return
            await asyncio.wait_for(collect(), 10)
            # exactly these: nothing for the left rocker, the first relay or the left
            # curtain, and the refused values never left the page
            assert sorted(got) == sorted(want)
            assert {"entity": "pi_heating_demand", "value": 150} not in [
                s["params"] for s in sent]
            assert not [s for s in sent if s["params"].get("target_temp_high") == 40]
            assert [s["params"] for s in sent if s["command"] == "turn_on"] == [
                {"entity": "switch_right"}, {"entity": "relay_2"}]
            assert watch.errors == [] and watch.foreign == []
            await context.close()
    finally:
        if hub is not None:
            stop_hub(hub)
