"""The dashboard's HomeKit parts in Chromium against a hub process: pairing an accessory
from the Discovery page with its setup code (a wrong one first), and the bridge page with
the setup code, the QR code and picking a device. mDNS on the suite namespace's loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.dashboard.conftest import open_page, screenshot, sign_in, start_hub, stop_hub
from tests.discovery import netns
from tests.homekit.conftest import PIN, accessory

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"HomeKit namespace tests: {netns.unavailable()}")


@pytest.fixture
def homekit_hub(tmp_path: Path) -> Any:
    hub = start_hub(tmp_path, {
        "discovery": {"mdns": {"enabled": True, "interfaces": ["lo"], "advertise": False,
                               "interface_check": 0.2}, "ble": {"enabled": False}},
        "homekit_bridge": {"enabled": True, "port": free_port()},
        "integrations": {"virtual": {"devices": [
            {"id": "lamp", "name": "Lamp", "kind": "switch", "area": "living"}]},
            "homekit_controller": {}},
    })
    try:
        yield hub
    finally:
        stop_hub(hub)


async def test_pair_from_discovery_then_show_it_in_apple_home(browser: Any,
                                                              homekit_hub: Any) -> None:
    async with accessory(None, "127.0.0.1", "light", free_port()) as light:
        context, page, watch = await open_page(browser, homekit_hub)
        await sign_in(page, homekit_hub, totp=False)
        await page.goto(homekit_hub.url + "/#/discovery")
        pair = page.get_by_role("button", name="Pair Test Light")
        await pair.wait_for(timeout=30000)
        await pair.click()
        await page.fill("input[name=setup_code]", "123-45-679")
        await page.click("#pair-status >> xpath=.. >> button[type=submit]")
        await page.wait_for_selector("#pair-status .error:has-text('refused this setup code')")
        await page.wait_for_selector("[data-discovered] .error:has-text('refused')")
        await page.fill("input[name=setup_code]", PIN)
        await page.click("#pair-status >> xpath=.. >> button[type=submit]")
        await page.wait_for_selector("[data-discovered]:has-text('adopted')", timeout=20000)
        device_id = "homekit." + light.hap_id.replace(":", "")
        name = homekit_hub.request("GET", f"/api/devices/{device_id}")["name"]
        assert name.startswith("Test Light")  # the accessory's mDNS name
        await screenshot(page, "homekit-discovery-paired")

        await page.goto(homekit_hub.url + "/#/homekit")
        await page.wait_for_selector("[data-bridge-state=running]", timeout=20000)
        status = homekit_hub.request("GET", "/api/homekit/bridge")
        assert await page.text_content("#homekit-code") == status["setup_code"]
        # the QR code is drawn in the page from the setup URI (scanned in
        # tests/dashboard/test_everyday_more.py); nothing is fetched for it
        qr = await page.wait_for_selector("#homekit-qr svg.qr path")
        assert len(await qr.get_attribute("d") or "") > 100
        await page.select_option("select[name=device]", device_id)
        await page.click("text=Show in Apple Home >> nth=-1")
        await page.wait_for_selector(f"[data-shown='{device_id}']")
        shown = homekit_hub.request("GET", "/api/homekit/bridge")["devices"]
        assert [d["device_id"] for d in shown] == [device_id]
        await screenshot(page, "homekit-bridge")
        await page.get_by_role("button", name=f"Stop showing {name}").click()
        await page.wait_for_selector(f"[data-shown='{device_id}']", state="detached")
        assert homekit_hub.request("GET", "/api/homekit/bridge")["devices"] == []
        assert not watch.foreign, watch.foreign
        # the browser logs the wrong code's answer; nothing else went wrong on the page
        assert [e for e in watch.errors if "400 (Bad Request)" not in e] == []
        assert len(watch.errors) == 1
        await context.close()
