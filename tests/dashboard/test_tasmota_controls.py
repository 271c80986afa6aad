"""Tasmota devices (native discovery) on the dashboard: the bulb's brightness slider spans
Tasmota's Dimmer (0-100) and with the colour temperature slider publishes the Backlog
hatasmota builds; the iFan's speed slider and the plug's off button publish what Tasmota
expects, on a real mosquitto."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
from playwright.async_api import expect

from tests.dashboard.conftest import open_page, screenshot, sign_in, start_hub, stop_hub
from tests.dashboard.mqtt_pages import broker_for, set_value
from tests.mqtt import tasmota_firmware as fw


async def test_tasmota_device_controls(browser, tmp_path: Path) -> None:
    with broker_for(tmp_path) as broker:
        hub = None
        try:
            async with aiomqtt.Client("127.0.0.1", broker.plain_port) as tasmota:
                for mac in (fw.PLUG_MAC, fw.BULB_MAC, fw.IFAN_MAC):
                    topic, model = fw.TOPICS[mac], fw.MODELS[mac]
                    await tasmota.publish(f"tele/{topic}/LWT", "Online", qos=1, retain=True)
                    await tasmota.publish(f"tasmota/discovery/{mac}/config", model["config"],
                                          qos=1, retain=True)
                    await tasmota.publish(f"tasmota/discovery/{mac}/sensors", model["sensors"],
                                          qos=1, retain=True)
                hub = start_hub(tmp_path, {"integrations": {"mqtt": {
                    "broker_url": f"mqtt://127.0.0.1:{broker.plain_port}"}}})
                for _ in range(200):
                    found = hub.request("GET", "/api/discovered?source=mqtt")["discovered"]
                    if len(found) == 3 and all(len(i["data"]["entities"]) > 9 for i in found):
                        break
                    await asyncio.sleep(0.05)
                assert len(found) == 3
                for item in found:
                    hub.request("POST", f"/api/discovered/{item['id']}/adopt", {})
                await tasmota.publish(f"tele/{fw.BULB_TOPIC}/STATE", fw.state(
                    POWER="ON", Dimmer=40, Color="FF80000000", HSBColor="30,100,40", White=0,
                    CT=250, Scheme=0), qos=1)
                await tasmota.subscribe("cmnd/#", qos=1)

                context, page, watch = await open_page(browser, hub)
                await page.goto(hub.url + "/")
                await sign_in(page, hub)
                await page.goto(hub.url + "/#/home")
                bulb = '[data-device="mqtt.tasmota_c45bbe123456"]'
                fan = '[data-device="mqtt.tasmota_dc4f22a1b2c3"]'
                plug = '[data-device="mqtt.tasmota_a4cf12abcdef"]'
                brightness = page.locator(f"{bulb} [data-control=light_1_brightness]")
                await expect(brightness).to_have_attribute("max", "100")
                await expect(brightness).to_have_value("40")
                await screenshot(page, "tasmota-controls")

                await set_value(page, f"{bulb} [data-control=light_1_brightness]", "70")
                await set_value(page, f"{bulb} [data-control=light_1_color_temp]", "300")
                await set_value(page, f"{fan} [data-control=fan_percentage]", "67")
                await page.click(f'{plug} [data-command="turn_off"]')

                want = [("cmnd/tasmota_123456/Backlog", "NoDelay;Dimmer 70"),
                        ("cmnd/tasmota_123456/Backlog", "NoDelay;Power1 ON;NoDelay;CT 300"),
                        ("cmnd/ifan03_A1B2C3/FanSpeed", "2"),
                        ("cmnd/tasmota_ABCDEF/Power1", "OFF")]
                got: list[tuple[str, str]] = []

                async def collect() -> None:
                    async for m in tasmota.messages:
                        got.append((str(m.topic), m.payload.decode()))
                        if all(w in got for w in want):
                            return
                await asyncio.wait_for(collect(), 10)
                # each control's command once (the page sends them independently: any order)
                assert sorted(g for g in got if g in want) == sorted(want)
                assert watch.errors == [] and watch.foreign == []
                await context.close()
        finally:
            if hub is not None:
                stop_hub(hub)

