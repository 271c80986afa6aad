"""Time for automations: wall-clock timers on the hub's clock, when time triggers fire next,
which scheduled times already fired, the heartbeat that notices clock steps and missed
triggers, and the durable timers (delays, waits, `for:`) that survive a restart.

The runner and the trigger listeners see only these two objects, never the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.automation import storage as sql
from hub.automation.cron import next_cron
from hub.automation.model import Trigger
from hub.automation.sun import NoLocation, next_sun, next_time_of_day

if TYPE_CHECKING:
    from astral import Observer

    from hub.clock import Clock
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

HEARTBEAT_EVERY = 30.0
CLOCK_STEP = 5.0  # seconds of wall/monotonic disagreement that count as a clock step
MISSED_SCAN_LIMIT = 10_000  # occurrences looked at per trigger when catching up


class Schedule:
    """Wall-clock timers, next occurrences of time triggers, and what already fired."""

    def __init__(self, db: Database, clock: Clock, tz: ZoneInfo,
                 location: Callable[[], Observer]) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.location = location  # raises NoLocation without consent or coordinates
        self.last_alive: float | None = None  # the previous run's last heartbeat
        self._fired: dict[tuple[str, int], float] = {}
        self._heartbeat: Any = None
        self._last_beat: tuple[float, float] | None = None
        self._on_step: Callable[[], None] = lambda: None

    async def load(self) -> None:
        self._fired = {(r["automation_id"], r["trigger"]): r["ts"]
                       for r in await self.db.fetchall("SELECT * FROM automation_fired")}
        row = await self.db.fetchone(
            "SELECT value FROM automation_meta WHERE key = 'heartbeat'")
        self.last_alive = row["value"] if row else None

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        """A wall-clock timer from the hub's clock (or the loop, for clocks without one)."""
        call_at = getattr(self.clock, "call_at", None)
        if call_at is not None:
            return call_at(when, callback)
        delay = max(0.0, when - self.clock.time())
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep_until(self, deadline: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_at(deadline, wake)
        try:
            await fut
        finally:
            handle.cancel()

    def next_fire(self, t: Trigger, after: float) -> float | None:
        """The next time a time, cron or sun trigger fires after `after` (None: never)."""
        if t.type == "time" and t.at is not None:
            return next_time_of_day(t.at, after, self.tz)
        if t.type == "cron" and t.cron is not None:
            return next_cron(t.cron, after, self.tz)
        if t.type == "sun":
            try:
                observer = self.location()
            except NoLocation as exc:
                _LOG.error("sun trigger %s", exc)
                return None
            return next_sun(observer, t.event or "sunrise", t.offset, after, self.tz)
        return None

    def fired(self, automation_id: str, index: int) -> float:
        """When trigger `index` of an automation last fired (its scheduled time; 0: never)."""
        return self._fired.get((automation_id, index), 0.0)

    def mark_fired(self, automation_id: str, index: int, scheduled: float) -> None:
        self._fired[(automation_id, index)] = scheduled
        self.db.enqueue(sql.UPSERT_FIRED, (automation_id, index, scheduled))

    def missed(self, automation_id: str, index: int, t: Trigger, grace: float) -> float | None:
        """The latest occurrence of `t` missed while the hub was down, within `grace`."""
        if self.last_alive is None or grace <= 0:
            return None
        now = self.clock.time()
        since = max(self.last_alive, self.fired(automation_id, index), now - grace)
        latest, occ, guard = None, self.next_fire(t, since), 0
        while occ is not None and occ <= now and guard < MISSED_SCAN_LIMIT:
            latest, occ, guard = occ, self.next_fire(t, occ), guard + 1
        return latest

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)

    def start_heartbeat(self, on_clock_step: Callable[[], None]) -> None:
        """Store a heartbeat every 30 s (what "while the hub was down" means at the next
        start) and call `on_clock_step` when the wall clock jumps against monotonic time."""
        self._on_step = on_clock_step
        self._beat()

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self.db.enqueue(sql.HEARTBEAT, (self.clock.time(),))

    def _beat(self) -> None:
        clock = self.clock
        now, mono = clock.time(), clock.monotonic()
        last = self._last_beat
        if last is not None and abs((now - last[0]) - (mono - last[1])) > CLOCK_STEP:
            _LOG.warning("wall clock stepped by %.0f s: rescheduling time triggers",
                         (now - last[0]) - (mono - last[1]))
            self._on_step()
        self._last_beat = (now, mono)
        self.db.enqueue(sql.HEARTBEAT, (now,))
        self._heartbeat = self.call_at(clock.time() + HEARTBEAT_EVERY, self._beat)


class DurableTimers:
    """The `automation_timers` table: where runs wait (delay, wait) and pending `for:`
    durations, each with its wall-clock deadline, so a restart resumes them."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._saved: dict[str, Any] = {}  # rows of the previous run, until claimed

    async def load(self) -> None:
        self._saved = {r["id"]: r for r in await self.db.fetchall(
            "SELECT * FROM automation_timers")}

    def save(self, timer_id: str, automation_id: str, kind: str, deadline: float | None,
             path: list[Any], trigger: dict[str, Any], digest: str, soon: bool = False) -> None:
        """Store a timer; `soon`: ask the writer to commit without waiting for its interval
        (a run that waits minutes must survive a power cut in the next second)."""
        self.db.enqueue(sql.UPSERT_TIMER, (
            timer_id, automation_id, kind, deadline, json.dumps(path),
            json.dumps(trigger, default=str), digest, self.clock.time()))
        if soon:
            self.db.nudge()

    def drop(self, timer_id: str) -> None:
        self.db.enqueue(sql.DELETE_TIMER, (timer_id,))

    def claim(self, timer_id: str) -> Any:
        """The saved row of this timer from before the restart, if any (claimed once)."""
        return self._saved.pop(timer_id, None)

    def claim_runs(self) -> list[Any]:
        """Saved rows of runs that waited in a delay or a wait (each dropped: a resumed run
        saves its own row again)."""
        rows = [r for r in self._saved.values() if r["kind"] in ("delay", "wait")]
        for r in rows:
            del self._saved[r["id"]]
            self.drop(r["id"])
        return rows

    def drop_unclaimed(self) -> None:
        for stale in list(self._saved):
            self.drop(stale)
        self._saved = {}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _LOG.error("unknown time zone %r: automations use UTC", name)
        return ZoneInfo("UTC")
