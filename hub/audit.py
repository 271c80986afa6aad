"""The append-only audit log: who did what to what, chained by SHA-256 so edits show.

Every row's `hash` is SHA-256 over the previous row's hash and the row's canonical JSON,
so rewriting or deleting a row breaks the chain from there on (`verify()` finds where).
Usage everywhere: `await hub.audit.record(actor, action, target, details)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hub.clock import Clock
from hub.storage import Database, Schema, storable

SCHEMA = Schema(
    "audit",
    (
        """
        CREATE TABLE audit(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            actor TEXT,
            action TEXT NOT NULL,
            target TEXT,
            details TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_ts ON audit(ts);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        """,
    ),
)

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts: float
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "actor": self.actor, "action": self.action,
                "target": self.target, "details": self.details, "hash": self.hash}


def row_hash(prev_hash: str, ts: float, actor: str | None, action: str, target: str | None,
             details_json: str) -> str:
    canonical = json.dumps([ts, actor, action, target, details_json],
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class AuditLog:
    """Append rows; read them back; check the chain."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._last_hash = GENESIS
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        row = await self.db.fetchone("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
        self._last_hash = row["hash"] if row else GENESIS

    async def record(self, actor: str | None, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None, *, ts: float | None = None) -> None:
        """Append one row, durably. Never put secrets in `details`. `ts`: when it happened,
        if earlier than now (an entry that waited for disk space)."""
        # a hostile string (a lone surrogate in a user name) must not cost the record
        details_json = storable(json.dumps(details or {}, separators=(",", ":"),
                                           sort_keys=True, ensure_ascii=False, default=str))
        actor = None if actor is None else storable(actor)
        target = None if target is None else storable(target)
        async with self._lock:  # the chain needs one writer at a time, in order
            ts = round(self.clock.time() if ts is None else ts, 6)
            # the CLI appends too (another process): chain onto the stored head, not a cache
            head = await self.db.fetchone("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
            prev = head["hash"] if head is not None else GENESIS
            digest = row_hash(prev, ts, actor, action, target, details_json)
            await self.db.write(
                "INSERT INTO audit(ts, actor, action, target, details, prev_hash, hash) "
                "VALUES(?,?,?,?,?,?,?)",
                (ts, actor, action, target, details_json, prev, digest),
            )
            self._last_hash = digest

    async def entries(self, *, limit: int = 100, before: int | None = None,
                      actor: str | None = None, action: str | None = None) -> list[AuditEntry]:
        """Newest first."""
        where: list[str] = []
        params: list[int | str] = []
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = "SELECT * FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = await self.db.fetchall(sql, params)
        return [_entry(r) for r in rows]

    async def verify(self) -> int | None:
        """Id of the first row whose chain is broken, or None when the log is intact.

        Walks from the retention anchor, so purged old rows are not mistaken for tampering."""
        return (await verify_chain(self.db)).first_bad_id


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""
    head: str = GENESIS

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_bad_id": self.first_bad_id,
                "reason": self.reason, "head": self.head}


async def verify_chain(db: Database) -> ChainReport:
    """Walk the whole log in id order (streamed) and report the first break, if any.

    Each row's hash covers the previous row's hash and the row itself (`row_hash`), so an
    edited, inserted or deleted row breaks the chain from there on. Retention may delete the
    oldest rows; the purge leaves an anchor (privacy_audit_anchor: the hash of the last row
    it deleted), so what remains still verifies and a deletion at the start is told apart
    from an allowed purge."""
    anchor = await db.fetchone("SELECT last_id, last_hash FROM privacy_audit_anchor WHERE id = 1")
    prev = anchor["last_hash"] if anchor is not None else GENESIS
    after = anchor["last_id"] if anchor is not None else 0
    checked = 0
    async for r in db.iterate("SELECT * FROM audit ORDER BY id", batch=2000):
        if r["id"] <= after:
            return ChainReport(False, checked, int(r["id"]),
                               "row older than the retention anchor", prev)
        if r["prev_hash"] != prev:
            return ChainReport(False, checked, int(r["id"]),
                               "previous-hash link broken (a row was removed or inserted)",
                               prev)
        expect = row_hash(prev, r["ts"], r["actor"], r["action"], r["target"], r["details"])
        if r["hash"] != expect:
            return ChainReport(False, checked, int(r["id"]),
                               "row content does not match its hash (edited)", prev)
        prev = r["hash"]
        checked += 1
    return ChainReport(True, checked, head=prev)


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(int(r["id"]), r["ts"], r["actor"], r["action"], r["target"],
                      json.loads(r["details"]), r["prev_hash"], r["hash"])
