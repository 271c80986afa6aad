"""One step function per action type (as Home Assistant's `helpers/script.py` has one
`_async_<action>_step` per action): `STEPS[type(action)](runner, run, action, record)`.

A step returns what its trace record shows as `result` (None: nothing), writes anything else
worth showing into `record`, and raises to fail the run: `StopRun` ends it quietly (a wait
timed out), any other exception becomes `ActionFailed` naming the action's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from hub.automation.checks import scene_commands
from hub.automation.events import AutomationEvent
from hub.automation.model import (
    Action,
    ChooseAction,
    CommandAction,
    DelayAction,
    DisableAction,
    EnableAction,
    EventAction,
    IfAction,
    NotifyAction,
    SceneAction,
    WaitAction,
    format_path,
)
from hub.bus import Notification
from hub.errors import DeviceUnavailable

if TYPE_CHECKING:
    from hub.automation.conditions import Conditions
    from hub.automation.definitions import Resume, Run
    from hub.automation.listeners import Sink
    from hub.automation.model import Trigger
    from hub.automation.schedule import Schedule
    from hub.bus import Event
    from hub.clock import Clock
    from hub.deadlines import Deadlines
    from hub.devices import Device

Record = dict[str, Any]


class Runner(Protocol):
    """What a step uses of the runner (`hub.automation.runner.Runner` is one)."""

    clock: Clock
    command: Callable[[str, str, dict[str, Any]], Awaitable[Any]]
    get_device: Callable[[str], Device]
    conditions: Conditions
    schedule: Schedule
    publish: Callable[[Event], None]
    listen: Callable[[tuple[Trigger, ...], Sink], Callable[[], None]]
    set_enabled: Callable[[str, bool], object]
    command_timeout: float
    deadlines: Deadlines

    async def sequence(self, run: Run, actions: tuple[Action, ...]) -> None: ...

    def resuming(self, run: Run, a: Action) -> Resume | None: ...

    async def durable(self, run: Run, a: Action, deadline: float | None,
                      aw: Awaitable[Any]) -> Any: ...


Step = Callable[[Runner, "Run", Any, Record], Awaitable[Any]]


class StopRun(Exception):
    """A wait timed out without continue_on_timeout: the run ends, not as an error."""


class ActionFailed(Exception):
    def __init__(self, action: Action, exc: BaseException) -> None:
        self.action = action
        super().__init__(f"{format_path(action.path)}: {describe(exc)}")


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def command_step(r: Runner, run: Run, a: CommandAction, rec: Record) -> Any:
    # asyncio.timeout's job, on one shared timer, without an `async with` per command
    deadlines = r.deadlines
    token = deadlines.arm()
    try:
        result = await r.command(a.device, a.command, a.params)
    except asyncio.CancelledError:
        if deadlines.expired(token):
            raise DeviceUnavailable(
                f"device {a.device!r} did not answer {a.command!r} within "
                f"{r.command_timeout:g} s") from None
        raise
    except BaseException:
        deadlines.expired(token)
        raise
    deadlines.expired(token)
    return result


async def scene_step(r: Runner, run: Run, a: SceneAction, rec: Record) -> list[Any]:
    calls = []
    for e in a.entries:
        if e.command is not None:
            calls.append((e.device, e.command, e.params))
        else:
            device = r.get_device(e.device)
            calls.extend((e.device, c, p) for c, p in scene_commands(device, e.state or {}))
    try:
        async with asyncio.timeout(r.command_timeout):
            results = await asyncio.gather(*(r.command(d, c, p) for d, c, p in calls),
                                           return_exceptions=True)
    except TimeoutError:
        raise DeviceUnavailable(f"the scene's devices did not all answer within "
                                f"{r.command_timeout:g} s") from None
    failed = [f"{d} {c}: {describe(x)}" for (d, c, _), x in zip(calls, results, strict=True)
              if isinstance(x, BaseException)]
    if failed:
        raise RuntimeError("scene partly failed: " + "; ".join(failed))
    return list(results)


async def delay_step(r: Runner, run: Run, a: DelayAction, rec: Record) -> None:
    resumed = _resumed_deadline(run, a, rec)
    deadline = resumed[0] if resumed else r.clock.time() + a.seconds
    assert deadline is not None
    rec["until"] = deadline
    await r.durable(run, a, deadline, r.schedule.sleep_until(deadline))


async def wait_step(r: Runner, run: Run, a: WaitAction, rec: Record) -> dict[str, Any]:
    resumed = _resumed_deadline(run, a, rec)
    if resumed:
        deadline = resumed[0]
    else:
        deadline = None if a.timeout is None else r.clock.time() + a.timeout
    rec["until"] = deadline
    fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()

    def sink(data: dict[str, Any]) -> None:
        if not fut.done():
            fut.set_result(data)

    def timeout() -> None:
        if not fut.done():
            fut.set_result(None)

    unlisten = r.listen(a.triggers, sink)
    handle = r.schedule.call_at(deadline, timeout) if deadline is not None else None
    try:
        data = await r.durable(run, a, deadline, fut)
    finally:
        if handle is not None:
            handle.cancel()
        unlisten()
    if data is None:
        if not a.continue_on_timeout:
            raise StopRun(f"{format_path(a.path)}: wait timed out")
        return {"timed_out": True}
    return {"timed_out": False, "trigger": data}


async def if_step(r: Runner, run: Run, a: IfAction, rec: Record) -> str:
    resume = r.resuming(run, a)
    if resume is not None and len(resume[0]) > len(a.path):
        branch = resume[0][len(a.path)]
    else:
        branch = "then" if r.conditions.all(a.conditions, rec.setdefault("conditions", [])) \
            else "else"
    rec["result"] = branch
    await r.sequence(run, a.then if branch == "then" else a.else_)
    return str(branch)


async def choose_step(r: Runner, run: Run, a: ChooseAction, rec: Record) -> str:
    resume = r.resuming(run, a)
    chosen: int | None = None
    if resume is not None and len(resume[0]) > len(a.path):
        step = resume[0][len(a.path)]
        chosen = resume[0][len(a.path) + 1] if step == "options" else None  # type: ignore[assignment]
    else:
        conds = rec.setdefault("conditions", [])
        for i, choice in enumerate(a.choices):
            if r.conditions.all(choice.conditions, conds):
                chosen = i
                break
    result = rec["result"] = "default" if chosen is None else f"options[{chosen}]"
    await r.sequence(run, a.default if chosen is None else a.choices[int(chosen)].actions)
    return result


async def event_step(r: Runner, run: Run, a: EventAction, rec: Record) -> None:
    r.publish(AutomationEvent(a.event, dict(a.data), run.entry.id, r.clock.time()))


async def enable_step(r: Runner, run: Run, a: EnableAction | DisableAction,
                      rec: Record) -> dict[str, Any]:
    enabled = isinstance(a, EnableAction)
    r.set_enabled(a.target, enabled)
    return {"automation": a.target, "enabled": enabled}


async def notify_step(r: Runner, run: Run, a: NotifyAction, rec: Record) -> None:
    r.publish(Notification(a.title, a.message, a.severity, r.clock.time()))


STEPS: dict[type, Step] = {
    CommandAction: command_step,
    SceneAction: scene_step,
    DelayAction: delay_step,
    WaitAction: wait_step,
    IfAction: if_step,
    ChooseAction: choose_step,
    EventAction: event_step,
    EnableAction: enable_step,
    DisableAction: enable_step,
    NotifyAction: notify_step,
}


def _resumed_deadline(run: Run, a: DelayAction | WaitAction, rec: Record
                      ) -> tuple[float | None] | None:
    """(deadline,) when the run resumes at this very step (consumed), else None."""
    resume = run.resume
    if resume is None or resume[0] != a.path:
        return None
    run.resume = None
    rec["resumed"] = True
    return (resume[1],)
