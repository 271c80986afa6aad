"""Conditions, actions and modes, each traced; a failing action stops only its own run."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunrise, sunset

from hub.automation.events import AutomationEvent
from hub.bus import Notification
from tests.automation.conftest import START, command, settle, traces

BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}


def auto(actions: list, conditions: list | None = None, aid: str = "auto", **extra) -> dict:
    return {"id": aid, "triggers": [BUTTON], "conditions": conditions or [],
            "actions": actions, **extra}


TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}


async def press(hub) -> None:
    await command(hub, "virtual.button", "press")


# -- conditions ----------------------------------------------------------------------------


async def test_state_and_numeric_conditions_are_traced(make_hub):
    conds = [{"type": "state", "device": "virtual.motion", "attribute": "on", "state": True},
             {"type": "numeric", "device": "virtual.temp", "attribute": "value", "above": 15,
              "below": 25}]
    async with make_hub([auto([TOGGLE], conds)]) as hub:
        await press(hub)
        t = traces(hub, "auto")[0]
        assert t["state"] == "conditions_failed"
        assert t["conditions"][0] == {"path": "conditions[0]", "type": "state",
                                      "value": False, "result": False}
        assert hub.states.value("virtual.lamp", "on") is False
        await command(hub, "virtual.motion", "set", value=True)
        await press(hub)
        t = traces(hub, "auto")[0]
        assert t["state"] == "done"
        assert [c["result"] for c in t["conditions"]] == [True, True]
        assert t["conditions"][1]["value"] == 20.0
        assert hub.states.value("virtual.lamp", "on") is True


async def test_and_or_not(make_hub):
    motion = {"type": "state", "device": "virtual.motion", "attribute": "on", "state": True}
    warm = {"type": "numeric", "device": "virtual.temp", "attribute": "value", "above": 30}
    conds = [{"type": "or", "conditions": [motion, warm]},
             {"type": "not", "conditions": [
                 {"type": "and", "conditions": [motion, {"type": "numeric",
                  "device": "virtual.temp", "attribute": "value", "below": 0}]}]}]
    async with make_hub([auto([TOGGLE], conds)]) as hub:
        await press(hub)
        assert traces(hub, "auto")[0]["state"] == "conditions_failed"
        await command(hub, "virtual.temp", "set", value=35)
        await press(hub)
        t = traces(hub, "auto")[0]
        assert t["state"] == "done"
        paths = [c["path"] for c in t["conditions"]]
        assert "conditions[0].conditions[1]" in paths
        await command(hub, "virtual.motion", "set", value=True)
        await command(hub, "virtual.temp", "set", value=-5)
        await press(hub)  # or: motion; not(and(motion, cold)) -> false
        assert traces(hub, "auto")[0]["state"] == "conditions_failed"


async def test_time_window_and_weekday(make_hub, clock):
    # START: Tuesday 2026-03-10 13:00 in Berlin
    extra = {"location": {"time_zone": "Europe/Berlin"}}
    autos = [
        auto([TOGGLE], [{"type": "time", "after": "12:30", "before": "14:00"}], "window"),
        auto([TOGGLE], [{"type": "time", "after": "22:00", "before": "06:00"}], "night"),
        auto([TOGGLE], [{"type": "weekday", "weekdays": ["tue", "wed"]}], "weekday"),
        auto([TOGGLE], [{"type": "time", "weekdays": ["sat", "sun"]}], "weekend"),
    ]
    async with make_hub(autos, extra) as hub:
        await press(hub)
        state = {a: traces(hub, a)[0]["state"] for a in ("window", "night", "weekday",
                                                          "weekend")}
        assert state == {"window": "done", "night": "conditions_failed",
                         "weekday": "done", "weekend": "conditions_failed"}
        await clock.advance(10 * 3600)  # 23:00 Tuesday
        await press(hub)
        assert traces(hub, "night")[0]["state"] == "done"
        assert traces(hub, "window")[0]["state"] == "conditions_failed"


async def test_sun_condition(make_hub, clock):
    tz = ZoneInfo("Europe/Berlin")
    loc = {"time_zone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.405}
    conds = [{"type": "sun", "after": "sunrise", "before": "sunset", "before_offset": -3600}]
    async with make_hub([auto([TOGGLE], conds)], {"location": loc}) as hub:
        await hub.privacy.set_consent("location", True, None)
        day = datetime.fromtimestamp(START, tz).date()
        obs = Observer(52.52, 13.405, 0.0)
        rise, set_ = (sunrise(obs, day, tzinfo=tz).timestamp(),
                      sunset(obs, day, tzinfo=tz).timestamp())
        assert rise < START < set_ - 3600
        await press(hub)
        assert traces(hub, "auto")[0]["state"] == "done"
        await clock.set_time(set_ - 1800)  # within the hour before sunset
        await press(hub)
        assert traces(hub, "auto")[0]["state"] == "conditions_failed"


# -- actions -------------------------------------------------------------------------------


async def test_scene_applies_states_together(make_hub):
    scene = {"type": "scene", "entries": [
        {"device": "virtual.lamp", "state": {"on": True}},
        {"device": "virtual.temp", "state": {"value": 21.5}},
        {"device": "virtual.motion", "command": "set", "params": {"value": True}},
    ]}
    async with make_hub([auto([scene])]) as hub:
        await press(hub)
        assert hub.states.value("virtual.lamp", "on") is True
        assert hub.states.value("virtual.temp", "value") == 21.5
        assert hub.states.value("virtual.motion", "on") is True
        assert traces(hub, "auto")[0]["actions"][0]["result"] == [
            {"on": True}, {"value": 21.5}, {"on": True}]


async def test_delay_if_else_choose(make_hub, clock):
    actions = [
        {"type": "delay", "seconds": "00:00:10"},
        {"type": "if", "conditions": [{"type": "state", "device": "virtual.motion",
                                       "attribute": "on", "state": True}],
         "then": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"}],
         "else": [{"type": "command", "device": "virtual.temp", "command": "set",
                   "params": {"value": 1}}]},
        {"type": "choose", "options": [
            {"conditions": [{"type": "numeric", "device": "virtual.temp", "attribute": "value",
                             "below": 5}],
             "actions": [{"type": "notify", "message": "cold"}]}],
         "default": [{"type": "notify", "message": "fine"}]},
    ]
    async with make_hub([auto(actions)]) as hub:
        notes = hub.bus.listen([Notification])
        await press(hub)
        await clock.advance(9)
        assert hub.states.value("virtual.temp", "value") == 20.0
        await clock.advance(2)
        assert hub.states.value("virtual.temp", "value") == 1
        t = traces(hub, "auto")[0]
        by_path = {a["path"]: a for a in t["actions"]}
        assert by_path["actions[1]"]["result"] == "else"
        assert by_path["actions[2]"]["result"] == "options[0]"
        assert "actions[1].else[0]" in by_path
        assert notes.get_nowait().message == "cold"
        notes.close()


async def test_wait_for_trigger_and_timeout(make_hub, clock):
    wait = {"type": "wait", "timeout": 60, "continue_on_timeout": False,
            "triggers": [{"type": "state", "device": "virtual.motion", "attribute": "on",
                          "to": True}]}
    actions = [wait, TOGGLE]
    async with make_hub([auto(actions, mode="parallel")]) as hub:
        await press(hub)
        await clock.advance(30)
        await command(hub, "virtual.motion", "set", value=True)
        assert hub.states.value("virtual.lamp", "on") is True
        t = traces(hub, "auto")[0]
        assert t["actions"][0]["result"]["timed_out"] is False
        assert t["actions"][0]["result"]["trigger"]["to"] is True
        await press(hub)
        await clock.advance(61)
        t = traces(hub, "auto")[0]
        assert t["state"] == "stopped" and "timed out" in t["error"]
        assert hub.states.value("virtual.lamp", "on") is True  # the toggle did not run
        assert not hub.automations._dynamic  # the wait's listeners are gone


async def test_fire_event_notify_enable_disable(make_hub):
    other = {"id": "other", "enabled": False, "triggers": [BUTTON], "actions": [TOGGLE]}
    actions = [{"type": "event", "event": "arrived", "data": {"who": "guest"}},
               {"type": "notify", "title": "Door", "message": "Someone is here",
                "severity": "warning"},
               {"type": "enable", "automation": "other"}]
    async with make_hub([auto(actions), other]) as hub:
        sub = hub.bus.listen([AutomationEvent, Notification])
        await press(hub)
        ev = sub.get_nowait()
        assert isinstance(ev, AutomationEvent) and ev.event == "arrived"
        assert ev.data == {"who": "guest"} and ev.automation_id == "auto"
        note = sub.get_nowait()
        assert isinstance(note, Notification)
        assert (note.title, note.message, note.severity) == ("Door", "Someone is here",
                                                             "warning")
        assert hub.automations.get("other").enabled
        await press(hub)
        assert hub.states.value("virtual.lamp", "on") is True  # 'other' now runs
        sub.close()


async def test_failing_action_stops_only_its_run(make_hub):
    # a command the checks accept (the device and its command exist) that fails when run:
    # the device's integration is not running
    from hub.devices import CommandSpec, Device

    bad = auto([{"type": "command", "device": "gone.temp", "command": "set",
                 "params": {"value": 1000}}, TOGGLE], aid="bad")
    good = auto([TOGGLE], aid="good")
    bad["triggers"] = [BUTTON]
    async with make_hub([bad, good, {**auto([TOGGLE], aid="good2")}],
                        {"integrations": {"virtual": {"devices": [
                            {"id": "lamp", "kind": "switch"}, {"id": "button", "kind": "button"},
                            {"id": "temp", "kind": "sensor", "min": 0, "max": 50},
                            {"id": "motion", "kind": "binary_sensor"}]}}}) as hub:
        hub.devices.add(Device("gone.temp", "Gone", "gone", commands=(
            CommandSpec("set", {"value": "number"}, ("value",)),)))
        assert hub.automations.get("bad").valid
        await press(hub)
        t = traces(hub, "bad")[0]
        assert t["state"] == "error"
        assert "actions[0]" in t["error"] and "not running" in t["error"]
        assert t["actions"][0]["error"].startswith("DeviceUnavailable")
        assert len(t["actions"]) == 1  # the toggle after it did not run
        assert traces(hub, "good")[0]["state"] == "done"
        assert traces(hub, "good2")[0]["state"] == "done"


# -- modes ---------------------------------------------------------------------------------

SLOW = [{"type": "delay", "seconds": 10}, {"type": "notify", "message": "done"}]


async def _press_three(hub, clock) -> None:
    for _ in range(3):
        await press(hub)
        await clock.advance(1)


async def test_mode_single(make_hub, clock):
    async with make_hub([auto(SLOW, mode="single")]) as hub:
        await _press_three(hub, clock)
        await clock.advance(20)
        assert len(traces(hub, "auto")) == 1
        assert hub.automations.get("auto").skipped == 2


async def test_mode_restart(make_hub, clock):
    async with make_hub([auto(SLOW, mode="restart")]) as hub:
        await _press_three(hub, clock)
        await clock.advance(20)
        states = [t["state"] for t in reversed(traces(hub, "auto"))]
        assert states == ["restarted", "restarted", "done"]


async def test_mode_queued(make_hub, clock):
    async with make_hub([auto(SLOW, mode="queued", max=1)]) as hub:
        await _press_three(hub, clock)  # one runs, one queues, one is dropped (max 1)
        assert hub.automations.get("auto").skipped == 1
        await clock.advance(9)
        assert len(traces(hub, "auto")) == 1
        await clock.advance(11)
        ts = list(reversed(traces(hub, "auto")))
        assert [t["state"] for t in ts] == ["done", "done"]
        assert ts[1]["started"] >= ts[0]["finished"]  # one after the other


async def test_mode_parallel(make_hub, clock):
    async with make_hub([auto(SLOW, mode="parallel", max=2)]) as hub:
        await _press_three(hub, clock)
        assert len(hub.automations.get("auto").running) == 2
        await clock.advance(20)
        assert len(traces(hub, "auto")) == 2
        assert hub.automations.get("auto").skipped == 1


async def test_traces_keep_last_20(make_hub):
    async with make_hub([auto([TOGGLE])]) as hub:
        for _ in range(25):
            await press(hub)
        await settle()
        ts = traces(hub, "auto")
        assert len(ts) == 20
        assert ts[0]["started"] >= ts[-1]["started"]
        for t in ts:
            assert t["actions"][0]["duration"] >= 0 and t["duration"] is not None


async def test_failing_action_is_logged(make_hub, caplog):
    bad = auto([{"type": "command", "device": "virtual.temp", "command": "set",
                 "params": {"value": 1000}}])
    devices = [{"id": "lamp", "kind": "switch"}, {"id": "button", "kind": "button"},
               {"id": "temp", "kind": "sensor", "min": 0, "max": 50},
               {"id": "motion", "kind": "binary_sensor"}]
    async with make_hub([bad], {"integrations": {"virtual": {"devices": devices}}}) as hub:
        with caplog.at_level("WARNING", logger="hub.automation.engine"):
            await press(hub)
        assert any("automation 'auto'" in r.getMessage() and "actions[0]" in r.getMessage()
                   for r in caplog.records)


async def test_wait_for_a_time_trigger_and_choose_default(make_hub, clock):
    actions = [{"type": "wait", "triggers": [{"type": "time", "at": "12:10"}]},
               {"type": "choose", "options": [
                   {"conditions": [{"type": "state", "device": "virtual.motion",
                                    "attribute": "on", "state": True}],
                    "actions": [{"type": "notify", "message": "motion"}]}],
                "default": [TOGGLE]}]
    async with make_hub([auto(actions)]) as hub:
        await press(hub)
        await clock.advance(9 * 60)
        assert hub.states.value("virtual.lamp", "on") is False
        await clock.advance(61)
        assert hub.states.value("virtual.lamp", "on") is True
        t = traces(hub, "auto")[0]
        assert t["actions"][0]["result"]["trigger"]["scheduled"] == START + 600
        assert t["actions"][1]["result"] == "default"


async def test_hung_device_command_times_out(make_hub, monkeypatch):
    """A device that never answers fails its action after automation.command_timeout."""
    import asyncio

    async with make_hub([auto([TOGGLE, {"type": "notify", "message": "after"}])],
                        {"automation": {"command_timeout": 0.1}}) as hub:
        integration = hub.integrations.instance("virtual")
        real = integration.command

        async def hang(ctx, device, command, params):  # a test double for a hung lamp
            if device.id == "virtual.lamp":
                await asyncio.Event().wait()
            return await real(ctx, device, command, params)

        monkeypatch.setattr(integration, "command", hang)
        await press(hub)
        from tests.automation.conftest import wait_for

        await wait_for(lambda: bool(traces(hub, "auto")))
        t = traces(hub, "auto")[0]
        assert t["state"] == "error"
        assert "did not answer 'toggle' within 0.1 s" in t["error"]
        assert len(t["actions"]) == 1  # the notify after it did not run
