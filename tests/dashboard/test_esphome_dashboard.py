"""ESPHome in the dashboard: the key prompt at adoption, and the controls of each entity type.

The hub is its own process browsing mDNS (inside the suite's namespace). For the key prompt
the device is the native-API double (Noise, tests/esphome/api_double.py) published with real
zeroconf under `_esphomelib._tcp` on loopback; for the controls it is the real ESPHome
controller firmware built for Linux (tests/esphome/firmware/controller.yaml) in a device
namespace joined by a veth pair, its answers read back through the hub's API.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import DEFAULT_VIRTUAL
from tests.dashboard.conftest import (
    RunningHub,
    open_page,
    screenshot,
    sign_in,
    start_hub,
    stop_hub,
)
from tests.dashboard.mqtt_pages import set_value
from tests.discovery import netns
from tests.discovery.util import wait_for
from tests.esphome import api_double, devices, firmware
from tests.esphome.devices import SERVICE_TYPE, txt_for

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"needs the suite's namespace: {netns.unavailable()}")

KEY = base64.b64encode(bytes(range(32, 64))).decode()
WRONG = base64.b64encode(bytes(range(64, 96))).decode()


async def test_adopt_an_encrypted_esphome_device_with_its_key(browser, tmp_path: Path) -> None:
    device = api_double.ApiDevice(name="hall-sensor", mac="0C:8B:95:44:55:66", key=KEY)
    await device.start()
    extra = {"discovery": {"mdns": {"enabled": True, "advertise": False, "interfaces": ["lo"]},
                           "ble": {"enabled": False}},
             "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}, "esphome": {}}}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)
    try:
        async with netns.mdns_device(None, "127.0.0.1") as mdns:
            reply = await mdns.send(op="register", name=device.name, type=SERVICE_TYPE,
                                    port=device.port, host=device.name,
                                    txt=txt_for("Hall sensor", device.mac, encrypted=True))
            assert reply["ok"]
            context, page, watch = await open_page(browser, hub)
            await sign_in(page, hub, totp=False)
            await page.goto(hub.url + "/#/discovery")
            card = page.locator("[data-discovered]", has_text="Hall sensor")
            await expect(card).to_contain_text("esphome", timeout=20000)
            await card.get_by_role("button", name="Adopt Hall sensor").click()
            key_input = page.get_by_label("Encryption key")
            await key_input.fill(WRONG)
            await page.get_by_role("button", name="Adopt with this key").click()
            await expect(page.locator("#adopt-status")).to_contain_text(
                "the device refused this encryption key")
            await expect(card).to_contain_text("Encryption key: the device refused this key")
            await screenshot(page, "esphome-01-key-refused")
            await card.get_by_role("button", name="Adopt Hall sensor").click()
            await page.get_by_label("Encryption key").fill(KEY)
            await page.get_by_role("button", name="Adopt with this key").click()
            await expect(card).to_contain_text("adopted", timeout=15000)
            await screenshot(page, "esphome-02-adopted")
            state = hub.request("GET", "/api/devices/esphome.0c8b95445566/state")
            assert "temperature" in state["attributes"]
            page_text = await page.content()
            assert KEY not in page_text and WRONG not in page_text
            # the one console error is the refused key's 400, which the page showed
            assert [e for e in watch.errors if "status of 400" not in e] == []
            assert len(watch.errors) <= 1 and watch.foreign == []
            await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)
        await device.stop()
    log = (tmp_path / "hub.log").read_text()
    assert KEY not in log and WRONG not in log


CTRL_MAC = "06:35:69:ab:f6:02"
CTRL_ID = "esphome.063569abf602"


async def _state(hub: RunningHub, device_id: str) -> dict[str, Any]:
    body = await asyncio.to_thread(hub.request, "GET", f"/api/devices/{device_id}/state")
    return {k: v["value"] for k, v in body["attributes"].items()}


async def _until(hub: RunningHub, device_id: str, **want: Any) -> dict[str, Any]:
    """The device's state once every `want` holds (as the firmware reported it)."""
    async def reached() -> dict[str, Any] | None:
        state = await _state(hub, device_id)
        return state if all(state.get(k) == v for k, v in want.items()) else None

    try:
        return await wait_for(reached, within=10, every=0.1)
    except AssertionError:
        raise AssertionError(f"wanted {want}, have {await _state(hub, device_id)}") from None


@pytest.mark.skipif(devices.skip_reason() is not None,
                    reason=f"ESPHome firmware: {devices.skip_reason()}")
async def test_controls_of_an_esphome_controller(browser, tmp_path: Path) -> None:
    """Each control of the controller's card, clicked in the browser, and the firmware's
    answer read back through the API: light brightness, RGB and effect, the fan's
    oscillation (a checkbox: true/false), the thermostat's modes (its own, from
    attribute_meta), and the second of two relays (a row of buttons per entity)."""
    binary = await asyncio.to_thread(firmware.build, "controller.yaml")
    async with devices.running(binary, "uone-ctrl", "Living room controller", CTRL_MAC,
                               tmp_path) as ctrl:
        extra = {"discovery": {"mdns": {"enabled": True, "advertise": False,
                                        "interfaces": [ctrl.lan.hub_if]},
                               "ble": {"enabled": False}},
                 "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}, "esphome": {}}}
        hub = await asyncio.to_thread(start_hub, tmp_path, extra)
        try:
            async def discovered() -> dict[str, Any] | None:
                body = await asyncio.to_thread(hub.request, "GET",
                                               "/api/discovered?integration=esphome")
                return next((d for d in body["discovered"] if d["mac"] == CTRL_MAC), None)

            item = await wait_for(discovered, within=20, every=0.1)
            adopted = await asyncio.to_thread(
                hub.request, "POST", f"/api/discovered/{item['id']}/adopt", {})
            assert adopted["device"]["id"] == CTRL_ID
            await _until(hub, CTRL_ID, relay_1=False, relay_2=False, thermostat="off")

            context, page, watch = await open_page(browser, hub)
            await sign_in(page, hub, totp=False)
            await page.goto(hub.url + "/#/home")
            card = f'[data-device="{CTRL_ID}"]'
            await page.wait_for_selector(f"{card} [data-control=strip_brightness]")
            await screenshot(page, "esphome-03-controller-controls")

            # light: brightness slider, colour picker, effect list
            await set_value(page, f"{card} [data-control=strip_brightness]", "128")
            await _until(hub, CTRL_ID, strip=True, strip_brightness=128)
            await set_value(page, f"{card} [data-control=strip_rgb]", "#ff0000")

            async def red() -> bool:
                rgb = (await _state(hub, CTRL_ID))["strip_rgb"]
                return rgb is not None and (rgb[0], rgb[1], rgb[2]) == (255, 0, 0)

            await wait_for(red, within=10, every=0.1)
            effect = page.locator(f"{card} [data-control=strip_effect]")
            assert await effect.locator("option").all_inner_texts() == [
                "None", "Random", "Strobe"]  # the firmware's list; None: no effect
            await expect(effect).to_have_value("None")
            await effect.select_option("Strobe")
            await _until(hub, CTRL_ID, strip_effect="Strobe")
            await expect(effect).to_have_value("Strobe")
            await effect.select_option("None")
            await _until(hub, CTRL_ID, strip_effect=None)

            # fan oscillation: a checkbox sending true, then false
            oscillating = page.locator(f"{card} [data-control=fan_oscillating]")
            await expect(oscillating).not_to_be_checked()
            await oscillating.check()
            await _until(hub, CTRL_ID, fan_oscillating=True)
            await oscillating.uncheck()
            await _until(hub, CTRL_ID, fan_oscillating=False)

            # climate: the thermostat's own modes (off and heat), not a fixed list
            mode = page.locator(f'{card} form[data-command="set_hvac_mode"]')
            assert await mode.locator("option").all_inner_texts() == ["off", "heat"]
            await mode.locator("select").select_option("heat")
            await mode.get_by_role("button", name="set hvac mode").click()
            await _until(hub, CTRL_ID, thermostat="heat")

            # two relays: each its own row; the second one switched alone
            relay_2 = page.locator(f'{card} [data-entity-controls="relay_2"]')
            await expect(relay_2).to_contain_text("relay 2")
            await relay_2.locator('[data-command="turn_on"]').click()
            await _until(hub, CTRL_ID, relay_2=True, relay_1=False)
            await page.locator(f'{card} [data-entity="relay_1"][data-command="toggle"]').click()
            await _until(hub, CTRL_ID, relay_1=True, relay_2=True)
            await relay_2.locator('[data-command="turn_off"]').click()
            await _until(hub, CTRL_ID, relay_1=True, relay_2=False)
            await screenshot(page, "esphome-04-controller-driven")
            assert watch.errors == [] and watch.foreign == []
            await context.close()
        finally:
            await asyncio.to_thread(stop_hub, hub)
