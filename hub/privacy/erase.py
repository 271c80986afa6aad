"""Erasure: one device and its history, one user's own data, or the whole hub.

Rows go in small batches (ids read on the read connection, one short delete each through the
writer), so the API keeps answering while 100,000 rows disappear. SQLite's secure_delete
zeroes what is deleted, but copies of a row can survive in the unused space of pages that
b-tree balancing rewrote; so every erasure ends with VACUUM (the file is rebuilt from live
rows only) and a TRUNCATE checkpoint (the WAL is emptied). A factory reset also removes
every key and state file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.errors import NotFound
from hub.privacy.batches import delete_in_batches

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hub.auth.service import AccountService
    from hub.devices import DeviceRegistry
    from hub.state import StateStore
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

# tables kept on a factory reset: structure and counters, nothing personal
_KEEP_TABLES = {"schema_versions", "sqlite_sequence"}
_DB_FILES = ("hub.db", "hub.db-wal", "hub.db-shm")


@dataclass(slots=True)
class ErasureReport:
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "deleted": self.rows, "files_removed": self.files}


async def erase_device(db: Database, devices: DeviceRegistry, states: StateStore,
                       device_id: str, batch: int) -> ErasureReport:
    """The device, its current state, its history and its events, and its place in the
    HomeKit bridge."""
    report = ErasureReport(f"device:{device_id}")
    known = devices.find(device_id) is not None
    # shown in Apple Home: the row goes first (the bridge drops its accessory when the
    # device leaves the registry), so a later device with this id is not shown unasked
    bridged = await db.fetchone("SELECT count(*) AS n FROM homekit_bridge WHERE device_id = ?",
                                (device_id,))
    report.rows["homekit_bridge"] = int(bridged["n"]) if bridged else 0
    await db.write("DELETE FROM homekit_bridge WHERE device_id = ?", (device_id,))
    if known:
        await devices.remove(device_id)
    states.forget(device_id)
    await db.flush()  # what was queued for it reaches the tables, then goes with it
    report.rows["history"] = report.rows["events"] = 0
    await _delete_device_rows(db, device_id, batch, report)
    await db.write("DELETE FROM states WHERE device_id = ?", (device_id,))
    await db.flush()
    # anything that slipped in meanwhile (a last report from the integration)
    await _delete_device_rows(db, device_id, batch, report)
    if not known and not any(report.rows.values()):
        raise NotFound(f"no device {device_id!r} and no data about it: nothing to erase")
    report.rows["devices"] = int(known)
    return report


async def erase_user(db: Database, auth: AccountService | None,
                     forget_subject: Callable[[str], Awaitable[None]], user_id: str,
                     batch: int) -> ErasureReport:
    """A user's account, sign-in history, tokens, privacy choices; consent entries they made
    lose their name (the consent itself is the household's and stays)."""
    report = ErasureReport(f"user:{user_id}")
    if auth is None:
        raise NotFound("this hub has no user accounts")
    auth.user(user_id)  # NotFound if gone
    report.rows["logins"] = await delete_in_batches(db, "logins", "user_id = ?",
                                                    (user_id,), batch)
    token_ids = [r["id"] for r in await db.fetchall(
        "SELECT id FROM tokens WHERE user_id = ?", (user_id,))]
    for token_id in token_ids:
        await db.write("DELETE FROM privacy_token_addresses WHERE token_id = ?",
                           (token_id,))
    await auth.delete_user(user_id, actor=user_id)  # tokens and recovery codes cascade
    await forget_subject(user_id)
    await db.write("UPDATE consent_log SET by_user = 'erased-user' WHERE by_user = ?",
                       (user_id,))
    await db.write("UPDATE consents SET by_user = 'erased-user' WHERE by_user = ?",
                       (user_id,))
    report.rows["users"] = 1
    report.rows["tokens"] = len(token_ids)
    return report


async def factory_reset(db: Database, state_dir: Path) -> ErasureReport:
    """Every row of every table, then VACUUM, then every file in the state directory but
    the database itself: keys, certificates, codes. The hub must restart afterwards."""
    report = ErasureReport("hub")
    tables = [r["name"] for r in await db.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    statements: list[tuple[str, Any]] = []
    for table in tables:
        if table in _KEEP_TABLES or table.endswith("_meta"):
            continue
        row = await db.fetchone(f"SELECT count(*) AS n FROM {table}")
        report.rows[table] = int(row["n"]) if row else 0
        statements.append((f"DELETE FROM {table}", ()))
    if "auth_meta" in tables:  # other processes holding account caches must reload
        statements.append(("UPDATE auth_meta SET value = value + 1 WHERE key = 'generation'",
                           ()))
    await db.write_script(statements)
    await db.checkpoint(vacuum=True)
    report.files = await asyncio.to_thread(_remove_state_files, state_dir)
    _LOG.warning("factory reset: %d tables emptied, %d files removed; restart the hub",
                 len(statements), len(report.files))
    return report


def _remove_state_files(state_dir: Path) -> list[str]:
    removed = []
    for path in sorted(state_dir.rglob("*"), reverse=True):
        rel = path.relative_to(state_dir).as_posix()
        if rel in _DB_FILES:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                _overwrite(path)
                path.unlink()
            removed.append(rel)
        except OSError as exc:
            _LOG.error("factory reset could not remove %s: %s", rel, exc)
    return removed


def _overwrite(path: Path) -> None:
    """Zero a small file before unlinking (keys): not a guarantee on flash, but no worse."""
    try:
        size = path.stat().st_size
        if 0 < size <= 1 << 20 and path.is_file():
            with open(path, "r+b") as fh:
                fh.write(b"\0" * size)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError:
        pass


async def _delete_device_rows(db: Database, device_id: str, batch: int,
                              report: ErasureReport) -> None:
    # history_recent: history rows staged before they move into `history`
    for table, kind in (("history", "history"), ("history_recent", "history"),
                        ("events", "events")):
        report.rows[kind] += await delete_in_batches(db, table, "device_id = ?",
                                                     (device_id,), batch)
