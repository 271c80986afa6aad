"""The dashboard adopts an ESPHome device that encrypts its API: the key prompt.

The hub is its own process browsing mDNS on loopback (inside the suite's namespace); the
device is the native-API double (Noise, tests/esphome/api_double.py) published with real
zeroconf under `_esphomelib._tcp` as a real device would be.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import DEFAULT_VIRTUAL
from tests.dashboard.conftest import open_page, screenshot, sign_in, start_hub, stop_hub
from tests.discovery import netns
from tests.esphome import api_double
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
