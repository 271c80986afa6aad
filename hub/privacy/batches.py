"""Deleting many rows without holding up the hub: one small batch per transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from hub.storage import Database

Extra = Callable[[list[sqlite3.Row]], list[tuple[str, Any]]]


async def delete_in_batches(db: Database, table: str, where: str, params: tuple[Any, ...],
                            batch: int, *, columns: str = "id",
                            extra: Extra | None = None) -> int:
    """Delete the rows of `table` matching `where`, oldest id first, `batch` at a time.

    Ids are read on the read connection (never waits for the writer); each batch is one
    short transaction through the writer, plus `extra(rows)` statements committed with it;
    the loop yields between batches so the API and the bus keep running."""
    total = 0
    while True:
        rows = await db.fetchall(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY id LIMIT ?",
            (*params, batch))
        if not rows:
            return total
        ids = [r["id"] for r in rows]
        statements: list[tuple[str, Any]] = [
            (f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids)]
        if extra is not None:
            statements += extra(rows)
        await db.write_script(statements)
        total += len(ids)
        await asyncio.sleep(0)
        if len(ids) < batch:
            return total
