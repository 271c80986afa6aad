"""More everyday tasks in the browser (issue 19): event marks on the history graph, area
names and no `null` in statuses, guest grants of areas, the cloud pairing code as a QR code,
automations saved from their YAML; each read back through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import expect

from tests.conftest import free_port
from tests.dashboard.conftest import (
    RunningHub,
    need_zbarimg,
    new_automation_on_motion,
    open_page,
    scan_qr,
    screenshot,
    sign_in,
    start_hub,
    stop_hub,
)


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


AREAS = [{"id": "lamp", "name": "Lamp", "kind": "switch", "area": "Living room"},
         {"id": "button", "name": "Button", "kind": "button", "area": "Hall"},
         {"id": "motion", "name": "Motion", "kind": "binary_sensor", "area": "Hall"}]


async def test_wifi_provisioning_status_prints_no_null(browser, fake_bluez,
                                                       tmp_path: Path) -> None:
    from tests.discovery.conftest import ble_config
    from tests.provisioning.improv_device import ImprovDevice

    extra = ble_config()
    extra["integrations"] = {"virtual": {"devices": AREAS}, "improv": {}}
    extra["provisioning"] = {"ble_timeout": 10.0, "authorization_timeout": 5.0}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)  # inherits the fake bus
    # no redirect, no device id, no attestation reason: the fields a job leaves null
    device = ImprovDevice(fake_bluez, "A4:C1:38:55:00:02", needs_button=False,
                          redirect_url=None)
    await device.start()
    try:
        hub.request("PUT", "/api/wifi/networks/Home-Net", {"password": "correct-horse-1"})
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/discovery")
        setup = page.get_by_role("button", name="Set up Wi-Fi for esphome-plug")
        await expect(setup).to_be_visible(timeout=15000)
        await setup.click()
        await page.get_by_role("button", name="Provision").click()
        status = page.locator("#provision-status")
        await expect(status.locator("[data-job-state]")).to_have_attribute(
            "data-job-state", "succeeded", timeout=20000)
        await expect(status.locator("[data-steps] li").first).to_be_visible()
        text = await status.inner_text()
        assert "null" not in text and "undefined" not in text, text
        assert "unencrypted" in text  # Improv sends the password in the clear: said so
        job = hub.request("GET", "/api/provisioning")
        jobs = job["jobs"] if isinstance(job, dict) else job
        assert jobs[-1]["state"] == "succeeded" and jobs[-1]["redirect_url"] is None
        await screenshot(page, "33-provisioning-status")
        # areas by name everywhere: Home's sections and the automation device picker
        await page.goto(hub.url + "/#/home")
        await expect(page.locator('section[aria-label="Living room"] h2')).to_have_text(
            "Living room")
        await page.goto(hub.url + "/#/automations")
        await page.get_by_role("button", name="New automation").click()
        picker = page.locator('#automation-form [data-list="actions"] select[name=device]')
        await expect(picker.locator('option[value="virtual.lamp"]')).to_have_text(
            "Lamp — Living room")
        assert watch.foreign == []
        assert all("null" not in e for e in watch.errors), watch.errors
        await context.close()
    finally:
        await device.stop()
        await asyncio.to_thread(stop_hub, hub)


async def test_guest_granted_an_area_from_the_users_page(browser, tmp_path: Path) -> None:
    hub = await asyncio.to_thread(start_hub, tmp_path,
                                  {"integrations": {"virtual": {"devices": AREAS}}})
    try:
        hub.request("POST", "/api/users", {"username": "gus", "password": "gus's long pass",
                                           "role": "guest"})
        context, page, watch = await open_page(browser, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/users")
        await page.locator('[data-user="gus"]').get_by_role("button", name="Manage gus").click()
        grants = page.locator("#grants")
        await grants.get_by_label("Hall").check()
        await grants.get_by_role("button", name="Save access").click()
        await expect(page.locator('[data-user="gus"] [data-grants]')).to_have_text("area Hall")
        gus = next(u for u in hub.request("GET", "/api/users")["users"]
                   if u["username"] == "gus")
        assert gus["granted_areas"] == ["Hall"] and gus["granted_devices"] == []
        await screenshot(page, "34-users-area-grant")
        # the guest sees exactly the devices of that area
        token = hub.request("POST", "/api/auth/login",
                            {"username": "gus", "password": "gus's long pass"},
                            token="")["access_token"]
        seen = sorted(d["id"] for d in hub.request("GET", "/api/devices", token=token)["devices"])
        assert seen == ["virtual.button", "virtual.motion"]
        # and the grant is undone the same way
        await page.locator('[data-user="gus"]').get_by_role("button", name="Manage gus").click()
        await page.locator("#grants").get_by_label("Hall").uncheck()
        await page.locator("#grants").get_by_role("button", name="Save access").click()
        await expect(page.locator('[data-user="gus"] [data-grants]')).to_have_text("nothing yet")
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_cloud_pairing_code_is_a_scannable_qr_code(browser, tmp_path: Path) -> None:
    need_zbarimg()
    # nothing listens on the broker's port: pairing needs the sync key, not a connection
    cloud = {"broker_url": f"mqtts://127.0.0.1:{free_port()}", "username": "hub"}
    hub = await asyncio.to_thread(start_hub, tmp_path, {"cloud": cloud})
    try:
        context, page, watch = await open_page(browser, hub, width=390, height=844)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/cloud")
        await page.get_by_role("button", name="Opt in").click()
        await expect(page.locator("#cloud-status")).to_contain_text("Enabledyes")
        await page.get_by_role("button", name="Show pairing code").click()
        code = await scan_qr(page, "#pairing svg.qr", tmp_path / "pairing.png")
        await screenshot(page, "35-cloud-pairing-qr-phone")
        shown = ((await page.locator("#pairing pre").text_content()) or "").strip()
        assert code and code == shown
        # the code is the hub's: a second one from the API carries the same sync key
        again = hub.request("POST", "/api/cloud/pairing", {})["pairing_code"]
        assert again == code
        actions = [e["action"] for e in hub.request("GET", "/api/audit?limit=50")["entries"]]
        assert actions.count("cloud.pairing_code") == 2
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_automation_saved_from_its_yaml(browser, running_hub: RunningHub) -> None:
    hub = running_hub
    hub.request("POST", "/api/automations", {
        "id": "porch", "name": "Porch light",
        "triggers": [{"type": "state", "device": "virtual.motion", "attribute": "on",
                      "to": True}],
        "actions": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"}]})
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/automations")
    await page.locator('[data-automation="porch"]').get_by_role(
        "button", name="Edit Porch light").click()
    form = page.locator("#automation-form")
    await form.get_by_role("button", name="YAML view").click()
    yaml_box = page.locator("#automation-yaml")
    text = await yaml_box.input_value()
    assert "name: Porch light" in text and "device: virtual.lamp" in text, text
    # a device that does not exist: the hub names the field and its line, shown in the page
    await yaml_box.fill(text.replace("device: virtual.lamp", "device: virtual.nope")
                        .replace("name: Porch light", "name: Porch light at night"))
    await form.get_by_role("button", name="Save YAML").click()
    err = page.locator("[data-yaml-error]")
    await expect(err).to_contain_text("actions[0]")
    line = int(await err.get_attribute("data-yaml-error") or 0)
    assert "virtual.nope" in (await yaml_box.input_value()).splitlines()[line - 1]
    await expect(err).to_contain_text(f"line {line}:")
    await expect(yaml_box).to_have_attribute("aria-invalid", "true")
    assert hub.request("GET", "/api/automations/porch")["definition"]["name"] == "Porch light"
    await screenshot(page, "36-automation-yaml-error")
    # broken YAML: the syntax error and its line
    await yaml_box.fill("id: porch\ntriggers: [\n")
    await form.get_by_role("button", name="Save YAML").click()
    await expect(err).to_contain_text("YAML syntax")
    # fixed: saved, read back through the API
    await yaml_box.fill(text.replace("name: Porch light", "name: Porch light at night")
                        .replace("turn_on", "turn_off"))
    await form.get_by_role("button", name="Save YAML").click()
    await expect(page.locator('[data-automation="porch"]')).to_contain_text(
        "Porch light at night")
    saved = hub.request("GET", "/api/automations/porch")["definition"]
    assert saved["name"] == "Porch light at night"
    assert saved["actions"] == [{"type": "command", "device": "virtual.lamp",
                                 "command": "turn_off"}]
    assert saved["triggers"][0]["attribute"] == "on"  # quoted in the YAML: a string
    assert all("400" in e for e in watch.errors), watch.errors
    assert watch.foreign == []
    await context.close()
    # on a phone the YAML view fits the screen
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/automations")
    await page.get_by_role("button", name="New automation").click()
    await page.locator("#automation-form").get_by_role("button", name="YAML view").click()
    await expect(page.locator("#automation-yaml")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await screenshot(page, "37-automation-yaml-phone")
    await context.close()


async def test_homekit_setup_qr_is_drawn_in_the_page(browser, tmp_path: Path) -> None:
    need_zbarimg()
    # mDNS on loopback only (the suite runs in its own network namespace); no mDNS integration
    # and no advertising: the bridge alone has the hub start its zeroconf
    extra = {"discovery": {"mdns": {"enabled": True, "advertise": False, "interfaces": ["lo"]},
                           "ble": {"enabled": False}},
             "homekit_bridge": {"enabled": True, "port": free_port(),
                                "devices": ["virtual.lamp"]}}
    hub = await asyncio.to_thread(start_hub, tmp_path, extra)
    try:
        for _ in range(100):
            bridge = hub.request("GET", "/api/homekit/bridge")
            if bridge["setup_uri"]:
                break
            await asyncio.sleep(0.1)
        assert bridge["setup_uri"], bridge
        context, page, watch = await open_page(browser, hub, width=390, height=844)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/homekit")
        scanned = await scan_qr(page, "#homekit-qr svg.qr", tmp_path / "homekit.png")
        await screenshot(page, "38-homekit-qr-phone")
        assert scanned == bridge["setup_uri"]
        await expect(page.locator("#homekit-code")).to_have_text(bridge["setup_code"])
        assert not [u for u in watch.requests if "qr.svg" in u]  # nothing fetched for it
        assert watch.errors == [] and watch.foreign == []
        await context.close()
    finally:
        await asyncio.to_thread(stop_hub, hub)


async def test_editing_in_the_form_keeps_settings_and_the_off_state(browser,
                                                                   running_hub: RunningHub) -> None:
    hub = running_hub
    hub.request("POST", "/api/automations", {
        "id": "queue", "name": "Button queue", "mode": "queued", "max": 3,
        "description": "Toggles the lamp once per press",
        "triggers": [{"type": "event", "device": "virtual.button", "event": "press"}],
        "actions": [{"type": "command", "device": "virtual.lamp", "command": "toggle"}]})
    hub.request("POST", "/api/automations/queue/disable")
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/automations")
    await page.locator('[data-automation="queue"]').get_by_role(
        "button", name="Edit Button queue").click()
    form = page.locator("#automation-form")
    # the form shows every documented setting as stored, and that it is off
    await expect(form.locator("input[name=max]")).to_have_value("3")
    await expect(form.locator("input[name=description]")).to_have_value(
        "Toggles the lamp once per press")
    await expect(form.locator("input[name=enabled]")).not_to_be_checked()
    await form.locator("input[name=name]").fill("Button toggles lamp")
    await form.get_by_role("button", name="Save automation").click()
    await expect(page.locator('[data-automation="queue"]')).to_contain_text("Button toggles lamp")
    got = hub.request("GET", "/api/automations/queue")
    assert got["name"] == "Button toggles lamp" and got["mode"] == "queued" and got["max"] == 3, got
    assert got["description"] == "Toggles the lamp once per press", got
    assert got["enabled"] is False, got  # editing did not turn it back on
    await expect(page.locator('[data-automation="queue"] [data-enabled]')).to_have_text(
        "disabled")
    await screenshot(page, "41-automation-edit-kept-off")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_trace_durations_never_read_60(browser, running_hub: RunningHub) -> None:
    context, page, watch = await open_page(browser, running_hub)
    await sign_in(page, running_hub, totp=False)
    # the formatter the trace timeline uses, as the page loads it
    got = await page.evaluate("""async (secs) => {
        const { duration } = await import("/static/js/views/automations.js");
        return secs.map(duration); }""",
        [0.0123, 0.9996, 3.44, 59.96, 119.6, 151.5209, 3599.7, 3629.9, 7199.9, 86400 + 59])
    assert got == ["12 ms", "1.0 s", "3.4 s", "1 min 0 s", "2 min 0 s", "2 min 32 s",
                   "1 h 0 min", "1 h 0 min", "2 h 0 min", "24 h 1 min"], got
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_nested_actions_edited_with_the_form_widgets(browser,
                                                           running_hub: RunningHub) -> None:
    hub = running_hub
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    form = await new_automation_on_motion(page, hub, "hall")
    act = form.locator('[data-list="actions"] > li').first
    await act.locator("select[data-type]").select_option("if")
    # if: its conditions, then and else are lists with the same pickers, one level down
    cond = act.locator('[data-nested="conditions"]')
    await cond.get_by_role("button", name="Add condition").click()
    await cond.locator("li select[name=device]").select_option("virtual.lamp")
    await cond.locator("li select[name=attribute]").select_option("on")
    await cond.locator("li input[name=state]").fill("false")
    then = act.locator('[data-nested="then"]')
    await then.get_by_role("button", name="Add action to then").click()
    # left without its device: the API's error lands on that nested item
    await form.get_by_role("button", name="Save automation").click()
    err = form.locator('.field-error[data-field="actions[0].then[0]"]')
    await expect(err).to_contain_text("missing required key 'device'")
    await expect(then.locator("li select[data-type]")).to_have_attribute("aria-invalid", "true")
    await then.locator("select[name=device]").select_option("virtual.lamp")
    await then.locator("select[name=command]").select_option("turn_on")
    otherwise = act.locator('[data-nested="else"]')
    await otherwise.get_by_role("button", name="Add action to else").click()
    await otherwise.locator("li select[data-type]").select_option("choose")
    options = otherwise.locator('[data-nested="options"]')
    await options.get_by_role("button", name="Add option").click()
    option = options.locator("li").first
    await option.locator('[data-kind="conditions"] select[data-type]').select_option("weekday")
    await option.locator('[data-kind="conditions"] textarea[name=weekdays]').fill('["sat"]')
    await option.locator('[data-kind="actions"] select[data-type]').select_option("notify")
    await option.locator('[data-kind="actions"] input[name=message]').fill("Weekend")
    await screenshot(page, "39-automation-nested")
    await form.get_by_role("button", name="Save automation").click()
    await expect(page.locator('[data-automation="hall"]')).to_be_visible()
    saved = hub.request("GET", "/api/automations/hall")["definition"]
    assert saved["actions"] == [{
        "type": "if",
        "conditions": [{"type": "state", "device": "virtual.lamp", "attribute": "on",
                        "state": False}],
        "then": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"}],
        "else": [{"type": "choose", "options": [{
            "conditions": [{"type": "weekday", "weekdays": ["sat"]}],
            "actions": [{"type": "notify", "message": "Weekend"}]}]}]}], saved
    # opened again, the nested items come back in their widgets
    await page.locator('[data-automation="hall"]').get_by_role("button", name="Edit hall").click()
    nested = form.locator('[data-nested="options"] [data-kind="actions"] input[name=message]')
    await expect(nested).to_have_value("Weekend")
    await expect(form.locator('[data-nested="then"] select[name=command]')).to_have_value(
        "turn_on")
    assert all("400" in e for e in watch.errors), watch.errors
    assert watch.foreign == []
    await context.close()
    # three levels down still fits a phone
    context, page, watch = await open_page(browser, hub, width=390, height=844)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/automations")
    await page.locator('[data-automation="hall"]').get_by_role("button", name="Edit hall").click()
    await expect(page.locator('[data-nested="options"] input[name=message]')).to_have_value(
        "Weekend")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await screenshot(page, "40-automation-nested-phone")
    assert watch.errors == [] and watch.foreign == []
    await context.close()


async def test_matter_view_names_an_integration_that_did_not_load(browser,
                                                                  running_hub: RunningHub) -> None:
    """The Matter page tells "not configured" from "configured but not loaded": the hub's real
    health answer, with the state a failed setup leaves (`failed`) put in for matter."""
    hub = running_hub
    context, page, watch = await open_page(browser, hub)
    await sign_in(page, hub, totp=False)
    await page.goto(hub.url + "/#/matter")
    status = page.locator("#matter-status")
    await expect(status).to_contain_text("Matter is not configured (integrations.matter).")

    async def failed_matter(route) -> None:  # type: ignore[no-untyped-def]
        response = await route.fetch()
        health = await response.json()
        health["integrations"]["matter"] = "failed"
        await route.fulfill(response=response, json=health)

    await page.route("**/api/health", failed_matter)
    await page.reload()
    await expect(status).to_have_text(
        "The Matter integration is not running (failed): see the hub's log.")
    assert watch.errors == [] and watch.foreign == []
    await context.close()
