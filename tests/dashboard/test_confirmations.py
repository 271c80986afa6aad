"""A device's open confirmation on its page (issue 18.3): a BTHome sensor whose encryption
counter went back shows a banner; an admin confirms it there, a member only reads it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from tests.conftest import DEFAULT_VIRTUAL
from tests.dashboard.conftest import open_page, screenshot, sign_in, start_hub, stop_hub
from tests.mqtt.conftest import wait_until

DEVICE = "bthome.5448e68f80a5"
ITEM = "ble-5448e68f80a5"


async def test_device_page_confirms_a_counter_reset(browser, fake_bluez,
                                                    tmp_path: Path) -> None:
    from tests.discovery import bthome_adv as adv
    from tests.discovery.conftest import ENCRYPTED_MAC, KEY, ble_config

    def advert(counter: int, temperature: float, packet: int | None = None
               ) -> dict[str, bytes]:
        return {adv.BTHOME_UUID: adv.encrypted(adv.objects(
            packet_id=counter if packet is None else packet, temperature=temperature),
            ENCRYPTED_MAC, KEY, counter)}

    path = await fake_bluez.add_le_device(ENCRYPTED_MAC, "TH Sensor", rssi=-60,
                                          service_data=advert(10, 20.0))
    extra = ble_config()
    extra["integrations"]["virtual"] = {"devices": DEFAULT_VIRTUAL}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)  # inherits the fake bus

    def discovered() -> dict[str, Any] | None:
        items = hub.request("GET", "/api/discovered")["discovered"]
        return next((d for d in items if d["id"] == ITEM and d["data"]["bind_key"] == "ok"),
                    None)

    def temperature() -> Any:
        attrs = hub.request("GET", f"/api/devices/{DEVICE}/state")["attributes"]
        return attrs.get("temperature", {}).get("value")

    try:
        await wait_until(discovered)
        hub.request("POST", f"/api/discovered/{ITEM}/adopt", {})
        await fake_bluez.set_advertisement(path, service_data=advert(11, 21.0))
        await wait_until(lambda: temperature() == 21.0)
        # the battery was changed (or someone replays): counter 5 after 11 is refused, asked
        await fake_bluez.set_advertisement(path, service_data=advert(5, 19.0))
        await wait_until(lambda: "confirmations" in hub.request("GET", f"/api/devices/{DEVICE}"))
        hub.request("POST", "/api/users", {"username": "mia", "password": "mia's long pass",
                                           "role": "member"})

        # a member sees the question but has no button (the API would refuse: 403)
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False, username="mia", password="mia's long pass")
        await page.goto(hub.url + f"/#/device/{DEVICE}")
        banner = page.locator('[data-confirmation="counter_reset"]')
        await expect(banner).to_contain_text("older than the last one accepted (11)")
        await expect(banner.get_by_role("button", name="Confirm")).to_have_count(0)
        assert watch.errors == [] and watch.foreign == []
        await context.close()

        # the owner confirms on the device page
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + f"/#/device/{DEVICE}")
        banner = page.locator('[data-confirmation="counter_reset"]')
        await expect(banner).to_contain_text("Confirmation needed")
        await expect(banner).to_contain_text("(5)")
        # the device page also says which BLE source hears the sensor, as the API does
        heard = hub.request("GET", f"/api/devices/{DEVICE}")["connectivity"]
        await expect(page.locator("[data-connectivity]")).to_contain_text(
            f"heard by {heard['ble_source']}")
        await screenshot(page, "40-device-confirmation")
        await banner.get_by_role("button", name="Confirm").click()
        await expect(banner).to_have_count(0)
        assert watch.errors == [] and watch.foreign == []
        await context.close()

        # read back through the API: nothing open, the answer audited with who and what
        assert "confirmations" not in hub.request("GET", f"/api/devices/{DEVICE}")
        [entry] = hub.request("GET", "/api/audit?action=device.confirm")["entries"]
        assert entry["target"] == DEVICE
        assert entry["details"] == {"kind": "counter_reset", "last_accepted": 11, "seen": 5}
        owner = hub.request("GET", "/api/users/me")
        assert entry["actor"] == owner["id"]
        # the sensor goes on from the confirmed counter (a packet id after the last parsed,
        # 11: bthome-ble drops an older one for 4 s as a duplicate)
        await fake_bluez.set_advertisement(path, service_data=advert(6, 22.0, packet=12))
        await wait_until(lambda: temperature() == 22.0)
    finally:
        await asyncio.to_thread(stop_hub, hub)
