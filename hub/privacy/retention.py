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

from hub.errors import ValidationError
from hub.privacy.batches import delete_in_batches
from hub.privacy.config import RetentionConfig

if TYPE_CHECKING:
    from hub.clock import Clock
    from hub.state import StateStore
    from hub.storage import Database

_LOG = logging.getLogger(__name__)
DAY = 86_400.0
MAX_DAYS = 36_500.0  # a hundred years: the largest age the owner can set


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

    def __init__(self, db: Database, clock: Clock, states: StateStore, config: RetentionConfig,
                 audit: Callable[..., Awaitable[None]],
                 after_run: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.states = states
        self._after_run = after_run
        self.config = config
        self._audit = audit
        self._task: asyncio.Task[None] | None = None
        self._soon: asyncio.Task[Any] | None = None
        self.last_run: float | None = None
        self.last_deleted: dict[str, int] = {}
        self._set: dict[str, float] = {}  # class -> days the owner set (over the config)

    async def load(self) -> None:
        for row in await self.db.fetchall("SELECT class, days FROM privacy_retention"):
            self._set[row["class"]] = float(row["days"])

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="privacy-retention")

    async def stop(self) -> None:
        if self._soon is not None and not self._soon.done():
            self._soon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._soon
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def days(self, cls: DataClass) -> float:
        return self._set.get(cls.name, self.configured(cls))

    def configured(self, cls: DataClass) -> float:
        return float(getattr(self.config, cls.config_field))

    @staticmethod
    def least(cls: DataClass) -> float:
        """The shortest age allowed for a class (the config option's own minimum)."""
        meta = RetentionConfig.__dataclass_fields__[cls.config_field].metadata
        return float(meta.get("min") or 0.01)

    async def set_days(self, changes: dict[str, float | None], actor: str | None) -> None:
        """Set (a number) or reset to the config's value (None) the age of some classes,
        durably and audited; a purge with the new ages starts right away. Checked first:
        an unknown class or an age out of bounds changes nothing (ValidationError)."""
        by_name = {c.name: c for c in CLASSES}
        for name, days in changes.items():
            cls = by_name.get(name)
            if cls is None:
                raise ValidationError(name, f"unknown data class (known: {', '.join(by_name)})")
            if days is not None and not self.least(cls) <= days <= MAX_DAYS:
                raise ValidationError(
                    name, f"expected days between {self.least(cls):g} and {MAX_DAYS:g}")
        now = self.clock.time()
        await self.db.write_script([
            ("DELETE FROM privacy_retention WHERE class = ?", (name,)) if days is None else
            ("INSERT INTO privacy_retention(class, days, by_user, ts) VALUES(?, ?, ?, ?) "
             "ON CONFLICT(class) DO UPDATE SET days = excluded.days, "
             "by_user = excluded.by_user, ts = excluded.ts", (name, float(days), actor, now))
            for name, days in changes.items()])
        for name, days in changes.items():
            if days is None:
                self._set.pop(name, None)
            else:
                self._set[name] = float(days)
        await self._audit(actor, "privacy.retention.set", None, dict(changes))
        # after a purge still running (it may have read the old ages), never beside it
        self._soon = asyncio.create_task(self._purge_soon(self._soon),
                                         name="privacy-retention-now")

    async def _purge_soon(self, after: asyncio.Task[Any] | None) -> None:
        if after is not None and not after.done():
            await asyncio.wait([after])
        try:
            await self.run_once()
        except Exception:
            _LOG.exception("retention purge after a change failed; the next run retries")

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
                row = await self.db.fetchone(f"SELECT min(ts) AS ts FROM {source}")
                oldest = row["ts"] if row is not None else None
            out[cls.name] = {"days": self.days(cls), "oldest": oldest,
                             "configured": self.configured(cls),
                             "set_by_owner": cls.name in self._set,
                             "min": self.least(cls), "max": MAX_DAYS}
        return {"classes": out, "interval": self.config.interval, "batch": self.config.batch,
                "last_run": self.last_run, "last_deleted": self.last_deleted}

    async def run_once(self) -> dict[str, int]:
        """Purge everything past its age now, batch by batch; return rows deleted per class."""
        now = self.clock.time()
        deleted: dict[str, int] = {}
        await self.states.merge_history()  # staged rows too (history_recent, hub/state.py)
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
            return await delete_in_batches(self.db, cls.table, "ts < ?", (cutoff,),
                                           self.config.batch)

        def anchor(rows: list[Any]) -> list[tuple[str, Any]]:
            return [("INSERT INTO privacy_audit_anchor(id, last_id, last_hash, ts) "
                     "VALUES(1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET last_id = "
                     "excluded.last_id, last_hash = excluded.last_hash, ts = excluded.ts",
                     (rows[-1]["id"], rows[-1]["hash"], self.clock.time()))]

        # the newest audit row always stays: it is the head the next entry chains onto
        return await delete_in_batches(
            self.db, "audit", "ts < ? AND id < (SELECT max(id) FROM audit)", (cutoff,),
            self.config.batch, columns="id, hash", extra=anchor)

    async def _has_table(self, table: str) -> bool:
        row = await self.db.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return row is not None

    async def _loop(self) -> None:
        await self.clock.sleep(min(60.0, self.config.interval))
        while True:
            try:
                await self.run_once()
                if self._after_run is not None:
                    await self._after_run()
            except Exception:
                _LOG.exception("retention purge failed; retrying at the next run")
            await self.clock.sleep(self.config.interval)
