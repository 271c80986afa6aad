"""Everyday tasks done in the browser (issue 19), each read back through the API."""

from __future__ import annotations

from playwright.async_api import expect

from tests.dashboard.conftest import (
    RunningHub,
    new_automation_on_motion,
    open_page,
    screenshot,
    sign_in,
)


def test_whole_dashboard_stays_under_150_kb() -> None:
    from pathlib import Path

    web = Path(__file__).resolve().parents[2] / "hub" / "web"
    total = sum(p.stat().st_size for p in web.rglob("*") if p.is_file())
    assert 0 < total < 150 * 1024, f"hub/web weighs {total} bytes"


def _user(hub: RunningHub, name: str) -> dict:
    return next(u for u in hub.request("GET", "/api/users")["users"] if u["username"] == name)


async def test_users_page_manages_accounts_and_tokens(browser, running_hub: RunningHub) -> None:
    hub = running_hub
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/users")
    # add a guest who is a minor
    await page.click("#user-add >> xpath=.. >> summary")
    form = page.locator("#user-add")
    await form.locator("input[name=username]").fill("tom")
    await form.locator("input[name=password]").fill("tom's long password")
    await form.locator("select[name=role]").select_option("guest")
    await form.locator("input[name=is_minor]").check()
    await form.get_by_role("button", name="Add user").click()
    row = page.locator('[data-user="tom"]')
    await expect(row).to_be_visible()
    tom = _user(hub, "tom")
    assert tom["role"] == "guest" and tom["is_minor"] is True
    # grant a device that does not exist: refused, the message sits on the field
    await row.get_by_role("button", name="Manage tom").click()
    grants = page.locator("#grants")
    await grants.locator("input[name=granted_devices]").fill("virtual.lamp, virtual.nope")
    await grants.get_by_role("button", name="Save access").click()
    err = grants.locator('.field-error[data-field="granted_devices[1]"]')
    await expect(err).to_contain_text("virtual.nope")
    await expect(grants.locator("input[name=granted_devices]")).to_have_attribute(
        "aria-invalid", "true")
    assert _user(hub, "tom")["granted_devices"] == []
    await screenshot(page, "20-users-grant-error")
    await grants.locator("input[name=granted_devices]").fill("virtual.lamp")
    await grants.get_by_role("button", name="Save access").click()
    # shown by name, not id
    await expect(page.locator('[data-user="tom"] [data-grants]')).to_have_text("Lamp")
    assert _user(hub, "tom")["granted_devices"] == ["virtual.lamp"]
    # change the role
    await page.locator('[data-user="tom"] select[data-role]').select_option("member")
    await expect(page.locator('[data-user="tom"] [data-grants]')).to_have_text("all devices")
    assert _user(hub, "tom")["role"] == "member"
    # reset the password: the new one signs in
    await page.locator('[data-user="tom"]').get_by_role("button", name="Manage tom").click()
    await page.fill("#reset-password input[name=password]", "a brand new password")
    await page.click("#reset-password button[type=submit]")
    await expect(page.locator("#reset-password .ok")).to_have_text("Password changed")
    signed = hub.request("POST", "/api/auth/login",
                         {"username": "tom", "password": "a brand new password"}, token="")
    assert signed["user"]["username"] == "tom"
    # tokens: created and shown once, listed, revoked
    await page.fill("#token-add input[name=name]", "backup script")
    await page.click("#token-add button[type=submit]")
    raw = await page.locator("#new-token").inner_text()
    assert raw and hub.request("GET", "/api/users/me", token=raw)["username"] == "owner"
    await expect(page.locator('[data-token="backup script"]')).to_be_visible()
    longs = [t for t in hub.request("GET", "/api/tokens")["tokens"] if t["kind"] == "long"]
    assert [t["name"] for t in longs] == ["backup script"]
    token_id = longs[0]["id"]
    await screenshot(page, "21-users-token")
    await page.get_by_role("button", name="Revoke backup script").click()
    await expect(page.locator('[data-token="backup script"]')).to_have_count(0)
    assert not [t for t in hub.request("GET", "/api/tokens")["tokens"] if t["kind"] == "long"]
    # delete (asks first)
    await page.locator('[data-user="tom"]').get_by_role("button", name="Manage tom").click()
    await page.get_by_role("button", name="Delete user").click()
    await page.get_by_role("button", name="Yes, delete tom").click()
    await expect(page.locator('[data-user="tom"]')).to_have_count(0)
    assert all(u["username"] != "tom" for u in hub.request("GET", "/api/users")["users"])
    # each of those actions is in the audit log, by the owner, as the API's own are
    owner_id = hub.request("GET", "/api/users/me")["id"]
    log = hub.request("GET", "/api/audit?limit=100")["entries"]
    done = [(e["action"], e["target"], e["details"]) for e in reversed(log)
            if e["actor"] == owner_id and e["target"] in (tom["id"], token_id)]
    assert done == [
        ("user.create", tom["id"], {"username": "tom", "role": "guest", "is_minor": True}),
        ("user.update", tom["id"], {"granted_devices": ["virtual.lamp"], "granted_areas": []}),
        ("user.update", tom["id"], {"role": "member"}),
        ("user.password", tom["id"], {"sessions_ended": 0}),
        ("token.create", token_id, {"user_id": owner_id, "name": "backup script",
                                    "kind": "long"}),
        ("token.revoke", token_id, {"user_id": owner_id, "kind": "long",
                                    "name": "backup script"}),
        ("user.delete", tom["id"], {"username": "tom"}),
    ], done
    # the audit log names people, not ids, also a deleted account and a revoked token
    await page.goto(hub.url + "/#/privacy")
    actors = page.locator("#audit [data-actor]")
    await expect(actors.first).to_be_visible()
    texts = await actors.all_inner_texts()
    assert "owner" in texts and owner_id not in texts
    for action, label in (("user.create", "tom"), ("user.password", "tom"),
                          ("user.delete", "tom"), ("token.create", "token “backup script”"),
                          ("token.revoke", "token “backup script”")):
        await expect(page.locator(f'#audit tr[data-action="{action}"] [data-target]').first) \
            .to_have_text(label)
    await screenshot(page, "44-audit-names")
    assert watch.errors == [] or all("400" in e for e in watch.errors), watch.errors
    assert watch.foreign == []
    await context.close()


async def test_users_page_on_a_phone(browser, running_hub: RunningHub) -> None:
    context, page, watch = await open_page(browser, running_hub, width=390, height=844)
    await sign_in(page, running_hub, totp=False)
    await page.goto(running_hub.url + "/#/users")
    await expect(page.locator("#tokens")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"users page scrolls sideways on a phone: {width}px"
    await screenshot(page, "22-users-phone")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_device_page_rename_move_history_remove(browser, tmp_path) -> None:
    import asyncio

    from tests.dashboard.conftest import start_hub, stop_hub

    devices = [{"id": "temp", "name": "Temperature", "kind": "sensor", "area": "living",
                "initial": 20.0, "unit": "°C"},
               {"id": "lamp", "name": "Lamp", "kind": "switch", "area": "living"}]
    hub = await asyncio.to_thread(start_hub, tmp_path,
                                  {"integrations": {"virtual": {"devices": devices}}})
    try:
        for v in (21.5, 23.0, 22.0):
            hub.request("POST", "/api/devices/virtual.temp/commands",
                        {"command": "set", "params": {"value": v}})
        for c in ("turn_on", "turn_off"):
            hub.request("POST", "/api/devices/virtual.lamp/commands", {"command": c})
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.locator('[data-device="virtual.temp"] a[data-open]').click()
        # the unit the device states is shown with its value
        await expect(page.locator('#attributes [data-attr="value"]')).to_have_text("22 °C")
        await expect(page.locator("[data-available]")).to_have_text("available")
        # numbers as a line over a min/max band
        chart = page.locator("#history svg.chart").first
        await expect(chart.locator(".line")).to_have_count(1)
        await screenshot(page, "23-device")
        await page.click('[data-range="7 d"]')
        await expect(page.locator('[data-range="7 d"]')).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#history svg.chart .line")).to_have_count(1)
        # rename and move to a new area, by name
        await page.fill("#device-settings input[name=name]", "Living room temperature")
        await page.fill("#device-settings input[name=area]", "Kitchen")
        await page.click("#device-settings button[type=submit]")
        await expect(page.locator("main h1")).to_have_text("Living room temperature")
        d = hub.request("GET", "/api/devices/virtual.temp")
        assert d["name"] == "Living room temperature" and d["area"] == "Kitchen"
        # on/off as a timeline band
        await page.goto(hub.url + "/#/device/virtual.lamp")
        await expect(page.locator("#history svg.timeline rect.on")).to_have_count(1)
        await expect(page.locator("#history svg.timeline rect.off")).to_have_count(2)
        await screenshot(page, "24-device-switch")
        # remove (asks first)
        await page.get_by_role("button", name="Remove device").click()
        await page.get_by_role("button", name="Yes, remove Lamp").click()
        await page.wait_for_url("**/#/home")
        ids = [x["id"] for x in hub.request("GET", "/api/devices")["devices"]]
        assert "virtual.lamp" not in ids
        assert watch.errors == [] and watch.foreign == []
        await context.close()
        context, page, watch = await open_page(browser, hub, width=390, height=844)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/device/virtual.temp")
        await expect(page.locator("#history svg.chart").first).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await screenshot(page, "25-device-phone")
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_history_starts_with_the_value_held_before_the_range(browser, tmp_path) -> None:
    """A porch light on since two hours ago and a sensor that has not changed since: the 1 h
    graphs show them from the start of the range, not "Nothing recorded"."""
    import asyncio
    import re
    import sqlite3
    import time

    from tests.dashboard.conftest import PASSWORD, start_hub, stop_hub

    devices = [{"id": "porch", "name": "Porch light", "kind": "switch", "initial": True},
               {"id": "temp", "name": "Temperature", "kind": "sensor", "initial": 20.0,
                "unit": "°C"}]
    extra = {"integrations": {"virtual": {"devices": devices}}}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)
    await asyncio.to_thread(stop_hub, hub)
    db = sqlite3.connect(hub.data / "hub.db")  # two hours later: all of it happened before
    with db:
        for table in ("history", "history_recent"):
            db.execute(f"UPDATE {table} SET ts = ts - 7200")
        db.execute("UPDATE states SET last_changed = last_changed - 7200, "
                   "last_updated = last_updated - 7200")
    db.close()
    hub = await asyncio.to_thread(start_hub, tmp_path, extra, owner=False)
    try:
        hub.token = hub.request("POST", "/api/auth/login",
                                {"username": "owner", "password": PASSWORD},
                                token="")["access_token"]
        r = hub.request("GET", f"/api/devices/virtual.porch/history?since={time.time() - 3600}"
                        "&points=200")
        assert r["changes"] == [] and [(b["attribute"], b["value"]) for b in r["before"]] \
            == [("on", True)], r
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/device/virtual.porch")
        await page.click('[data-range="1 h"]')
        band = page.locator("#history svg.timeline rect")
        # on across the whole range: from the left edge of the plot (x 44) to its right (592)
        await expect(band).to_have_attribute("x", "44")
        await expect(band).to_have_count(1)
        assert await band.get_attribute("class") == "on"
        assert round(float(await band.get_attribute("width") or 0)) == 592 - 44
        await screenshot(page, "42-device-held-on")
        await page.goto(hub.url + "/#/device/virtual.temp")
        await page.click('[data-range="1 h"]')
        # unchanged since: a flat line across the range at the value it held
        await expect(page.locator("#history svg.chart polyline.line")).to_have_attribute(
            "points", re.compile(r"^44\.0,(\S+) 592\.0,\1$"))
        assert watch.errors == [] and watch.foreign == []
        await context.close()
        context, page, watch = await open_page(browser, hub, width=390, height=844)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/device/virtual.porch")
        await page.click('[data-range="1 h"]')
        await expect(page.locator("#history svg.timeline rect.on")).to_have_count(1)
        await screenshot(page, "43-device-held-on-phone")
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_roles_shape_navigation_and_phone_automations(browser,
                                                            running_hub: RunningHub) -> None:
    hub = running_hub
    hub.request("POST", "/api/users", {"username": "mia", "password": "mia's long pass",
                                       "role": "member"})
    hub.request("POST", "/api/automations", {
        "id": "night", "name": "Turn the hallway and porch lights off late at night",
        "triggers": [{"type": "state", "device": "virtual.motion", "attribute": "on",
                      "to": True}],
        "actions": [{"type": "command", "device": "virtual.lamp", "command": "turn_off"}]})
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False, username="mia", password="mia's long pass")
    visible = await page.locator("#nav a:visible").all_inner_texts()
    assert visible == ["Home", "Automations", "Privacy", "Users"], visible
    assert hub.request("GET", "/api/users/me", token=hub.request(
        "POST", "/api/auth/login", {"username": "mia", "password": "mia's long pass"},
        token="")["access_token"])["role"] == "member"
    # a member typing an admin tab's address lands on Home instead of a page of errors
    await page.goto(hub.url + "/#/wifi")
    await expect(page.locator("main h1")).to_have_text("Home")
    # on a phone every automation button stays on screen
    await page.goto(hub.url + "/#/automations")
    row = page.locator('[data-automation="night"]')
    await expect(row).to_be_visible()
    for button in await row.get_by_role("button").all():
        box = await button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    await screenshot(page, "26-automations-phone-member")
    assert watch.errors == [] and watch.foreign == []
    await context.close()
    # the owner still sees every tab
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    visible = await page.locator("#nav a:visible").all_inner_texts()
    assert visible == ["Home", "Discovery", "Matter", "Automations", "Wi-Fi", "Privacy", "Cloud",
                       "HomeKit", "Users"]
    await context.close()
    # a guest sees Home (only the devices granted) and their own account
    hub.request("POST", "/api/users", {"username": "gus", "password": "gus's long pass",
                                       "role": "guest", "granted_devices": ["virtual.lamp"]})
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False, username="gus", password="gus's long pass")
    visible = await page.locator("#nav a:visible").all_inner_texts()
    assert visible == ["Home", "Users"], visible
    shown = await page.locator("[data-device]").evaluate_all(
        "els => els.map(e => e.dataset.device)")
    assert shown == ["virtual.lamp"], shown
    await page.goto(hub.url + "/#/automations")
    await expect(page.locator("main h1")).to_have_text("Home")
    await screenshot(page, "27-home-phone-guest")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_totp_enrolment_shows_a_scannable_qr_code(browser, running_hub: RunningHub,
                                                        tmp_path) -> None:
    import base64
    from urllib.parse import parse_qs, urlparse

    from tests.dashboard.conftest import need_zbarimg, scan_qr

    need_zbarimg()
    hub = running_hub
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/users")
    await expect(page.locator("#tokens table")).to_be_visible()
    await page.wait_for_load_state("networkidle")  # the page is drawn once, then clicked
    await page.get_by_role("button", name="Turn on").click()
    uri = await scan_qr(page, "#totp-qr svg.qr", tmp_path / "qr.png")
    await screenshot(page, "27-totp-qr-phone")
    assert uri == ((await page.locator("#otpauth-uri").text_content()) or "").strip()
    assert uri.startswith("otpauth://totp/")
    # the scanned secret is the one the hub holds: its code completes the enrolment
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    hub.totp_secret = base64.b32decode(secret + "=" * (-len(secret) % 8))
    await page.fill("#totp-qr ~ form input", hub.totp_code())
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_text("Keep these recovery codes")).to_be_visible()
    assert hub.request("GET", "/api/users/me")["totp_enabled"] is True
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_automation_form_yaml_view_and_readable_trace(browser,
                                                            running_hub: RunningHub) -> None:
    hub = running_hub
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    form = await new_automation_on_motion(page, hub, "porch")
    await form.locator("input[name=name]").fill("Porch light on motion")
    # the action without its device: the API names actions[0].device, shown on that field
    await form.get_by_role("button", name="Save automation").click()
    err = form.locator('.field-error[data-field^="actions[0]"]')
    await expect(err).to_be_visible()
    assert await form.locator('[data-list="actions"] [aria-invalid=true]').count() == 1
    await screenshot(page, "28-automation-form-error")
    act = form.locator('[data-list="actions"] > li').first
    await act.locator("select[name=device]").select_option("virtual.lamp")
    await act.locator("select[name=command]").select_option("turn_on")
    await form.get_by_role("button", name="Add action").click()
    second = form.locator('[data-list="actions"] > li').nth(1)
    await second.locator("select[data-type]").select_option("notify")
    await second.locator("input[name=message]").fill("Someone is on the porch")
    await form.get_by_role("button", name="YAML view").click()
    yaml_text = await page.locator("#automation-yaml").input_value()
    assert "- type: state" in yaml_text and "device: virtual.motion" in yaml_text, yaml_text
    assert 'attribute: "on"' in yaml_text and "to: true" in yaml_text, yaml_text
    await screenshot(page, "29-automation-form-yaml")
    await form.get_by_role("button", name="Save automation").click()
    row = page.locator('[data-automation="porch"]')
    await expect(row).to_be_visible()
    saved = hub.request("GET", "/api/automations/porch")["definition"]
    assert saved["triggers"] == [{"type": "state", "device": "virtual.motion",
                                  "attribute": "on", "to": True}]
    assert saved["actions"] == [
        {"type": "command", "device": "virtual.lamp", "command": "turn_on"},
        {"type": "notify", "message": "Someone is on the porch"}]
    # edit it: the form opens with what is stored
    await row.get_by_role("button", name="Edit Porch light on motion").click()
    await expect(form.locator("input[name=name]")).to_have_value("Porch light on motion")
    await form.locator("input[name=name]").fill("Porch light")
    await form.get_by_role("button", name="Save automation").click()
    await expect(page.locator('[data-automation="porch"]')).to_contain_text("Porch light")
    assert hub.request("GET", "/api/automations/porch")["definition"]["name"] == "Porch light"
    # the motion sensor fires it; the trace reads as words, durations in ms/s/min
    hub.request("POST", "/api/devices/virtual.motion/commands",
                {"command": "set", "params": {"value": True}})
    for _ in range(50):
        if hub.request("GET", "/api/automations/porch/traces")["traces"]:
            break
        await page.wait_for_timeout(100)
    await page.get_by_role("button", name="Traces of Porch light").click()
    trace = page.locator("#traces [data-trace]").first
    await expect(trace.locator("[data-trigger]")).to_have_text(
        "Started by Motion: on changed from off to on")
    await expect(trace.locator('[data-step="actions[0]"]')).to_contain_text("turn on Lamp")
    await expect(trace.locator('[data-step="actions[1]"]')).to_contain_text(
        "Notify “Someone is on the porch”")
    text = await trace.inner_text()
    assert "{" not in text, text  # no raw JSON
    await screenshot(page, "30-automation-trace")
    assert all("400" in e for e in watch.errors), watch.errors
    assert watch.foreign == []
    await context.close()
