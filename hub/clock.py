"""Time as a service, so tests control it instead of sleeping or patching the loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call `callback()` on the loop once the wall clock reaches `when` (epoch seconds)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        # Wall-clock deadline turned into a loop timer now; long timers re-check the wall
        # clock when they fire (the scheduler re-arms if it fired early after a clock step).
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told to (`await clock.advance(s)`): for tests and benches.

    Timers due while advancing run in deadline order, and the loop gets a few turns after
    each so that the tasks they wake can react before time moves on.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._mono = 1000.0
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await fut
        finally:
            handle.cancel()

    def pending(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    async def settle(self, turns: int = 20) -> None:
        """Let the loop run the work already scheduled."""
        for _ in range(turns):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due on the way."""
        target = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            if when > self._now:
                self._mono += when - self._now
                self._now = when
            timer.callback()
            await self.settle()
        if target > self._now:
            self._mono += target - self._now
            self._now = target
        await self.settle()

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock (as NTP does at boot on a Pi without an RTC) without running
        anything: pending timers keep their monotonic deadline, like the loop's timers."""
        self._now += seconds
        self._timers = [(w + seconds, n, t) for w, n, t in self._timers]
        heapq.heapify(self._timers)

    async def set_time(self, when: float) -> None:
        await self.advance(max(0.0, when - self._now))
