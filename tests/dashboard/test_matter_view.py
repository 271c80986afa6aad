"""The dashboard's Matter view with a real python-matter-server and a matter.js light:
commission with the pairing code (progress and attestation shown live), switch the light on
from its card, get a pairing code to share it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.dashboard.conftest import DEFAULT_VIRTUAL, open_page, sign_in, start_hub, stop_hub
from tests.discovery import netns
from tests.doubles import matter


async def test_commission_and_control_from_the_dashboard(browser, tmp_path: Path) -> None:
    reason = netns.unavailable() or matter.unavailable()
    if reason:
        pytest.skip(f"Matter dashboard test: {reason}")
    venv, npm = matter.server_venv(), matter.npm_dir()
    paa = tmp_path / "paa"
    matter.write_test_paa(npm, paa)
    async with netns.veth_lan(prefix="mtd", net=82) as lan:
        server = matter.MatterServer(venv, tmp_path / "server", paa)
        light = matter.MatterDevice(npm, lan.dev_ns, "onoff", 5560, 3500, tmp_path / "light")
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
                await card.locator("button[data-share]").click()
                await expect(card.locator(".pairing")).to_contain_text("Pairing code")
                assert watch.errors == [] and watch.foreign == []
                await context.close()
            finally:
                stop_hub(hub)
