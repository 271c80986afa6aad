"""Durable across restarts: delays, waits and `for:` timers resume with their remaining time;
a time trigger missed while the hub was down runs once at start within the grace period."""

from __future__ import annotations

from hub.clock import ManualClock
from tests.automation.conftest import START, command, traces, wait_for

BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}
LAMP_ON = {"type": "command", "device": "virtual.lamp", "command": "turn_on"}
LAMP_OFF = {"type": "command", "device": "virtual.lamp", "command": "turn_off"}


async def _timers(hub) -> list:
    await hub.db.flush()
    return await hub.db.fetchall("SELECT * FROM automation_timers")


async def test_delay_resumes_with_remaining_time(make_hub, clock):
    actions = [LAMP_ON, {"type": "if", "conditions": [{"type": "state", "device":
               "virtual.lamp", "attribute": "on", "state": True}],
               "then": [{"type": "delay", "seconds": 600}, LAMP_OFF]}]
    autos = [{"id": "night", "triggers": [BUTTON], "actions": actions}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.button", "press")
        await clock.advance(100)
        rows = await _timers(hub)
        assert [(r["kind"], r["deadline"]) for r in rows] == [("delay", START + 600)]
        assert traces(hub, "night") == []
    # restart 200 s later: 300 s of the delay remain
    later = ManualClock(START + 300)
    async with make_hub(autos, use_clock=later) as hub:
        assert hub.states.value("virtual.lamp", "on") is True
        interrupted = traces(hub, "night")[0]
        assert interrupted["state"] == "interrupted"
        await later.advance(299)
        assert hub.states.value("virtual.lamp", "on") is True
        await later.advance(2)
        assert hub.states.value("virtual.lamp", "on") is False
        resumed = traces(hub, "night")[0]
        assert resumed["resumed"] is True and resumed["state"] == "done"
        assert [a["path"] for a in resumed["actions"]] == [
            "actions[1]", "actions[1].then[0]", "actions[1].then[1]"]
        assert await _timers(hub) == []


async def test_wait_resumes_after_restart(make_hub, clock):
    wait = {"type": "wait", "timeout": 120, "triggers": [
        {"type": "state", "device": "virtual.motion", "attribute": "on", "to": True}]}
    autos = [{"id": "w", "triggers": [BUTTON], "actions": [wait, LAMP_ON]}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.button", "press")
        await clock.advance(10)
        assert [r["kind"] for r in await _timers(hub)] == ["wait"]
    later = ManualClock(START + 60)
    async with make_hub(autos, use_clock=later) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        assert hub.states.value("virtual.lamp", "on") is True
        t = traces(hub, "w")[0]
        assert t["resumed"] and t["actions"][0]["result"]["timed_out"] is False


async def test_for_timer_resumes_after_restart(make_hub, clock):
    t = {"type": "state", "device": "virtual.motion", "attribute": "on", "to": True, "for": 300}
    autos = [{"id": "f", "triggers": [t], "actions": [LAMP_ON]}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        await clock.advance(100)
        rows = await _timers(hub)
        assert [(r["kind"], r["deadline"]) for r in rows] == [("for", START + 300)]
    later = ManualClock(START + 150)
    async with make_hub(autos, use_clock=later) as hub:
        await later.advance(149)
        assert hub.states.value("virtual.lamp", "on") is False
        await later.advance(2)
        assert hub.states.value("virtual.lamp", "on") is True
        assert traces(hub, "f")[0]["trigger"]["resumed"] is True


async def test_for_timer_dropped_when_state_changed_meanwhile(make_hub, clock):
    t = {"type": "state", "device": "virtual.motion", "attribute": "on", "to": True, "for": 300}
    autos = [{"id": "f", "triggers": [t], "actions": [LAMP_ON]}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        await clock.advance(10)
        await hub.db.flush()
        hub.automations._state_idx = {}  # as if the hub was down when it changed
        hub.states.set("virtual.motion", {"on": False})
        assert len(await _timers(hub)) == 1
    later = ManualClock(START + 100)
    async with make_hub(autos, use_clock=later) as hub:
        await later.advance(400)
        assert traces(hub, "f") == []
        assert await _timers(hub) == []


async def test_missed_time_trigger_runs_once_late(make_hub, clock):
    autos = [{"id": "morning", "triggers": [{"type": "time", "at": "12:05"}],
              "actions": [LAMP_ON]},
             {"id": "long_ago", "triggers": [{"type": "time", "at": "12:01"}],
              "actions": [LAMP_OFF]}]
    async with make_hub(autos) as hub:
        await clock.advance(30)
        await hub.db.flush()
    # down from 12:00:30 to 12:07: 12:05 is within 5 min grace, 12:01 is not
    later = ManualClock(START + 7 * 60)
    async with make_hub(autos, use_clock=later) as hub:
        await wait_for(lambda: bool(traces(hub, "morning")))
        t = traces(hub, "morning")[0]
        assert t["late"] is True and t["trigger"]["scheduled"] == START + 300
        assert traces(hub, "long_ago") == []
        assert hub.states.value("virtual.lamp", "on") is True
        await hub.db.flush()
    # a second restart does not run it again
    again = ManualClock(START + 8 * 60)
    async with make_hub(autos, use_clock=again) as hub:
        assert [x["late"] for x in traces(hub, "morning")] == [True]


async def test_traces_and_enabled_flags_survive_restart(make_hub, clock):
    autos = [{"id": "t", "triggers": [BUTTON], "actions": [LAMP_ON]}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.button", "press")
        await hub.automations.set_enabled("t", False)
    async with make_hub(autos) as hub:
        entry = hub.automations.get("t")
        assert entry.enabled is False
        ts = traces(hub, "t")
        assert len(ts) == 1 and ts[0]["actions"][0]["result"] == {"on": True}
