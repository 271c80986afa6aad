"""The dashboard's Matter view with a real python-matter-server and a matter.js light:
commission with the pairing code (progress and attestation shown live), switch the light on
from its card (values with their units), get a pairing code to share it, drawn as a QR code
that scans to the code the API gave; screenshots at desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.dashboard.conftest import (
    DEFAULT_VIRTUAL,
    need_zbarimg,
    open_page,
    scan_qr,
    screenshot,
    sign_in,
    start_hub,
    stop_hub,
)
from tests.discovery import netns
from tests.doubles import matter


async def test_commission_and_control_from_the_dashboard(browser, tmp_path: Path) -> None:
    reason = netns.unavailable() or matter.unavailable()
    if reason:
        pytest.skip(f"Matter dashboard test: {reason}")
    need_zbarimg()
    venv, npm = matter.server_venv(), matter.npm_dir()
    paa = tmp_path / "paa"
    matter.write_test_paa(npm, paa)
    async with netns.veth_lan(prefix="mtd", net=82) as lan:
        server = matter.MatterServer(venv, tmp_path / "server", paa)
        light = matter.MatterDevice(npm, lan.dev_ns, "dimmable", 5560, 3500, tmp_path / "light")
        async with matter.running(server, light):
            hub = start_hub(tmp_path, {"integrations": {
                "matter": {"server_url": server.url}, "virtual": {"devices": DEFAULT_VIRTUAL}}})
            try:
                context, page, watch = await open_page(browser, hub)
                await sign_in(page, hub, totp=False)
                await page.goto(hub.url + "/#/matter")
                await expect(page.locator("#matter-status")).to_contain_text("connected")
                # the server's memory beside the hub's (found by its loopback port here)
                await expect(page.locator("#matter-status")).to_contain_text(
                    re.compile(r"Memory: server \d+ MiB, hub \d+ MiB"))
                await expect(page.locator("#matter-form select[name=ssid]")).to_have_value("")
                await page.fill("#matter-form input[name=code]", light.manual_code)
                await page.click("#matter-form button[type=submit]")
                await expect(page.locator("#matter-progress [data-state=succeeded]")) \
                    .to_be_visible(timeout=60_000)
                await expect(page.locator("#matter-progress [data-attestation]")) \
                    .to_contain_text("unverified")
                card = page.locator("[data-matter-device]")
                await expect(card).to_have_count(1)
                await card.locator("button[data-command=turn_on]").click()
                await expect(card.locator(".matter-state")).to_contain_text("on: on",
                                                                            timeout=15_000)
                # values with the unit the device states, as on the device page
                device_id = await card.get_attribute("data-matter-device")
                hub.request("POST", f"/api/devices/{device_id}/commands",
                            {"command": "set_brightness", "params": {"brightness": 40}})
                await expect(card.locator(".matter-state")).to_contain_text(
                    "brightness: 40 %", timeout=15_000)
                await screenshot(page, "50-matter")
                # the pairing code to share, as text and as a QR code drawn in the page
                async with page.expect_response("**/commissioning-window") as answer:
                    await card.locator("button[data-share]").click()
                codes = await (await answer.value).json()
                await expect(card.locator(".pairing")).to_contain_text(
                    f"Pairing code for another app (5 min): {codes['manual_code']}")
                scanned = await scan_qr(page, "[data-matter-device] .pairing svg.qr",
                                        tmp_path / "matter-qr.png")
                assert codes["qr_code"].startswith("MT:") and scanned == codes["qr_code"]
                await screenshot(page, "51-matter-share-qr")
                assert not [u for u in watch.requests  # drawn here, nothing fetched for it
                            if "qr" in u and not u.endswith("/static/js/qr.js")]
                assert watch.errors == [] and watch.foreign == []
                await context.close()
                context, page, watch = await open_page(browser, hub, width=390, height=844)
                await sign_in(page, hub, totp=False)
                await page.goto(hub.url + "/#/matter")
                await expect(page.locator("[data-matter-device] .matter-state")).to_contain_text(
                    "brightness: 40 %")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the Matter page scrolls sideways on a phone: {width}px"
                await screenshot(page, "52-matter-phone")
                assert watch.errors == [] and watch.foreign == []
                await context.close()
            finally:
                stop_hub(hub)
