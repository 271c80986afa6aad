"""Forward-only, versioned migrations, kept per component.

Each area of the hub owns a `Schema(component, steps)`; step i moves that component from
version i to i+1. Versions live in `schema_versions`, so areas evolve independently and a
database from any earlier release upgrades step by step at start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub.errors import StorageError

Step = str | Callable[[sqlite3.Connection], None]


@dataclass(frozen=True, slots=True)
class Schema:
    """The migrations of one component, oldest first."""

    component: str
    steps: tuple[Step, ...]

    @property
    def version(self) -> int:
        return len(self.steps)


def migrate(conn: sqlite3.Connection, schemas: Sequence[Schema]) -> dict[str, tuple[int, int]]:
    """Bring every component up to date; return {component: (from, to)}. Runs in a thread."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions("
        "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    done: dict[str, tuple[int, int]] = {}
    for schema in schemas:
        row = conn.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
        ).fetchone()
        current = row[0] if row else 0
        if current > schema.version:
            raise StorageError(
                f"database schema '{schema.component}' is at version {current}, newer than this "
                f"hub knows ({schema.version}); refusing to start rather than damage it"
            )
        for index in range(current, schema.version):
            step = schema.steps[index]
            try:
                conn.execute("BEGIN IMMEDIATE")
                if isinstance(step, str):
                    for statement in _split(step):
                        conn.execute(statement)
                else:
                    step(conn)
                conn.execute(
                    "INSERT INTO schema_versions(component, version) VALUES(?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (schema.component, index + 1),
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise StorageError(
                    f"migration {schema.component} {index} -> {index + 1} failed: {exc}"
                ) from exc
        done[schema.component] = (current, schema.version)
    return done


def _split(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit on its own)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
