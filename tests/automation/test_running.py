"""Runs still going are visible: a run waiting in a 5-minute delay is listed by the traces API
as running, with the step it is in and until when, and as finished once the delay ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hub.clock import ManualClock
from hub.config import LoadedConfig
from hub.hub import Hub
from tests.automation.conftest import START, running, settle, traces

TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}
SLOW = {"id": "slow", "triggers": [{"type": "event", "device": "virtual.button",
                                    "event": "press"}],
        "actions": [TOGGLE, {"type": "delay", "seconds": 300}, TOGGLE]}
NESTED = {"id": "nested", "triggers": [{"type": "state", "device": "virtual.lamp",
                                        "attribute": "on", "to": True}],
          "actions": [{"type": "if", "conditions": [{"type": "state", "device": "virtual.lamp",
                                                     "attribute": "on", "state": True}],
                       "then": [{"type": "wait", "timeout": 60, "triggers": [
                           {"type": "state", "device": "virtual.motion", "attribute": "on",
                            "to": True}]}]}]}


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig], clock: ManualClock
              ) -> AsyncIterator[Hub]:
    """The api_client's hub on the manual clock, with the two automations above."""
    async with Hub(config_factory({"automations": [SLOW, NESTED]}), clock=clock) as h:
        await settle()
        yield h


async def test_run_in_a_delay_is_listed_as_running_then_finished(api_client, hub, clock):
    r = await api_client.post("/api/devices/virtual.button/commands", json={"command": "press"})
    assert r.status == 200
    await settle()
    r = await api_client.get("/api/automations/slow/traces")
    assert r.status == 200
    listed = (await r.json())["traces"]
    assert len(listed) == 1
    run = listed[0]
    assert run["state"] == "running" and run["finished"] is None
    assert run["current"] == {"index": 1, "path": "actions[1]", "type": "delay",
                              "started": START, "until": START + 300}
    assert [a["path"] for a in run["actions"]] == ["actions[0]", "actions[1]"]
    assert "duration" in run["actions"][0] and "duration" not in run["actions"][1]
    r = await api_client.get("/api/automations/slow")
    assert (await r.json())["running"] == 1

    await clock.advance(299)
    assert running(hub, "slow")[0]["current"]["path"] == "actions[1]"
    await clock.advance(2)
    r = await api_client.get("/api/automations/slow/traces")
    (done,) = (await r.json())["traces"]
    assert done["run_id"] == run["run_id"]
    assert done["state"] == "done" and "current" not in done
    assert done["finished"] == START + 300
    assert [a["path"] for a in done["actions"]] == ["actions[0]", "actions[1]", "actions[2]"]
    assert done["actions"][1]["until"] == START + 300
    assert (await (await api_client.get("/api/automations/slow")).json())["running"] == 0


async def test_running_step_inside_a_branch_is_the_innermost(api_client, hub, clock):
    await hub.integrations.command("virtual.lamp", "turn_on", {})
    await settle()
    (run,) = running(hub, "nested")
    assert run["current"] == {"index": 1, "path": "actions[0].then[0]", "type": "wait",
                              "started": START, "until": START + 60}
    assert traces(hub, "nested") == []
    await clock.advance(61)
    assert running(hub, "nested") == []
    (done,) = traces(hub, "nested")
    assert done["state"] == "done"
    assert done["actions"][1]["result"] == {"timed_out": True}
