"""Time limits of one fixed length for many concurrent awaits, on a single timer.

`asyncio.timeout` arms and cancels a timer handle for every await it guards: about 4 µs,
as much as the rest of a virtual device's command. Where every limit has the same length
(automation commands, websocket sends), deadlines expire in the order they were set: one
timer, armed for the oldest, serves them all, and a guard costs two dict operations.
`async with deadlines.limit():` behaves like `async with asyncio.timeout(seconds):` — the
task is cancelled at its deadline and that cancellation (only that one) becomes TimeoutError.
"""

from __future__ import annotations

import asyncio
import itertools


class Deadlines:
    """`async with deadlines.limit():`, or `token = arm()` ... `expired(token)` by hand."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pending: dict[int, tuple[float, asyncio.Task[object]]] = {}  # oldest first
        self._expired: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tokens = itertools.count()

    def arm(self) -> int:
        """Start the current task's deadline; `seconds` from now it is cancelled."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.arm() outside a task")
        loop = task.get_loop()
        token = next(self._tokens)
        deadline = loop.time() + self.seconds
        self._pending[token] = (deadline, task)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        return token

    def expired(self, token: int) -> bool:
        """End this deadline; True when it expired and so caused the task's cancellation.

        Like asyncio.timeout's exit, it then takes that cancellation back (`uncancel`) and
        reports True only if no other cancellation is pending: a run cancelled for another
        reason at the same time stays cancelled (the caller re-raises CancelledError)."""
        if self._pending.pop(token, None) is not None:
            return False
        if token not in self._expired:
            return False
        self._expired.discard(token)
        task = asyncio.current_task()
        return task is not None and task.uncancel() == 0

    def limit(self) -> Limit:
        """A context manager like `asyncio.timeout(self.seconds)`."""
        return Limit(self)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        pending = self._pending
        while pending:
            token = next(iter(pending))
            deadline, task = pending[token]
            loop = task.get_loop()
            if deadline > loop.time():
                self._timer = loop.call_at(deadline, self._expire)
                return
            del pending[token]
            if not task.done():
                self._expired.add(token)
                task.cancel()


class Limit:
    """One `async with` guard of a Deadlines (what asyncio.timeout's context manager does)."""

    __slots__ = ("_deadlines", "_token")

    def __init__(self, deadlines: Deadlines) -> None:
        self._deadlines = deadlines
        self._token = -1

    async def __aenter__(self) -> Limit:
        self._token = self._deadlines.arm()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:
        if self._deadlines.expired(self._token) and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
