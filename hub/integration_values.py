"""Small durable values an integration keeps between starts (one SQLite table for all).

For bookkeeping an integration must not lose at a restart and that is not a secret (secrets
go to the vault): BTHome keeps each sensor's last accepted encryption counter here, so a
replayed advertisement is refused after a restart too. Writes go through the batching
writer: durable within `storage.commit_interval`, no SD-card commit per value.
"""

from __future__ import annotations

import json
from typing import Any

from hub.storage import Database, Schema

SCHEMA = Schema(
    "integration_values",
    (
        """
        CREATE TABLE integration_values(
            integration TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY(integration, key)
        ) WITHOUT ROWID;
        """,
    ),
)

_UPSERT = ("INSERT INTO integration_values(integration, key, value, updated_at) "
           "VALUES(?, ?, ?, ?) ON CONFLICT(integration, key) DO UPDATE SET "
           "value = excluded.value, updated_at = excluded.updated_at")


class IntegrationValues:
    """One integration's values: JSON-serialisable, keyed by a string."""

    def __init__(self, db: Database, integration: str) -> None:
        self._db = db
        self._integration = integration

    async def all(self) -> dict[str, Any]:
        rows = await self._db.fetchall(
            "SELECT key, value FROM integration_values WHERE integration = ?",
            (self._integration,))
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def set(self, key: str, value: Any, now: float) -> None:
        self._db.enqueue(_UPSERT, (self._integration, key, json.dumps(value), now))

    def delete(self, key: str) -> None:
        self._db.enqueue("DELETE FROM integration_values WHERE integration = ? AND key = ?",
                         (self._integration, key))
