"""More everyday tasks in the browser (issue 19): event marks on the history graph, area
names and no `null` in statuses, guest grants of areas, the cloud pairing code as a QR code,
automations saved from their YAML; each read back through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import expect

from tests.dashboard.conftest import RunningHub, open_page, screenshot, sign_in


async def test_device_events_are_marks_on_the_history_graph(browser,
                                                             running_hub: RunningHub) -> None:
    hub = running_hub
    for _ in range(3):
        hub.request("POST", "/api/devices/virtual.button/commands", {"command": "press"})
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/device/virtual.button")
    marks = page.locator('#history svg.events [data-event="press"]')
    await expect(marks.first).to_be_visible()
    shown = sum(int(n) for n in await marks.evaluate_all("els => els.map(e => e.dataset.n)"))
    stored = hub.request("GET", "/api/devices/virtual.button/history")["events"]
    assert shown == len(stored) == 3
    # a press while the page is open shows up as it happens
    hub.request("POST", "/api/devices/virtual.button/commands", {"command": "press"})
    await expect(page.locator("#history svg.events")).to_have_attribute(
        "aria-label", "Events: 4 events")
    await screenshot(page, "31-device-events")
    await page.click('[data-range="7 d"]')
    await expect(page.locator("#history svg.events")).to_have_attribute(
        "aria-label", "Events: 4 events")
    assert watch.errors == [] and watch.foreign == []
    await context.close()
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/device/virtual.button")
    await expect(page.locator("#history svg.events")).to_be_visible()
    await screenshot(page, "32-device-events-phone")
    assert watch.errors == [] and watch.foreign == []
    await context.close()
