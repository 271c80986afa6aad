"""The dashboard's Matter view says why the Matter server is not there (absent when the hub
started), and shows it connected once it is up, with a real python-matter-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.dashboard.conftest import DEFAULT_VIRTUAL, open_page, sign_in, start_hub, stop_hub
from tests.discovery import netns
from tests.doubles import matter


async def test_the_matter_view_says_why_the_server_is_down(browser, tmp_path: Path) -> None:
    reason = netns.unavailable() or matter.unavailable()
    if reason:
        pytest.skip(f"Matter dashboard test: {reason}")
    venv, npm = matter.server_venv(), matter.npm_dir()
    paa = tmp_path / "paa"
    matter.write_test_paa(npm, paa)
    async with netns.veth_lan(prefix="mtz", net=83):
        server = matter.MatterServer(venv, tmp_path / "server", paa)  # not started yet
        hub = start_hub(tmp_path, {"integrations": {
            "matter": {"server_url": server.url, "backoff_initial": 0.1, "backoff_max": 0.5},
            "virtual": {"devices": DEFAULT_VIRTUAL}}})
        try:
            context, page, watch = await open_page(browser, hub)
            await sign_in(page, hub, totp=False)
            await page.goto(hub.url + "/#/matter")
            status = page.locator("#matter-status")
            await expect(status).to_contain_text(f"Matter server {server.url} not reachable")
            await expect(status).to_contain_text("is uone-matter.service running?")
            # the rest of the page still works: the form is there to use once it is back
            await expect(page.locator("#matter-form input[name=code]")).to_be_visible()

            async with matter.running(server):
                await connected(hub)  # the view reads health when it opens: open it again
                await page.reload()
                await expect(status).to_contain_text("Matter server connected (0 devices)",
                                                     timeout=30_000)
                assert watch.errors == [] and watch.foreign == []
            await context.close()
        finally:
            stop_hub(hub)


async def connected(hub: Any, within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        health = await asyncio.to_thread(hub.request, "GET", "/api/health")
        if health["integration_details"]["matter"]["server"] == "connected":
            return
        assert loop.time() < deadline, health
        await asyncio.sleep(0.2)
