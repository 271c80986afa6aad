"""Tables of the automation engine: API-made definitions, enabled flags, traces, and the
durable timers (delays, waits, `for:`) and time-trigger bookkeeping that survive restarts."""

from __future__ import annotations

from hub.storage import BulkInsert, Schema

SCHEMA = Schema(
    "automation",
    (
        """
        CREATE TABLE automations(
            id TEXT PRIMARY KEY, definition TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL
        );
        CREATE TABLE automation_enabled(id TEXT PRIMARY KEY, enabled INTEGER NOT NULL);
        CREATE TABLE automation_traces(
            run_id TEXT PRIMARY KEY, automation_id TEXT NOT NULL, started REAL NOT NULL,
            trace TEXT NOT NULL
        );
        CREATE INDEX automation_traces_auto ON automation_traces(automation_id, started);
        CREATE TABLE automation_timers(
            id TEXT PRIMARY KEY, automation_id TEXT NOT NULL, kind TEXT NOT NULL,
            deadline REAL, path TEXT NOT NULL, trigger TEXT NOT NULL, digest TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE automation_fired(
            automation_id TEXT NOT NULL, trigger INTEGER NOT NULL, ts REAL NOT NULL,
            PRIMARY KEY(automation_id, trigger)
        ) WITHOUT ROWID;
        CREATE TABLE automation_meta(key TEXT PRIMARY KEY, value REAL NOT NULL);
        """,
    ),
)

UPSERT_TIMER = (
    "INSERT OR REPLACE INTO automation_timers(id, automation_id, kind, deadline, path, trigger,"
    " digest, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"
)
DELETE_TIMER = "DELETE FROM automation_timers WHERE id = ?"
UPSERT_FIRED = "INSERT OR REPLACE INTO automation_fired(automation_id, trigger, ts) VALUES(?,?,?)"
HEARTBEAT = "INSERT OR REPLACE INTO automation_meta(key, value) VALUES('heartbeat', ?)"
INSERT_TRACES = BulkInsert("automation_traces", ("run_id", "automation_id", "started", "trace"),
                           verb="INSERT OR REPLACE")
# all but the newest `?` traces of each automation in the JSON array of ids
PRUNE_TRACES = (
    "DELETE FROM automation_traces WHERE run_id IN (SELECT run_id FROM ("
    "SELECT run_id, row_number() OVER (PARTITION BY automation_id ORDER BY started DESC) AS n"
    " FROM automation_traces WHERE automation_id IN (SELECT value FROM json_each(?))"
    ") WHERE n > ?)"
)
