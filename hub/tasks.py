"""Background tasks a service owns: started by name, failures logged, all ended at stop."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import TypeVar

_EAGER = sys.version_info >= (3, 12)

T = TypeVar("T")


def start_eager(coro: Coroutine[object, object, T]) -> asyncio.Task[T]:
    """A task for a request-handling coroutine that often finishes without waiting (a
    command to a local device): on Python 3.12+ it runs at once, up to its first real wait,
    with no trip through the loop (asyncio's eager start); a plain task before 3.12. Not for
    anything that can start itself again synchronously (automation runs): eager starts nest.
    The task may be done when this returns."""
    loop = asyncio.get_running_loop()
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return asyncio.Task(coro, loop=loop)  # loop.create_task, minus a Python frame


class BackgroundTasks:
    """A set of fire-and-forget tasks that is never forgotten: `stop()` cancels and awaits
    whatever still runs, and a task that fails is logged (at `level`) rather than lost."""

    def __init__(self, log: logging.Logger, level: int = logging.ERROR) -> None:
        self._log = log
        self._level = level
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, coro: Coroutine[object, object, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.log(self._level, "task %s failed", task.get_name(),
                          exc_info=task.exception())
