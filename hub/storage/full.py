"""A full disk: recognising it, and the few writes that wait in memory until space returns.

When the disk is full SQLite answers SQLITE_FULL ("database or disk is full") and files answer
ENOSPC. The API answers such writes 507 (StorageFull) and health says degraded. Some writes
must not turn a request into a failure, though: signing in only needs the session in memory,
so its records (the sign-in, the audit entry, the session's tokens) wait here, in order and
bounded, and are written when a retry finds space again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from hub.clock import Clock, SystemClock
from hub.errors import StorageFull

_LOG = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 20
"""Below this much free space health says the disk is full even before a write failed."""

Write = Callable[[], Awaitable[object]]


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is SQLite's SQLITE_FULL or an ENOSPC."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, StorageFull):
            return True
        if isinstance(cur, sqlite3.Error) and getattr(cur, "sqlite_errorcode", None) == \
                sqlite3.SQLITE_FULL:
            return True
        if isinstance(cur, OSError) and cur.errno == errno.ENOSPC:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use in `directory` (one statvfs call)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class WriteBacklog:
    """Writes kept in memory while the disk is full, retried in order every `retry` seconds
    (on `clock`, the hub's injected one).

    Bounded: past `limit` entries the oldest is dropped (and counted in the log), so a long
    outage cannot grow memory without end.
    """

    def __init__(self, limit: int = 1000, retry: float = 5.0,
                 clock: Clock | None = None) -> None:
        self.limit = limit
        self.retry = retry
        self.clock: Clock = clock or SystemClock()
        self.dropped = 0
        self.drained = asyncio.Event()
        self.drained.set()
        self._queue: deque[tuple[str, Write]] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    async def write(self, what: str, write: Write) -> bool:
        """Run `write` now; if the disk is full keep it for later. True when written now."""
        if self._queue:  # keep the order: behind what already waits
            self._keep(what, write)
            return False
        try:
            await write()
        except StorageFull:
            self._keep(what, write)
            return False
        return True

    async def close(self) -> None:
        """A last try (the hub is stopping); what still does not fit is lost, and said so."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drain()
        if self._queue:
            _LOG.warning("disk still full at stop: %d deferred write(s) lost (%s)",
                         len(self._queue), ", ".join(sorted({w for w, _ in self._queue})))
            self._queue.clear()
            self.drained.set()

    def _keep(self, what: str, write: Write) -> None:
        if not self._queue:
            _LOG.warning("disk full: keeping %s in memory until space returns", what)
        self._queue.append((what, write))
        self.drained.clear()
        if len(self._queue) > self.limit:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                _LOG.warning("disk full: %d deferred write(s) dropped (at most %d are kept)",
                             self.dropped, self.limit)
        if self._task is None:
            self._task = asyncio.create_task(self._retry(), name="storage-backlog")

    async def _retry(self) -> None:
        try:
            while self._queue:
                await self.clock.sleep(self.retry)
                await self._drain()
        finally:
            self._task = None

    async def _drain(self) -> None:
        written = 0
        while self._queue:
            what, write = self._queue[0]
            try:
                await write()
            except StorageFull:
                return
            except Exception:  # not a full disk: this one will never fit; the rest may
                _LOG.exception("a deferred write (%s) failed; dropped", what)
            self._queue.popleft()
            written += 1
        self.drained.set()
        if written:
            _LOG.info("disk has space again: wrote %d deferred write(s)", written)
