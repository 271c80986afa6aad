"""One bad row never takes others with it: the batching writer isolates a failing statement.

Before the fix the writer caught only `sqlite3.Error` per statement: a lone surrogate (a
UnicodeEncodeError while binding) rolled back the whole batch, history and audit rows of
everyone else included.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hub.auth.principal import Role
from hub.errors import AuthError, StorageError
from hub.hub import Hub
from hub.storage import BulkInsert, Database, Schema

POISON = "bad \ud800 value"
SCHEMA = Schema("t", ("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT NOT NULL);",))


async def _keys(db: Database) -> set[str]:
    return {r[0] for r in await db.fetchall("SELECT k FROM t")}


async def test_every_good_row_of_a_batch_survives_poisoned_statements(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(tmp_path / "hub.db", [SCHEMA], commit_interval=60.0)
    await db.open()
    try:
        bulk = BulkInsert("t", ("k", "v"))
        bulk_rows = [[(f"bulk{i}", POISON if i == 250 else "ok") for i in range(500)]]
        db.add_flush_hook(lambda: bulk.ops(bulk_rows.pop()) if bulk_rows else [])
        for i in range(100):
            db.enqueue("INSERT INTO t VALUES(?, ?)", (f"single{i}", "ok"))
            if i in (10, 60):  # the same cause twice: logged once
                db.enqueue("INSERT INTO t VALUES(?, ?)", (f"poison{i}", POISON))
        many = [(f"many{i}", "ok") for i in range(50)]
        many[20] = ("many20", POISON)
        many[30] = ("many30", None)  # a constraint, not an encoding, refuses this one
        db.enqueue_many("INSERT INTO t VALUES(?, ?)", many)
        failed = asyncio.ensure_future(db.write("INSERT INTO t VALUES(?, ?)", ("w", POISON)))
        script = asyncio.ensure_future(db.write_script(
            [("INSERT INTO t VALUES(?, ?)", ("s1", "ok")),
             ("INSERT INTO t VALUES(?, ?)", ("s2", POISON))]))
        with caplog.at_level(logging.ERROR, logger="hub.storage.database"):
            with pytest.raises(StorageError):
                await failed
            with pytest.raises(StorageError):
                await script
            await db.flush()
        keys = await _keys(db)
        assert {f"single{i}" for i in range(100)} <= keys
        assert {f"many{i}" for i in range(50)} - keys == {"many20", "many30"}
        assert {f"bulk{i}" for i in range(500)} - keys == {"bulk250"}
        assert not {k for k in keys if k.startswith(("poison", "w", "s"))} - {
            f"single{i}" for i in range(100)}
        assert db.stats.dropped == 5  # poison10, poison60, many20, many30, bulk250
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 3  # per statement and cause: encoding, constraint, bulk
        assert all("\ud800" not in line and "ok" not in line.split(":")[-1] for line in lines)
        assert any("INSERT t" in line for line in lines)
    finally:
        await db.close()


async def test_a_poisoned_sign_in_and_token_keep_history_and_audit(
        tmp_path: Path, config_factory) -> None:
    """A busy batch (200 history rows, audit rows) with a failed sign-in and a guest token
    named with a lone surrogate: every history row is stored and the failed sign-in is in
    the audit log (its name with the bad character replaced)."""
    cfg = config_factory({"storage": {"commit_interval": 60.0}})
    async with Hub(cfg) as hub:
        guest = await hub.auth.create_user("guest1", "a long passphrase", Role.GUEST)
        await hub.db.flush()
        before = (await hub.db.fetchone("SELECT count(*) FROM history_recent"))[0]
        for i in range(200):
            hub.states.set("virtual.temp", {"value": 100.0 + i})
        with pytest.raises(AuthError):
            await hub.auth.login("\ud800", "whatever1", None, "127.0.0.1")
        with pytest.raises(StorageError):
            await hub.auth.create_token(guest.id, "tok\udfff", actor=guest.id)
        for i in range(20):
            hub.states.set("virtual.temp", {"value": 1000.0 + i})
            await hub.audit.record("tester", "test.row", str(i))
        await hub.db.flush()
        await hub.states.merge_history()
        rows = await hub.db.fetchall(
            "SELECT count(*) FROM history WHERE device_id='virtual.temp' AND "
            "CAST(json_extract(value, '$') AS REAL) >= 100")
        assert rows[0][0] == 220
        assert before >= 0
        failed = await hub.audit.entries(action="login.failed")
        assert len(failed) == 1 and failed[0].details["username"] == "?"
        assert len(await hub.audit.entries(action="test.row")) == 20
        assert await hub.audit.verify() is None
        logins = await hub.db.fetchall("SELECT username, ok FROM logins")
        assert [(r[0], r[1]) for r in logins] == [("?", 0)]
