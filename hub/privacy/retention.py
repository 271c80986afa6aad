"""Retention: every class of personal data is deleted when older than its configured age.

The purge runs in the background in small batches (ids read on the read connection, one
short delete per batch through the writer), yielding between batches, so the API never waits
behind it. Purging the audit log keeps an anchor (the last purged row's hash) so the hash
chain of what remains still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.privacy.batches import delete_in_batches
from hub.privacy.config import RetentionConfig

if TYPE_CHECKING:
    from hub.hub import Hub

_LOG = logging.getLogger(__name__)
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class DataClass:
    name: str
    table: str
    config_field: str


CLASSES = (
    DataClass("history", "history", "history_days"),
    DataClass("events", "events", "events_days"),
    DataClass("audit", "audit", "audit_days"),
    DataClass("sign_ins", "logins", "sign_ins_days"),
)


class RetentionJob:
    """Background purge; `run_once()` is also what the CLI and tests call."""

    def __init__(self, hub: Hub, config: RetentionConfig,
                 audit: Callable[..., Awaitable[None]],
                 after_run: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.hub = hub
        self._after_run = after_run
        self.config = config
        self._audit = audit
        self._task: asyncio.Task[None] | None = None
        self.last_run: float | None = None
        self.last_deleted: dict[str, int] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="privacy-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def days(self, cls: DataClass) -> float:
        return float(getattr(self.config, cls.config_field))

    async def status(self) -> dict[str, Any]:
        """Configured ages and the oldest record kept, per class."""
        out: dict[str, Any] = {}
        for cls in CLASSES:
            oldest = None
            if await self._has_table(cls.table):
                # history: staged rows too; min() of each table alone stays an index lookup
                source = cls.table if cls.table != "history" else (
                    "(SELECT min(ts) AS ts FROM history "
                    "UNION ALL SELECT min(ts) FROM history_recent)")
                row = await self.hub.db.fetchone(f"SELECT min(ts) AS ts FROM {source}")
                oldest = row["ts"] if row is not None else None
            out[cls.name] = {"days": self.days(cls), "oldest": oldest}
        return {"classes": out, "interval": self.config.interval, "batch": self.config.batch,
                "last_run": self.last_run, "last_deleted": self.last_deleted}

    async def run_once(self) -> dict[str, int]:
        """Purge everything past its age now, batch by batch; return rows deleted per class."""
        now = self.hub.clock.time()
        deleted: dict[str, int] = {}
        await self.hub.states.merge_history()  # staged rows too (history_recent, hub/state.py)
        for cls in CLASSES:
            if not await self._has_table(cls.table):
                continue
            deleted[cls.name] = await self._purge(cls, now - self.days(cls) * DAY)
        self.last_run = now
        self.last_deleted = deleted
        if any(deleted.values()):
            await self._audit(None, "retention.purged", None, deleted)
        return deleted

    async def _purge(self, cls: DataClass, cutoff: float) -> int:
        if cls.table != "audit":
            return await delete_in_batches(self.hub.db, cls.table, "ts < ?", (cutoff,),
                                           self.config.batch)

        def anchor(rows: list[Any]) -> list[tuple[str, Any]]:
            return [("INSERT INTO privacy_audit_anchor(id, last_id, last_hash, ts) "
                     "VALUES(1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET last_id = "
                     "excluded.last_id, last_hash = excluded.last_hash, ts = excluded.ts",
                     (rows[-1]["id"], rows[-1]["hash"], self.hub.clock.time()))]

        # the newest audit row always stays: it is the head the next entry chains onto
        return await delete_in_batches(
            self.hub.db, "audit", "ts < ? AND id < (SELECT max(id) FROM audit)", (cutoff,),
            self.config.batch, columns="id, hash", extra=anchor)

    async def _has_table(self, table: str) -> bool:
        row = await self.hub.db.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return row is not None

    async def _loop(self) -> None:
        await self.hub.clock.sleep(min(60.0, self.config.interval))
        while True:
            try:
                await self.run_once()
                if self._after_run is not None:
                    await self._after_run()
            except Exception:
                _LOG.exception("retention purge failed; retrying at the next run")
            await self.hub.clock.sleep(self.config.interval)
