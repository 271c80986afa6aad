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
