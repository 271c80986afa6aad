"""Device state: current attribute values with last_changed/last_updated, and their history.

Every change is published on the bus at once and queued for the history table. The table of
current values is only a snapshot, written every `snapshot_interval` and at shutdown: history
already holds every change, so after a crash the newest values are replayed from it. Writing
current values on every commit would touch one more scattered page per device (measured:
about twice the bytes per change on an SD card).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from hub.bus import AvailabilityChanged, EventBus, StateChanged
from hub.clock import Clock
from hub.fastjson import dumps
from hub.storage import BulkInsert, Database, Schema
from hub.storage.database import Params

SCHEMA = Schema(
    "state",
    (
        """
        CREATE TABLE states(
            device_id TEXT NOT NULL, attribute TEXT NOT NULL, value TEXT,
            last_changed REAL NOT NULL, last_updated REAL NOT NULL,
            PRIMARY KEY(device_id, attribute)
        ) WITHOUT ROWID;
        CREATE TABLE history(
            id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, attribute TEXT NOT NULL,
            value TEXT, ts REAL NOT NULL
        );
        CREATE INDEX history_device_ts ON history(device_id, ts);
        """,
        # v2: device events (button presses...) kept apart, and a time index for retention
        """
        CREATE TABLE events(
            id INTEGER PRIMARY KEY, device_id TEXT, event_type TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}', ts REAL NOT NULL
        );
        CREATE INDEX events_device_ts ON events(device_id, ts);
        CREATE INDEX history_ts ON history(ts);
        CREATE INDEX events_ts ON events(ts);
        """,
        # v3: new history rows are staged in a table with no index but its rowid and moved
        # into `history` every few minutes. A commit then appends to a few pages instead of
        # touching one page of the per-device index for every device that changed, each
        # written twice (WAL, then checkpoint): the SD card's wear in a live home.
        """
        CREATE TABLE history_recent(
            id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, attribute TEXT NOT NULL,
            value TEXT, ts REAL NOT NULL
        );
        """,
    ),
)

_HISTORY = BulkInsert("history_recent", ("device_id", "attribute", "value", "ts"))
_MERGE: list[tuple[str, list[Params]]] = [
    ("INSERT INTO history(device_id, attribute, value, ts) "
     "SELECT device_id, attribute, value, ts FROM history_recent ORDER BY id", [()]),
    ("DELETE FROM history_recent", [()]),
]
# Every history row, staged or merged, in the order recorded (`part` 0: merged, older).
HISTORY_ROWS = (
    "SELECT 0 AS part, id, device_id, attribute, value, ts FROM history "
    "UNION ALL SELECT 1 AS part, id, device_id, attribute, value, ts FROM history_recent"
)
# An attribute's last row before a time, staged or merged (the index, walked back from it).
_BEFORE = (
    "SELECT value, ts FROM (SELECT * FROM (SELECT 0 AS part, id, value, ts FROM history "
    "WHERE device_id = ? AND attribute = ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT 1) "
    "UNION ALL SELECT * FROM (SELECT 1 AS part, id, value, ts FROM history_recent "
    "WHERE device_id = ? AND attribute = ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT 1)) "
    "ORDER BY ts DESC, part DESC LIMIT 1"
)
_STATES = BulkInsert(
    "states", ("device_id", "attribute", "value", "last_changed", "last_updated"),
    tail="ON CONFLICT(device_id, attribute) DO UPDATE SET value = excluded.value, "
         "last_changed = excluded.last_changed, last_updated = excluded.last_updated")


def _json(value: object) -> str:
    """JSON of a recorded value; switches' booleans (most changes) without the encoder."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return dumps(value)


def _event_mark(row: sqlite3.Row) -> dict[str, Any]:
    out = {"event_type": row["event_type"], "ts": row["ts"], "n": row["n"]}
    if row["n"] == 1:
        out["data"] = json.loads(row["data"])
    return out


@dataclass(slots=True)
class AttributeState:
    """One attribute's current value."""

    value: Any
    last_changed: float
    last_updated: float

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "last_changed": self.last_changed,
                "last_updated": self.last_updated}


class StateStore:
    """Current state of every device, in memory; changes go to the bus and to history."""

    def __init__(
        self, db: Database, bus: EventBus, clock: Clock, snapshot_interval: float = 300.0
    ) -> None:
        self._db = db
        self.snapshot_interval = snapshot_interval
        self._last_snapshot = clock.monotonic()
        self._closing = False
        self._bus = bus
        self._clock = clock
        self._states: dict[str, dict[str, AttributeState]] = {}
        self._available: dict[str, bool] = {}
        self._history: list[tuple[str, str, str, float]] = []
        self._dirty: dict[tuple[str, str], AttributeState] = {}
        self._unhook = db.add_flush_hook(self._flush_rows)

    async def load(self) -> None:
        """Current values: the last snapshot, then every change recorded after it."""
        newest = 0.0
        for row in await self._db.fetchall("SELECT * FROM states"):
            self._states.setdefault(row["device_id"], {})[row["attribute"]] = AttributeState(
                json.loads(row["value"]), row["last_changed"], row["last_updated"]
            )
            newest = max(newest, row["last_updated"])
        async for row in self._db.iterate(  # staged rows too: a power cut may have left some
            f"SELECT device_id, attribute, value, ts FROM ({HISTORY_ROWS}) WHERE ts > ? "
            "ORDER BY part, id", (newest,),
        ):
            st = AttributeState(json.loads(row["value"]), row["ts"], row["ts"])
            self._states.setdefault(row["device_id"], {})[row["attribute"]] = st
            self._dirty[(row["device_id"], row["attribute"])] = st

    def close(self) -> None:
        self._unhook()

    async def save(self) -> None:
        """Write the snapshot of current values now (the hub calls this at stop)."""
        self._closing = True
        await self._db.flush()

    async def merge_history(self) -> None:
        """Move staged history rows into `history` now (before an erasure or a purge that
        reads only `history`); otherwise this happens with every snapshot."""
        await self._db.flush()
        await self._db.write_script([(sql, ()) for sql, _ in _MERGE])

    def set(self, device_id: str, attributes: dict[str, Any], ts: float | None = None) -> int:
        """Record new values for a device; return how many actually changed."""
        now = self._clock.time() if ts is None else ts
        current = self._states.get(device_id)
        if current is None:
            current = self._states[device_id] = {}
        changed = 0
        for name, value in attributes.items():
            st = current.get(name)
            if st is not None and st.value == value:
                st.last_updated = now
                self._dirty[(device_id, name)] = st
                continue
            old = st.value if st is not None else None
            st = AttributeState(value, now, now)
            current[name] = st
            self._dirty[(device_id, name)] = st
            self._history.append((device_id, name, _json(value), now))
            changed += 1
            self._bus.publish(StateChanged(device_id, name, old, value, now))
        if changed and len(self._history) >= self._db.max_batch:
            self._db.nudge()
        return changed

    def get(self, device_id: str) -> dict[str, AttributeState]:
        return dict(self._states.get(device_id, {}))

    def value(self, device_id: str, attribute: str, default: Any = None) -> Any:
        st = self._states.get(device_id, {}).get(attribute)
        return default if st is None else st.value

    def set_available(self, device_id: str, available: bool) -> None:
        if self._available.get(device_id) == available:
            return
        self._available[device_id] = available
        self._bus.publish(AvailabilityChanged(device_id, available, self._clock.time()))

    def available(self, device_id: str) -> bool | None:
        return self._available.get(device_id)

    def forget(self, device_id: str) -> None:
        """Drop a device's current state from memory and storage (its history stays)."""
        self._states.pop(device_id, None)
        self._available.pop(device_id, None)
        self._dirty = {k: v for k, v in self._dirty.items() if k[0] != device_id}
        self._db.enqueue("DELETE FROM states WHERE device_id = ?", (device_id,))

    def record_event(self, device_id: str | None, event_type: str, data: dict[str, Any],
                     ts: float) -> None:
        """Keep a device event (a button press) with the history: retention, export and
        erasure treat the `events` table like history rows."""
        self._db.enqueue(
            "INSERT INTO events(device_id, event_type, data, ts) VALUES(?, ?, ?, ?)",
            (device_id, event_type, dumps(data), ts),
        )

    async def history(
        self, device_id: str, since: float | None = None, until: float | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        lo = since if since is not None else 0.0
        hi = until if until is not None else 1e18
        rows = await self._db.fetchall(  # (SQLite pushes the WHERE into both tables)
            f"SELECT attribute, value, ts FROM ({HISTORY_ROWS}) WHERE device_id = ? "
            "AND ts >= ? AND ts <= ? ORDER BY ts, part, id LIMIT ?",
            (device_id, lo, hi, limit),
        )
        return [{"attribute": r["attribute"], "value": json.loads(r["value"]), "ts": r["ts"]}
                for r in rows]

    async def events(
        self, device_id: str, since: float | None = None, until: float | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """A device's recorded events between `since` and `until`, oldest first."""
        rows = await self._db.fetchall(
            "SELECT event_type, data, ts FROM events WHERE device_id = ? AND ts >= ? "
            "AND ts <= ? ORDER BY ts, id LIMIT ?",
            (device_id, since or 0.0, until if until is not None else 1e18, limit))
        return [{"event_type": r["event_type"], "data": json.loads(r["data"]), "ts": r["ts"]}
                for r in rows]

    async def history_summary(
        self, device_id: str, since: float, until: float, points: int,
    ) -> dict[str, Any]:
        """History downsampled in SQL, so a week of a busy sensor stays small on the wire:
        numbers as min/max/avg per bucket (`points` buckets over the range), everything else
        (on/off, text) as its transitions only, the newest `points` * 4 (`changes_from`: the
        oldest one kept, when older ones were left out); events counted per type in buckets
        four times as wide (marks a few pixels apart: `n`, with the first one's time, and
        its data when it is alone), capped likewise. `before`: each attribute's last value
        recorded before `since`, the one that held when the range starts."""
        bucket = max((until - since) / points, 1e-3)
        where = f"FROM ({HISTORY_ROWS}) WHERE device_id = ? AND ts >= ? AND ts <= ?"
        args = (device_id, since, until)
        numbers = await self._db.fetchall(
            "SELECT attribute, CAST((ts - ?) / ? AS INTEGER) AS b, MIN(ts) AS ts, "
            "MIN(CAST(value AS REAL)) AS lo, MAX(CAST(value AS REAL)) AS hi, "
            f"AVG(CAST(value AS REAL)) AS avg, COUNT(*) AS n {where} "
            "AND json_type(value) IN ('integer', 'real') GROUP BY attribute, b "
            "ORDER BY attribute, b", (since, bucket, *args))
        changes = await self._db.fetchall(
            "SELECT attribute, value, ts FROM (SELECT attribute, value, ts, "
            "LAG(value) OVER (PARTITION BY attribute ORDER BY ts, part, id) AS prev "
            f"{where} AND json_type(value) NOT IN ('integer', 'real')) "
            "WHERE prev IS NULL OR prev != value ORDER BY ts DESC LIMIT ?",
            (*args, points * 4 + 1))
        changes.reverse()  # capped from the old end: the newest changes matter most
        capped: dict[str, float] = {}
        if len(changes) > points * 4:
            changes = changes[1:]
            capped["changes_from"] = changes[0]["ts"]
        events = await self._db.fetchall(  # (a bare column beside MIN(): the first row's)
            "SELECT event_type, MIN(ts) AS ts, data, COUNT(*) AS n FROM events "
            "WHERE device_id = ? AND ts >= ? AND ts <= ? "
            "GROUP BY event_type, CAST((ts - ?) / ? AS INTEGER) ORDER BY ts DESC LIMIT ?",
            (*args, since, bucket * 4, points * 4))
        events.reverse()
        attributes = {*self._states.get(device_id, {}), *(r["attribute"] for r in numbers),
                      *(r["attribute"] for r in changes)}
        before = []
        for attribute in sorted(attributes):
            row = await self._db.fetchone(_BEFORE, (device_id, attribute, since) * 2)
            if row is not None:
                before.append({"attribute": attribute, "value": json.loads(row["value"]),
                               "ts": row["ts"]})
        return {
            "bucket": bucket,
            "before": before,
            "series": [{"attribute": r["attribute"], "ts": r["ts"], "min": r["lo"],
                        "max": r["hi"], "avg": round(r["avg"], 4), "n": r["n"]}
                       for r in numbers],
            "changes": [{"attribute": r["attribute"], "value": json.loads(r["value"]),
                         "ts": r["ts"]} for r in changes],
            **capped,
            "event_bucket": bucket * 4,
            "events": [_event_mark(r) for r in events],
        }

    def _flush_rows(self) -> list[tuple[str, list[Params]]]:
        history, self._history = self._history, []
        self._db.stats.history_rows += len(history)
        now = self._clock.monotonic()
        if not self._closing and now - self._last_snapshot < self.snapshot_interval:
            return _HISTORY.ops(history)
        self._last_snapshot = now
        dirty, self._dirty = self._dirty, {}
        states = [
            (dev, attr, _json(st.value), st.last_changed, st.last_updated)
            for (dev, attr), st in dirty.items()
        ]
        return _HISTORY.ops(history) + _STATES.ops(states) + _MERGE
