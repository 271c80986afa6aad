"""The dashboard in a real browser against a real hub process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import expect

from tests.conftest import DEFAULT_VIRTUAL
from tests.dashboard.conftest import (
    RunningHub,
    enable_totp,
    open_page,
    screenshot,
    sign_in,
    start_hub,
    stop_hub,
)

WEB = Path(__file__).resolve().parents[2] / "hub" / "web"


def test_dashboard_weighs_under_300_kb() -> None:
    total = sum(p.stat().st_size for p in WEB.rglob("*") if p.is_file())
    assert 0 < total < 300 * 1024, total


async def test_sign_in_with_totp_and_see_live_state(browser, running_hub: RunningHub) -> None:
    enable_totp(running_hub)
    context, page, watch = await open_page(browser, running_hub)
    await page.goto(running_hub.url + "/")
    await page.wait_for_selector("#login-form")  # how soon: bench/dashboard.py
    await screenshot(page, "01-sign-in")
    # Without the code the hub refuses and the page says why.
    await page.fill("#login-form input[name=username]", "owner")
    await page.fill("#login-form input[name=password]", "correct horse battery staple")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login-form [role=alert]")
    assert "code" in (await page.inner_text("#login-form [role=alert]")).lower()
    # the browser logs that refused request as a console error; it was the point here
    assert all("401" in e for e in watch.errors), watch.errors
    watch.errors.clear()
    await sign_in(page, running_hub)
    await screenshot(page, "02-home")
    lamp = page.locator('[data-device="virtual.lamp"] [data-attr="on"]')
    assert await lamp.inner_text() == "off"
    # Commanded through the API by another client: the page changes live, no reload.
    requests_before = len(watch.requests)
    running_hub.request("POST", "/api/devices/virtual.lamp/commands", {"command": "turn_on"})
    await expect(lamp).to_have_text("on", timeout=5000)
    assert len(watch.requests) == requests_before, "live state must come over the websocket"
    # Quick control on the page itself.
    await page.click('[data-device="virtual.lamp"] [data-command="turn_off"]')
    await expect(lamp).to_have_text("off", timeout=5000)
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_phone_layout_and_csp(browser, running_hub: RunningHub) -> None:
    context, page, watch = await open_page(browser, running_hub, width=390, height=844)
    response = await page.goto(running_hub.url + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    await sign_in(page, running_hub, totp=False)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways on a phone: {width}px"
    # Every form control has a label the screen reader can announce.
    unlabeled = await page.evaluate("""() => [...document.querySelectorAll('input,select')]
        .filter(e => !e.labels?.length && !e.getAttribute('aria-label')).length""")
    assert unlabeled == 0
    await screenshot(page, "03-home-phone")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_automations_toggle_run_and_trace(browser, running_hub: RunningHub) -> None:
    running_hub.request("POST", "/api/automations", {
        "id": "lamp_follows_motion", "name": "Lamp follows motion",
        "triggers": [{"type": "state", "device": "virtual.motion", "attribute": "on",
                      "to": True}],
        "actions": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"}],
    })
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/automations")
    row = page.locator('[data-automation="lamp_follows_motion"]')
    await expect(row.locator("[data-enabled]")).to_have_text("enabled")
    await row.get_by_role("button", name="Disable Lamp follows motion").click()
    await expect(row.locator("[data-enabled]")).to_have_text("disabled")
    listed = running_hub.request("GET", "/api/automations/lamp_follows_motion")
    assert listed["enabled"] is False
    await row.get_by_role("button", name="Enable Lamp follows motion").click()
    await expect(row.locator("[data-enabled]")).to_have_text("enabled")
    await row.get_by_role("button", name="Run now Lamp follows motion").click()
    await row.get_by_role("button", name="Traces of Lamp follows motion").click()
    trace = page.locator("#traces [data-trace]").first
    await expect(trace).to_contain_text("done")
    await expect(trace).to_contain_text("actions[0]")
    await screenshot(page, "04-automations")
    state = running_hub.request("GET", "/api/devices/virtual.lamp/state")
    assert state["attributes"]["on"]["value"] is True
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_automations_show_running_runs(browser, running_hub: RunningHub) -> None:
    running_hub.request("POST", "/api/automations", {
        "id": "slow_lamp", "name": "Slow lamp",
        "triggers": [{"type": "event", "device": "virtual.button", "event": "press"}],
        "actions": [{"type": "delay", "seconds": 3600},
                    {"type": "command", "device": "virtual.lamp", "command": "turn_on"}],
    })
    running_hub.request("POST", "/api/automations/slow_lamp/trigger", {})
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/automations")
    row = page.locator('[data-automation="slow_lamp"]')
    await expect(row.locator("[data-running]")).to_have_text("1 running")
    await row.get_by_role("button", name="Traces of Slow lamp").click()
    trace = page.locator('#traces [data-state="running"]').first
    await expect(trace).to_contain_text("running")
    await expect(trace.locator('[data-current="actions[0]"]')).to_contain_text("(delay) until")
    await screenshot(page, "04b-automations-running")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_adopt_a_discovered_ble_device(browser, fake_bluez, tmp_path: Path) -> None:
    from tests.discovery import bthome_adv as adv
    from tests.discovery.conftest import ble_config

    path = await fake_bluez.add_le_device(
        "A4:C1:38:00:00:09", "TH Sensor", rssi=-60,
        service_data={adv.BTHOME_UUID: adv.plain(adv.objects(
            packet_id=1, battery=80, temperature=19.5, humidity=50.0))})
    extra = ble_config()
    extra["integrations"]["virtual"] = {"devices": DEFAULT_VIRTUAL}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)  # inherits the fake bus
    try:
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/discovery")
        card = page.locator('[data-discovered="ble-a4c138000009"]')
        await expect(card).to_contain_text("BLE", timeout=15000)
        await expect(card).to_contain_text("bthome")
        await screenshot(page, "05-discovery")
        await card.get_by_role("button", name="Adopt TH Sensor").click()
        await expect(card).to_contain_text("adopted")
        device = hub.request("GET", "/api/devices/bthome.a4c138000009")
        assert device["transport"] == "ble"
        await page.goto(hub.url + "/#/home")
        sensor = page.locator('[data-device="bthome.a4c138000009"]')
        await expect(sensor).to_be_visible()
        # the sensor's next reading reaches the page live, with the unit BTHome states
        await fake_bluez.set_advertisement(path, service_data={adv.BTHOME_UUID: adv.plain(
            adv.objects(packet_id=2, battery=80, temperature=20.5, humidity=50.0))})
        await expect(sensor.locator('[data-attr="temperature"]')).to_have_text("20.5 °C",
                                                                             timeout=10000)
        await expect(sensor.locator('[data-attr="humidity"]')).to_have_text("50 %")
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_privacy_center_consent_and_export_download(browser,
                                                          running_hub: RunningHub) -> None:
    import io
    import zipfile

    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/privacy")
    box = page.locator('input[data-purpose="diagnostics"]')
    await expect(box).not_to_be_checked()
    await box.check()
    await expect(page.locator('input[data-purpose="diagnostics"]')).to_be_checked()
    consents = running_hub.request("GET", "/api/privacy/consents")["consents"]
    assert consents["diagnostics"]["granted"] is True
    assert consents["cloud_sync"]["granted"] is False
    await screenshot(page, "06-privacy")
    async with page.expect_download() as info:
        await page.click("#export-button")
    download = await info.value
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        devices = json.loads(archive.read(next(n for n in names if "devices" in n
                                               and not n.endswith("schema.json"))))
    assert any("schema" in n for n in names)
    assert "virtual.lamp" in json.dumps(devices)
    assert watch.errors == [] and watch.foreign == []
    await context.close()


PAGES = ("home", "discovery", "matter", "automations", "wifi", "privacy", "cloud", "homekit",
         "users")


async def test_every_page_renders_without_errors(browser, running_hub: RunningHub) -> None:
    """Every tab of the owner's navigation, on a desktop and on a phone: no errors, nothing
    wider than the phone, a screenshot of each (1N-name.png, 1N-name-phone.png)."""
    for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
        context, page, watch = await open_page(browser, running_hub, width=width, height=height)
        await page.goto(running_hub.url + "/")
        await expect(page.locator("#login-form")).to_be_visible()
        await screenshot(page, f"01-sign-in{suffix}")
        await sign_in(page, running_hub, totp=False)
        tabs = await page.locator("#nav a").evaluate_all(
            "els => els.map(a => a.getAttribute('href'))")
        assert tabs == [f"#/{name}" for name in PAGES], tabs  # a new tab belongs here too
        for n, name in enumerate(PAGES):
            await page.goto(running_hub.url + f"/#/{name}")
            await expect(page.locator("main h1")).to_be_visible()
            await page.wait_for_load_state("networkidle")
            await screenshot(page, f"1{n}-{name}{suffix}")
            assert await page.locator("main [role=alert]").count() == 0, name
            scroll = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{name} scrolls sideways at {width}px: {scroll}px"
        assert watch.errors == [] and watch.foreign == [], (suffix, watch.errors)
        await context.close()


async def test_owner_reads_another_accounts_sign_ins(browser, running_hub: RunningHub) -> None:
    running_hub.request("POST", "/api/users", {"username": "mia", "password": "mia's long pass",
                                               "role": "member"})
    for password in ("wrong password", "mia's long pass"):  # one failed, one good sign-in
        try:
            running_hub.request("POST", "/api/auth/login",
                                {"username": "mia", "password": password}, token="")
        except OSError:  # urllib raises on the 401
            pass
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/users")
    await page.click('tr[data-user="mia"] button')
    rows = page.locator("#user-logins tbody tr")
    await expect(rows).to_have_count(2)
    assert "Sign-in history of mia" in await page.inner_text("#user-logins h2")
    assert [await c.inner_text() for c in await page.locator(
        "#user-logins tbody tr td:last-child").all()] == ["ok", "failed"]
    await screenshot(page, "21-user-sign-ins")
    audit = running_hub.request("GET", "/api/audit?action=user.logins.read")
    assert len(audit["entries"]) == 1, audit
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_owner_edits_retention_ages(browser, running_hub: RunningHub) -> None:
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/privacy")
    days = page.locator('#retention-form input[name="events"]')
    await expect(days).to_have_value("30")
    await days.fill("0.001")  # below the minimum: the browser refuses it before the hub
    await page.click("#retention-form button[type=submit]")
    assert not await days.evaluate("(el) => el.checkValidity()")
    await days.fill("12.5")
    await page.click("#retention-form button[type=submit]")
    row = page.locator('#retention tr[data-class="events"]')
    await expect(row).to_contain_text("set here (config: 30)")
    status = running_hub.request("GET", "/api/privacy/retention")["classes"]
    assert status["events"]["days"] == 12.5 and status["events"]["set_by_owner"] is True
    assert status["history"]["set_by_owner"] is False  # unchanged fields are not sent
    await screenshot(page, "22-retention")
    running_hub.request("PATCH", "/api/privacy/retention", {"events": None})  # as it was
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_wifi_networks_add_list_delete(browser, running_hub: RunningHub) -> None:
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/wifi")
    await page.fill("#wifi-form input[name=ssid]", "Home Net")
    await page.fill("#wifi-form input[name=password]", "dashboard-secret-42")
    await page.select_option("#wifi-form select[name=security]", "wpa2")
    await page.click("#wifi-form button[type=submit]")
    row = page.locator('tr[data-ssid="Home Net"]')
    await expect(row).to_be_visible()
    await expect(page.locator("#wifi-form input[name=password]")).to_have_value("")
    await screenshot(page, "07-wifi")
    listed = running_hub.request("GET", "/api/wifi/networks")
    assert [n["ssid"] for n in listed["networks"]] == ["Home Net"]
    assert "dashboard-secret-42" not in json.dumps(listed)  # write-only
    await row.get_by_role("button", name="Delete Home Net").click()
    await expect(row).to_have_count(0)
    assert running_hub.request("GET", "/api/wifi/networks")["networks"] == []
    # a bad password is refused with the field named, and nothing is stored
    await page.fill("#wifi-form input[name=ssid]", "Short")
    await page.fill("#wifi-form input[name=password]", "x" * 7)
    await page.evaluate("() => document.querySelector('#wifi-form input[name=password]')"
                        ".removeAttribute('minlength')")
    await page.click("#wifi-form button[type=submit]")
    await expect(page.locator("#wifi-form [role=alert]")).to_contain_text("8")
    assert running_hub.request("GET", "/api/wifi/networks")["networks"] == []
    assert watch.foreign == []
    assert all("400" in e for e in watch.errors), watch.errors
    await context.close()


async def test_onboarding_of_the_first_owner(browser, tmp_path: Path) -> None:
    hub = await asyncio.to_thread(start_hub, tmp_path, owner=False)
    try:
        code = await asyncio.to_thread((hub.data / "onboarding-code").read_text)
        context, page, watch = await open_page(browser, hub)
        await page.goto(hub.url + "/")
        form = page.locator("#onboarding-form")
        await expect(form).to_be_visible()
        await screenshot(page, "00-onboarding")
        phone, phone_page, phone_watch = await open_page(browser, hub, width=390, height=844)
        await phone_page.goto(hub.url + "/")
        await expect(phone_page.locator("#onboarding-form")).to_be_visible()
        await screenshot(phone_page, "00-onboarding-phone")
        width = await phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"onboarding scrolls sideways on a phone: {width}px"
        assert phone_watch.errors == [] and phone_watch.foreign == []
        await phone.close()
        await form.locator("input[name=code]").fill(code.strip())
        await form.locator("input[name=username]").fill("olga")
        await form.locator("input[name=password]").fill("a long owner passphrase")
        await form.locator("button[type=submit]").click()
        await expect(page.locator('[data-device="virtual.lamp"]')).to_be_visible()
        # the code is spent: the hub has its owner and signs her in normally from now on
        health = hub.request("GET", "/api/health", token="")
        assert health["onboarding_required"] is False
        session = hub.request("POST", "/api/auth/login",
                              {"username": "olga", "password": "a long owner passphrase"},
                              token="")
        assert session["user"]["role"] == "owner"
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_cloud_secrets_the_config_names_are_set_in_the_dashboard(browser,
                                                                       tmp_path: Path) -> None:
    cloud = {"broker_url": "mqtts://127.0.0.1:8883", "username": "hub",
             "password_secret": "home_broker", "passphrase_secret": "sync_phrase"}
    hub = await asyncio.to_thread(start_hub, tmp_path, {"cloud": cloud})
    try:
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/cloud")
        form = page.locator('form[data-secret="home_broker"]')
        await expect(form).to_contain_text("Broker password")
        await expect(form).to_contain_text('"home_broker": not set')
        await expect(page.locator('form[data-secret="sync_phrase"]')).to_contain_text(
            "Sync passphrase")
        await form.locator("input").fill("broker-secret-42")
        await form.locator("button[type=submit]").click()
        await expect(page.locator('form[data-secret="home_broker"]')).to_contain_text(
            '"home_broker": set')
        await expect(page.locator('form[data-secret="home_broker"] input')).to_have_value("")
        await screenshot(page, "10-cloud-secrets")
        listed = hub.request("GET", "/api/vault/secrets")
        assert [s["name"] for s in listed["secrets"]] == ["home_broker"]
        assert {r["name"]: r["set"] for r in listed["referenced"]} == {
            "home_broker": True, "sync_phrase": False}
        assert "broker-secret-42" not in json.dumps(listed)  # write-only
        assert watch.foreign == [] and watch.errors == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)
