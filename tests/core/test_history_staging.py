"""History rows are staged in an unindexed table and moved into `history` with each state
snapshot: readers see them at once, a stop moves them, a restart replays them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.hub import Hub


def _counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT count(*) FROM history").fetchone()[0],
                conn.execute("SELECT count(*) FROM history_recent").fetchone()[0])


async def test_staged_rows_are_read_merged_and_kept(config_factory) -> None:
    loaded = config_factory({"storage": {"state_snapshot_interval": 3600}})
    async with Hub(loaded) as hub:
        path = hub.db.path
        await hub.db.flush()
        merged_at_start, staged_at_start = _counts(path)  # (the devices' first values)
        for i in range(30):
            hub.states.set("virtual.temp", {"value": 100.0 + i})
        await hub.db.flush()
        merged, staged = _counts(path)
        assert merged == merged_at_start and staged == staged_at_start + 30  # not merged yet
        rows = await hub.states.history("virtual.temp", since=0)
        assert [r["value"] for r in rows][-30:] == [100.0 + i for i in range(30)]
        await hub.states.merge_history()
        total = merged_at_start + staged_at_start + 30
        assert _counts(path) == (total, 0)
        assert await hub.states.history("virtual.temp", since=0) == rows  # same order
        hub.states.set("virtual.temp", {"value": 7.0})
        await hub.db.flush()
        assert _counts(path)[1] == 1
    assert _counts(path) == (total + 1, 0)  # a stop merges what was staged
    with sqlite3.connect(path) as conn:
        values = [v for (v,) in conn.execute(
            "SELECT value FROM history WHERE device_id = 'virtual.temp' ORDER BY id")]
    assert values[-31:] == [str(100.0 + i) for i in range(30)] + ["7.0"]


async def test_snapshot_interval_merges_and_a_crash_replays_staged_rows(config_factory) -> None:
    loaded = config_factory({"storage": {"state_snapshot_interval": 3600}})
    async with Hub(loaded) as hub:
        path = hub.db.path
        await hub.db.flush()
        staged = _counts(path)[1]
        hub.states.set("virtual.temp", {"value": 55.5})
        await hub.db.flush()
        assert _counts(path)[1] == staged + 1
        hub.states.snapshot_interval = 0.0  # the next batch is a snapshot: it merges too
        hub.states.set("virtual.temp", {"value": 56.5})
        await hub.db.flush()
        assert _counts(path)[1] == 0
    # a power cut leaves rows staged (the stop above merged everything): stage one by hand
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO history_recent(device_id, attribute, value, ts) "
                     "VALUES('virtual.temp', 'value', '58.5', 9e9)")
    async with Hub(loaded) as again:
        assert again.states.value("virtual.temp", "value") == 58.5  # replayed at start
        rows = await again.states.history("virtual.temp", since=0)
        assert [r["value"] for r in rows][-3:] == [55.5, 56.5, 58.5]
