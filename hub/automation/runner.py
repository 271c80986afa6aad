"""Runs of automations: modes (single, restart, queued, parallel), each run a task walking its
actions with one step function per action type (`hub.automation.steps`), and its trace.

The runner is given what it uses: a command function, device lookups, the conditions, the
schedule and durable timers, a way to publish on the bus, to listen for triggers (waits) and
to enable or disable an automation. It never sees the engine or the hub.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from hub.automation import storage as sql
from hub.automation.definitions import Entry, Resume, Run
from hub.automation.model import Action, Trigger, format_path
from hub.automation.steps import STEPS, ActionFailed, StopRun, describe
from hub.automation.trace import TRACES_KEPT, Trace
from hub.deadlines import Deadlines
from hub.fastjson import dumps

if TYPE_CHECKING:
    from hub.automation.conditions import Conditions
    from hub.automation.listeners import Sink
    from hub.automation.schedule import DurableTimers, Schedule
    from hub.bus import Event
    from hub.clock import Clock
    from hub.devices import Device

_LOG = logging.getLogger(__name__)

TRACES_PER_BATCH = 200  # a few ms of JSON encoding per commit, so p99 stays low

CommandFn = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
"""(device id, command, params) -> the device's answer; raises when it fails."""
Listen = Callable[[tuple[Trigger, ...], "Sink"], Callable[[], None]]
"""Listen for triggers until the returned function is called (a wait's triggers)."""


class Runner:
    """Starts, queues, cancels and traces runs; `flush_traces` feeds the batching writer."""

    def __init__(self, *, clock: Clock, command: CommandFn,
                 get_device: Callable[[str], Device], conditions: Conditions,
                 schedule: Schedule, timers: DurableTimers, publish: Callable[[Event], None],
                 listen: Listen, set_enabled: Callable[[str, bool], object],
                 command_timeout: float) -> None:
        self.clock = clock
        self.command = command
        self.get_device = get_device
        self.conditions = conditions
        self.schedule = schedule
        self.timers = timers
        self.publish = publish
        self.listen = listen
        self.set_enabled = set_enabled
        self.command_timeout = command_timeout
        self.deadlines = Deadlines(command_timeout)  # one timer for every command
        self.stopping = False
        # cancelled runs of automations that may no longer be listed, until they end
        self._ending: set[asyncio.Task[None]] = set()
        self._unsaved: dict[str, deque[Trace]] = {}
        self._seq = itertools.count(1)
        self._boot = secrets.token_hex(3)

    # -- runs --------------------------------------------------------------------------------

    def fire(self, entry: Entry, data: dict[str, Any], late: bool = False,
             force: bool = False, skip_conditions: bool = False) -> Run | None:
        """A trigger fired: start a run as the automation's mode says (None: not started)."""
        auto = entry.automation
        if auto is None or self.stopping or not (force or (entry.enabled and entry.valid)):
            return None
        running = entry.running
        if running:
            mode = auto.mode
            if mode == "single":
                entry.skipped += 1
                return None
            if mode == "restart":
                for run in running:
                    run.cancel_reason = "restarted"
                    if run.task is not None:
                        run.task.cancel()
            elif mode == "queued":
                if len(entry.queue) >= auto.max:
                    entry.skipped += 1
                else:
                    entry.queue.append((data, late))
                return None
            elif len(running) >= auto.max:
                entry.skipped += 1
                return None
        return self.start(entry, data, late, skip_conditions=skip_conditions)

    def start(self, entry: Entry, data: dict[str, Any], late: bool,
              resume: Resume | None = None, skip_conditions: bool = False) -> Run:
        clock = self.clock
        run_id = f"{self._boot}-{next(self._seq)}"
        trace = Trace(run_id, entry.id, data, clock.time(), clock.monotonic(), late,
                      resume is not None)
        run = Run(run_id, entry, trace, resume)
        entry.running.append(run)
        entry.runs += 1
        entry.last_run = trace.started
        # a plain task, never an eager one: a run that commands a device whose change
        # triggers another run would otherwise nest runs inside runs without bound
        task = asyncio.Task(self._execute(run, skip_conditions or resume is not None),
                            loop=asyncio.get_running_loop())
        run.task = task  # tracked through entry.running: no per-run done callback
        return run

    def cancel(self, entry: Entry, reason: str) -> None:
        """Stop the automation's runs (traced with `reason`) and drop its queue."""
        entry.queue.clear()
        for run in entry.running:
            run.cancel_reason = reason
            if run.task is not None:
                run.task.cancel()
                self._ending.add(run.task)
                run.task.add_done_callback(self._ending.discard)

    def forget(self, automation_id: str) -> None:
        """The automation was deleted: its unsaved traces are not written."""
        self._unsaved.pop(automation_id, None)

    async def stop(self, entries: Iterable[Entry]) -> None:
        """Interrupt every run (their durable timers stay stored, to resume at next start)."""
        self.stopping = True
        tasks = set(self._ending)
        for entry in entries:
            for run in entry.running:
                run.cancel_reason = "interrupted"
                if run.task is not None:
                    tasks.add(run.task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.deadlines.close()

    def flush_traces(self, limit: int = TRACES_PER_BATCH) -> list[tuple[str, list[Any]]]:
        """Rows for the writer's next batch: the newest unsaved traces, at most `limit` of
        them so that encoding never stalls the loop for long; the rest wait for the next."""
        if not self._unsaved:
            return []
        rows: list[tuple[Any, ...]] = []
        pruned: list[str] = []
        while self._unsaved and len(rows) < limit:
            automation_id = next(iter(self._unsaved))
            traces = self._unsaved.pop(automation_id)
            rows.extend((t.run_id, t.automation_id, t.started,
                         dumps(t.to_json(), default=str)) for t in traces)
            pruned.append(automation_id)
        return [*sql.INSERT_TRACES.ops(rows),
                (sql.PRUNE_TRACES, [(dumps(pruned), TRACES_KEPT)])]

    # -- for the step functions -------------------------------------------------------------

    async def sequence(self, run: Run, actions: tuple[Action, ...]) -> None:
        start = 0
        if run.resume is not None:
            target = run.resume[0]
            for i, a in enumerate(actions):
                if target[: len(a.path)] == a.path:
                    start = i
                    break
        for i in range(start, len(actions)):
            await self._step(run, actions[i])

    @staticmethod
    def resuming(run: Run, a: Action) -> Resume | None:
        """The resume point if it lies inside action `a` (consumed when reached)."""
        if run.resume is None or run.resume[0][: len(a.path)] != a.path:
            return None
        return run.resume

    async def durable(self, run: Run, a: Action, deadline: float | None,
                      aw: Awaitable[Any]) -> Any:
        """Await `aw` with a stored record of where this run waits, until when."""
        timer_id = f"{run.id}:{format_path(a.path)}"
        self.timers.save(timer_id, run.entry.id, a.type, deadline, list(a.path),
                         run.trace.trigger, run.entry.digest, soon=True)
        try:
            return await aw
        finally:
            if not self.stopping:
                self.timers.drop(timer_id)

    # -- private -------------------------------------------------------------------------------

    async def _step(self, run: Run, a: Action) -> None:
        rec: dict[str, Any] = {"path": a.path, "type": a.type, "started": self.clock.time()}
        run.trace.actions.append(rec)
        t0 = time.perf_counter()
        try:
            result = await STEPS[type(a)](self, run, a, rec)
            if result is not None:
                rec["result"] = result
        except (StopRun, ActionFailed):
            raise
        except asyncio.CancelledError:
            rec["error"] = "cancelled"
            raise
        except Exception as exc:
            rec["error"] = describe(exc)
            raise ActionFailed(a, exc) from exc
        finally:
            rec["duration"] = time.perf_counter() - t0

    async def _execute(self, run: Run, skip_conditions: bool) -> None:
        entry, trace = run.entry, run.trace
        auto = entry.automation
        assert auto is not None
        try:
            if not skip_conditions and auto.conditions:
                if not self.conditions.all(auto.conditions, trace.conditions):
                    trace.state = "conditions_failed"
                    return
            await self.sequence(run, auto.actions)
            trace.state = "done"
        except StopRun as exc:
            trace.state, trace.error = "stopped", str(exc)
        except ActionFailed as exc:
            trace.state, trace.error = "error", str(exc)
            _LOG.warning("automation %r: action %s", entry.id, exc)
        except asyncio.CancelledError:
            trace.state = run.cancel_reason or "cancelled"
        except Exception as exc:  # a bug in the engine must not leak into other runs
            trace.state, trace.error = "error", describe(exc)
            _LOG.exception("automation %r run failed", entry.id)
        finally:
            self._finish(run)

    def _finish(self, run: Run) -> None:
        entry, trace = run.entry, run.trace
        clock = self.clock
        trace.finished = clock.time()
        trace.duration = clock.monotonic() - trace.t0
        try:  # (not contextlib.suppress: a context manager per run costs more than this)
            entry.running.remove(run)
        except ValueError:
            pass
        entry.traces.append(trace)
        if entry.deleted:
            return  # deleted while this run was ending: nothing more to keep
        pending = self._unsaved.get(entry.id)
        if pending is None:
            pending = self._unsaved[entry.id] = deque(maxlen=TRACES_KEPT)
        pending.append(trace)
        if entry.queue and not self.stopping and entry.automation is not None:
            data, late = entry.queue.popleft()
            self.start(entry, data, late)
