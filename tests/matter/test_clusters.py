"""ColorControl, DoorLock, WindowCovering and Switch end to end: matter.js devices (foreign
code) commissioned through the API, commanded through the hub, changed from their own
scripts; a button's presses drive an automation."""

from __future__ import annotations

import asyncio

from hub.bus import DeviceEvent
from tests.matter.conftest import added, wait_until


def state(hub, device_id: str, name: str):
    return hub.states.value(device_id, name)


async def send(api_client, device_id: str, command: str, **params):
    resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                 json={"command": command, "params": params})
    assert resp.status == 200, await resp.text()


async def test_colour_light_hue_saturation_xy_and_temperature_both_ways(
        hub, make_device, api_client) -> None:
    light = make_device("color")
    async with added(api_client, light) as device_id:
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert {c["name"] for c in device["commands"]} >= {
            "set_hue_saturation", "set_xy", "set_color_temp", "set_brightness", "turn_on"}
        assert state(hub, device_id, "color_temp_mireds") == 250
        assert state(hub, device_id, "color_mode") == "color_temp"

        await send(api_client, device_id, "set_hue_saturation", hue=180, saturation=50)
        await wait_until(lambda: state(hub, device_id, "hue") == 180
                         and state(hub, device_id, "saturation") == 50)
        assert state(hub, device_id, "color_mode") == "hs"
        colour = (await light.get("colorControl"))
        assert (colour["currentHue"], colour["currentSaturation"]) == (127, 127)

        await send(api_client, device_id, "set_xy", x=0.3, y=0.6)
        await wait_until(lambda: state(hub, device_id, "color_mode") == "xy")
        assert abs(state(hub, device_id, "color_x") - 0.3) < 0.001
        assert abs(state(hub, device_id, "color_y") - 0.6) < 0.001
        colour = await light.get("colorControl")
        assert (colour["currentX"], colour["currentY"]) == (19661, 39322)

        await send(api_client, device_id, "set_color_temp", mireds=370)
        await wait_until(lambda: state(hub, device_id, "color_temp_mireds") == 370)
        assert state(hub, device_id, "color_mode") == "color_temp"

        # changed at the device (its own app, a wall switch scene): the hub follows
        await light.set({"colorControl": {"colorMode": 0, "currentHue": 64,
                                          "currentSaturation": 254}})
        await wait_until(lambda: state(hub, device_id, "hue") == 91
                         and state(hub, device_id, "saturation") == 100)
        await light.set({"colorControl": {"colorMode": 2, "colorTemperatureMireds": 200}})
        await wait_until(lambda: state(hub, device_id, "color_temp_mireds") == 200
                         and state(hub, device_id, "color_mode") == "color_temp")

        resp = await api_client.post(f"/api/devices/{device_id}/commands", json={
            "command": "set_xy", "params": {"x": 1.5, "y": 0.2}})
        assert resp.status == 400 and "params.x" in await resp.text()


async def test_door_lock_lock_unlock_both_ways(hub, make_device, api_client) -> None:
    lock = make_device("lock")
    async with added(api_client, lock) as device_id:
        assert state(hub, device_id, "locked") is False

        await send(api_client, device_id, "lock")  # a timed invoke, as DoorLock requires
        await wait_until(lambda: state(hub, device_id, "locked") is True)
        assert (await lock.get("doorLock"))["lockState"] == 1

        await lock.set({"doorLock": {"lockState": 2}})  # unlocked by hand at the door
        await wait_until(lambda: state(hub, device_id, "locked") is False)
        await lock.set({"doorLock": {"lockState": 1}})
        await wait_until(lambda: state(hub, device_id, "locked") is True)

        await send(api_client, device_id, "unlock")
        await wait_until(lambda: state(hub, device_id, "locked") is False)
        assert (await lock.get("doorLock"))["lockState"] == 2


async def test_window_covering_open_close_stop_position_both_ways(
        hub, make_device, api_client) -> None:
    cover = make_device("cover")  # its motor moves 5 % per 100 ms
    async with added(api_client, cover) as device_id:
        assert state(hub, device_id, "position") == 100  # Matter 0 % closed = hub 100 % open

        await send(api_client, device_id, "set_position", position=40)
        await wait_until(lambda: state(hub, device_id, "position") == 40, 20)
        assert (await cover.get("windowCovering"))["currentPositionLiftPercent100ths"] == 6000

        await send(api_client, device_id, "open")
        await wait_until(lambda: state(hub, device_id, "position") == 100, 20)

        await send(api_client, device_id, "close")
        await wait_until(lambda: 0 < state(hub, device_id, "position") < 100, 20)
        await send(api_client, device_id, "stop")
        # stopped on the way: the device's target is where it stands, and the hub shows it
        device_state = await _until_stopped(cover)
        where = 100 - device_state["currentPositionLiftPercent100ths"] // 100
        assert 0 < where < 100
        await wait_until(lambda: state(hub, device_id, "position") == where, 20)

        await cover.set({"windowCovering": {"currentPositionLiftPercent100ths": 2500}})
        await wait_until(lambda: state(hub, device_id, "position") == 75, 20)


def _actions_after_release(seen: list[tuple[str, dict]]) -> list[str]:
    """The button steps after the first short release."""
    actions = [d["action"] for t, d in seen if t == "button"]
    return actions[actions.index("short_release") + 1:] if "short_release" in actions else []


async def _until_stopped(cover) -> dict:
    """The device's WindowCovering state once its motor stands (target = current)."""
    for _ in range(200):
        now = await cover.get("windowCovering")
        if now["targetPositionLiftPercent100ths"] == now["currentPositionLiftPercent100ths"]:
            return now
        await asyncio.sleep(0.1)
    raise AssertionError(f"the cover did not stop: {now}")


async def test_button_presses_become_events_an_automation_uses(
        hub, make_device, api_client) -> None:
    button = make_device("switch")
    async with added(api_client, button) as device_id:
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert set(device["events"]) >= {"button", "press", "long_press", "multi_press"}
        body = {"id": "double_press_lamp",
                "triggers": [{"type": "event", "device": device_id, "event": "multi_press"}],
                "actions": [{"type": "command", "device": "virtual.lamp",
                             "command": "turn_on"}]}
        resp = await api_client.post("/api/automations", json=body)
        assert resp.status == 201, await resp.text()
        assert state(hub, "virtual.lamp", "on") is not True

        seen: list[tuple[str, dict]] = []
        unsubscribe = hub.bus.subscribe(
            DeviceEvent, lambda ev: seen.append((ev.event_type, dict(ev.data))),
            key=device_id)
        try:
            # one press and release: the steps as `button`, then one `press` once the
            # switch knows no second press follows
            await button.set({"switch": {"rawPosition": 1}})
            await button.set({"switch": {"rawPosition": 0}})
            await wait_until(lambda: any(t == "press" for t, _ in seen), 20)
            actions = [d["action"] for t, d in seen if t == "button"]
            assert actions[:2] == ["initial_press", "short_release"]
            assert state(hub, "virtual.lamp", "on") is not True  # a single press: no run

            seen.clear()  # a double press: multi_press with presses 2 runs the automation
            for position in (1, 0, 1, 0):
                await button.set({"switch": {"rawPosition": position}})
            await wait_until(lambda: any(t == "multi_press" for t, _ in seen), 20)
            assert [d["presses"] for t, d in seen if t == "multi_press"] == [2]
            assert not any(t == "press" for t, _ in seen)
            await wait_until(lambda: state(hub, "virtual.lamp", "on") is True)

            seen.clear()  # held down: long_press while held (after the device's 2 s delay)
            await button.set({"switch": {"rawPosition": 1}})
            await wait_until(lambda: any(t == "long_press" for t, _ in seen), 20)
            await button.set({"switch": {"rawPosition": 0}})
            await wait_until(lambda: any(d.get("action") == "long_release" for _, d in seen), 20)
            # then a short press, followed to the end of its sequence (the multi-press
            # window): events come in order, so the long press's came before and gave no press
            for position in (1, 0):
                await button.set({"switch": {"rawPosition": position}})
            await wait_until(lambda: "multi_press_complete" in _actions_after_release(seen), 20)
            gestures = [t for t, _ in seen if t != "button"]
            assert gestures == ["long_press", "press"], gestures
        finally:
            unsubscribe()
