"""Storage: migrations from every earlier version, batching writer, durability, WAL reads."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hub.errors import StorageError
from hub.hub import core_schemas
from hub.storage import Database, Schema
from hub.storage.migrations import migrate


def _versions(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT component, version FROM schema_versions"))


def _apply_prefix(path: Path, schemas: list[Schema], cut: dict[str, int]) -> None:
    """Build a database as an older release left it: each component up to `cut[name]`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, [Schema(s.component, s.steps[: cut[s.component]]) for s in schemas])
    finally:
        conn.close()


async def test_migrates_from_empty_database(tmp_path: Path) -> None:
    schemas = core_schemas()
    async with Database(tmp_path / "hub.db", schemas) as db:
        assert {s.component: (0, s.version) for s in schemas} == db.migrated
        tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master")}
    assert {"devices", "states", "history", "events", "schema_versions"} <= tables
    assert _versions(tmp_path / "hub.db") == {s.component: s.version for s in schemas}


@pytest.mark.parametrize("schema_index", range(len(core_schemas())))
async def test_migrates_from_every_earlier_version(tmp_path: Path, schema_index: int) -> None:
    schemas = core_schemas()
    target = schemas[schema_index]
    for version in range(target.version):
        path = tmp_path / f"v{version}.db"
        cut = {s.component: s.version for s in schemas}
        cut[target.component] = version
        _apply_prefix(path, schemas, cut)
        if version:
            # data written by the older release survives the upgrade
            with sqlite3.connect(path) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS marker(x TEXT)")
                conn.execute("INSERT INTO marker VALUES('kept')")
        async with Database(path, schemas) as db:
            assert db.migrated[target.component] == (version, target.version)
        assert _versions(path)[target.component] == target.version
        if version:
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT x FROM marker").fetchall() == [("kept",)]


async def test_refuses_a_database_from_a_newer_hub(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with Database(path, core_schemas()):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'state'")
    with pytest.raises(StorageError, match="newer than this hub knows"):
        async with Database(path, core_schemas()):
            pass


async def test_failed_migration_step_leaves_previous_version(tmp_path: Path) -> None:
    bad = Schema("x", ("CREATE TABLE t(a INTEGER);", "INSERT INTO nope VALUES(1);"))
    with pytest.raises(StorageError, match="migration x 1 -> 2 failed"):
        async with Database(tmp_path / "hub.db", [bad]):
            pass
    assert _versions(tmp_path / "hub.db") == {"x": 1}


async def test_writer_batches_and_flushes_on_close(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    schema = Schema("t", ("CREATE TABLE t(a INTEGER);",))
    db = Database(path, [schema], commit_interval=30.0)
    await db.open()
    for i in range(500):
        db.enqueue("INSERT INTO t VALUES(?)", (i,))
    await asyncio.sleep(0.05)
    assert db.stats.commits == 0  # nothing committed before the interval: one batch later
    assert (await db.fetchone("SELECT count(*) FROM t"))[0] == 0
    await db.close()
    assert db.stats.commits == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 500


async def test_durable_write_reports_errors_without_losing_the_batch(tmp_path: Path) -> None:
    schema = Schema("t", ("CREATE TABLE t(a INTEGER UNIQUE);",))
    async with Database(tmp_path / "hub.db", [schema], commit_interval=30.0) as db:
        db.enqueue("INSERT INTO t VALUES(1)")
        await db.write("INSERT INTO t VALUES(2)")
        with pytest.raises(StorageError, match="UNIQUE"):
            await db.write("INSERT INTO t VALUES(2)")
        with pytest.raises(StorageError):
            await db.write_script(
                [("INSERT INTO t VALUES(3)", ()), ("INSERT INTO t VALUES(1)", ())]
            )
        rows = [r[0] for r in await db.fetchall("SELECT a FROM t ORDER BY a")]
    assert rows == [1, 2]  # the failed script left nothing half-written


async def test_reads_do_not_wait_for_a_slow_commit(tmp_path: Path) -> None:
    schema = Schema("t", ("CREATE TABLE t(a INTEGER);",))
    async with Database(tmp_path / "hub.db", [schema], commit_interval=30.0) as db:
        await db.write("INSERT INTO t VALUES(1)")
        db.enqueue_many("INSERT INTO t VALUES(?)", [(i,) for i in range(300_000)])
        commit = asyncio.create_task(db.flush())
        await asyncio.sleep(0.01)  # the writer is now inside its big transaction
        row = await db.fetchone("SELECT count(*) FROM t")
        # answered while the commit still runs: the read did not queue behind it
        assert not commit.done(), "the commit should still be running"
        assert row[0] == 1  # WAL: the reader sees the last committed state
        await commit
        assert (await db.fetchone("SELECT count(*) FROM t"))[0] == 300_001


async def test_bytes_written_per_state_change_are_counted(hub) -> None:
    await hub.db.flush()
    before = hub.db.stats.history_rows
    for i in range(1000):
        hub.states.set("virtual.temp", {"value": float(i) + 0.5})
    await hub.db.flush()
    stats = hub.db.stats
    assert stats.history_rows - before == 1000
    assert stats.bytes_written > 0
    assert 0 < stats.bytes_per_state_change < 4096


async def test_bulk_insert_round_trips_every_value_exactly(tmp_path: Path) -> None:
    """Rows written through one JSON array come back as executemany would have stored them:
    floats to the last bit, text with quotes and non-ASCII, NULLs, big integers; and the
    upsert tail updates rows that exist."""
    import random

    from hub.storage import BulkInsert

    schema = Schema("t", ("CREATE TABLE t(k TEXT PRIMARY KEY, f REAL, s TEXT, i INTEGER);",))
    db = Database(path := tmp_path / "hub.db", [schema], commit_interval=30.0)
    await db.open()
    rng = random.Random(7)
    rows = [(f"k{n}", rng.uniform(-1e12, 1e12) if n % 3 else 1764136000.0 + rng.random(),
             ['"quoted"', "naïve ☃", "back\\slash", None, "true", '{"a": 1}'][n % 6],
             [0, -1, 2**62, None][n % 4]) for n in range(3000)]
    insert = BulkInsert("t", ("k", "f", "s", "i"), tail=(
        "ON CONFLICT(k) DO UPDATE SET f = excluded.f, s = excluded.s, i = excluded.i"))
    assert insert.ops([]) == []
    hook_rows = [rows]
    db.add_flush_hook(lambda: insert.ops(hook_rows.pop()) if hook_rows else [])
    await db.flush()
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT k, f, s, i FROM t ORDER BY rowid").fetchall()
    assert stored == rows
    hook_rows.append([("k1", 0.5, "new", 9)])  # the upsert path
    await db.flush()
    await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT f, s, i FROM t WHERE k = 'k1'").fetchone() == (0.5, "new", 9)
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 3000
