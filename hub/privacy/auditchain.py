"""Checking the audit log's hash chain end to end.

Each row's hash covers the previous row's hash and the row itself (`hub.audit.row_hash`), so
an edited, inserted or deleted row breaks the chain from there on. Retention may delete the
oldest rows; the purge leaves an anchor (the hash of the last row it deleted), so what remains
still verifies and a deletion at the start is told apart from an allowed purge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.audit import GENESIS, row_hash
from hub.storage import Database


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
    """Walk the whole log in id order (streamed) and report the first break, if any."""
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
