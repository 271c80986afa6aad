"""The hub's SQLite database: WAL, a read connection and one batching writer.

SD cards wear out, so writes are gathered and committed together every `commit_interval`
(or earlier when `max_batch` rows wait, or when a caller needs its write durable now).
Reads use their own connection and, thanks to WAL, never wait for the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from hub.clock import Clock
from hub.errors import StorageError, StorageFull
from hub.storage.bulk import BulkRows
from hub.storage.full import MIN_FREE_BYTES, WriteBacklog, free_bytes, is_disk_full
from hub.storage.migrations import Schema, migrate

_LOG = logging.getLogger(__name__)

Params = Sequence[object] | Mapping[str, object]
FlushHook = Callable[[], list[tuple[str, list[Params]]]]


@dataclass(slots=True)
class StorageStats:
    """What the writer did; bytes are what SQLite wrote to disk (WAL and checkpoints)."""

    commits: int = 0
    statements: int = 0
    history_rows: int = 0
    bytes_written: int = 0
    last_commit_seconds: float = 0.0
    dropped: int = 0  # queued writes (or rows of one) that failed alone and were dropped

    @property
    def bytes_per_state_change(self) -> float:
        return self.bytes_written / self.history_rows if self.history_rows else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "commits": self.commits,
            "statements": self.statements,
            "history_rows": self.history_rows,
            "bytes_written": self.bytes_written,
            "bytes_per_state_change": round(self.bytes_per_state_change, 1),
            "last_commit_seconds": round(self.last_commit_seconds, 6),
            "dropped": self.dropped,
        }


class DatabaseDamaged(StorageError):
    """SQLite found the database file damaged: the hub refuses to start on it rather than
    serve silently truncated history and exports."""

    code = "database_damaged"

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)"
                                            if len(problems) > 3 else "")
        super().__init__(
            f"the database {path} is damaged ({shown}). The hub will not start on it: stop "
            f"it, then restore a backup (uone-hub backup restore FILE -c CONFIG --force) or "
            f"recover what is readable into a new file with the sqlite3 command "
            f"(docs/privacy.md, \"A damaged database\", has the steps).")


@dataclass(frozen=True, slots=True)
class IntegrityCheck:
    """What the start-up check found: complete or stopped at its time budget."""

    complete: bool
    seconds: float


def quick_check(path: Path, budget: float) -> IntegrityCheck:
    """PRAGMA quick_check within `budget` seconds (blocking: run it in a thread).

    quick_check reads every page of every table and index (structure, not index contents)
    and is O(file size); SQLite's progress handler stops it at the budget, so a very large
    file on a slow card delays the start by at most that. DatabaseDamaged on any problem."""
    started = time.monotonic()
    deadline = started + budget
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(20)")]
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_INTERRUPT":
                return IntegrityCheck(False, time.monotonic() - started)
            if not _is_damage(exc):
                raise
            raise DatabaseDamaged(path, [str(exc)]) from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise DatabaseDamaged(path, rows)
    return IntegrityCheck(True, time.monotonic() - started)


@dataclass(slots=True)
class _Op:
    sql: str
    params: Params | Sequence[Params] | None
    many: bool
    future: asyncio.Future[int | None] | None
    script: list[tuple[str, Params]] | None = None
    history: int = 0


class Database:
    """One SQLite file. Use as `async with Database(path, schemas) as db:`."""

    def __init__(
        self,
        path: Path,
        schemas: Sequence[Schema],
        *,
        commit_interval: float = 1.0,
        max_batch: int = 10_000,
        synchronous: str = "normal",
        writer_cache_kib: int = 8192,
        check_seconds: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        self.path = path
        self.schemas = list(schemas)
        self.commit_interval = commit_interval
        self.max_batch = max_batch
        self.synchronous = synchronous.upper()
        self.writer_cache_kib = writer_cache_kib
        self.check_seconds = check_seconds
        self.check: IntegrityCheck | None = None
        self.stats = StorageStats()
        self.migrated: dict[str, tuple[int, int]] = {}
        self._write: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None
        self._pending: list[_Op] = []
        self._pending_rows = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hooks: list[FlushHook] = []
        self._writer_tid: int | None = None
        self._wchar_start = 0
        self._closing = False
        self._flushed = asyncio.Event()
        self._flushed.set()
        self._poison_seen: set[tuple[str, str]] = set()
        self.full: str | None = None  # why the last write failed for want of space
        # writes that wait in memory while the disk is full, retried on the clock
        self.backlog = WriteBacklog(clock=clock)

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True, mode=0o700)
        if self.check_seconds > 0 and await asyncio.to_thread(self.path.exists):
            self.check = await asyncio.to_thread(quick_check, self.path, self.check_seconds)
            if self.check.complete:
                _LOG.info("database checked in %.2f s: ok", self.check.seconds)
            else:
                _LOG.warning("database check stopped after its %.0f s budget "
                             "(storage.integrity_check_seconds); the part checked is ok",
                             self.check_seconds)
        try:
            self.migrated = await asyncio.to_thread(self._migrate_sync)
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            raise DatabaseDamaged(self.path, [str(exc)]) from None
        self._write = await aiosqlite.connect(self.path, isolation_level=None)
        await self._configure(self._write)
        # A batch's index pages must stay in cache until COMMIT: when they spill mid-
        # transaction they are written to the WAL again and again (measured: 20x the bytes).
        await self._write.execute(f"PRAGMA cache_size = -{self.writer_cache_kib}")
        # The writer's statement journals (a multi-row INSERT ... SELECT opens one) in RAM,
        # not in temp files on the SD card; they hold a batch's changed pages at most.
        # (Readers keep file-backed temp storage: a large export's sort stays off the heap.)
        await self._write.execute("PRAGMA temp_store = MEMORY")
        self._read = await aiosqlite.connect(self.path, isolation_level=None)
        await self._configure(self._read)
        await self._read.execute("PRAGMA query_only = ON")
        await self._write.create_function("uone_tid", 0, threading.get_native_id)
        async with self._write.execute("SELECT uone_tid()") as cur:
            row = await cur.fetchone()
        self._writer_tid = int(row[0]) if row else None
        self._wchar_start = self._wchar()
        self._task = asyncio.create_task(self._run(), name="storage-writer")

    async def close(self) -> None:
        """Flush everything pending, then close both connections."""
        await self.backlog.close()
        if self._task is not None:
            self._closing = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for conn in (self._read, self._write):
            if conn is not None:
                await conn.close()
        self._read = self._write = None

    # -- writing ---------------------------------------------------------------------------

    def enqueue(self, sql: str, params: Params = (), *, history: int = 0) -> None:
        """Queue a write for the next batch; fire-and-forget (committed within the interval)."""
        self._add(_Op(sql, params, False, None, history=history))

    def enqueue_many(self, sql: str, rows: Sequence[Params], *, history: int = 0) -> None:
        self._add(_Op(sql, rows, True, None, history=history))

    async def write(self, sql: str, params: Params = ()) -> int | None:
        """Write now and wait until committed; return lastrowid. Errors reach the caller."""
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._add(_Op(sql, params, False, fut), urgent=True)
        return await fut

    async def write_script(self, statements: list[tuple[str, Params]]) -> None:
        """Several statements that commit together or not at all (one savepoint)."""
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._add(_Op("", None, False, fut, script=statements), urgent=True)
        await fut

    async def flush(self) -> None:
        """Commit everything queued so far (flush hooks included) and wait for it."""
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._add(_Op("", None, False, fut, script=[]), urgent=True)
        await fut

    def refresh_bytes(self) -> int:
        """Update and return `stats.bytes_written` (checkpoints run outside commits too)."""
        self.stats.bytes_written = self._wchar() - self._wchar_start
        return self.stats.bytes_written

    async def full_reason(self) -> str | None:
        """Why writes cannot succeed now, or None: the last write failed for want of space
        and it has not visibly come back, or the disk's free space is nearly gone."""
        free = await asyncio.to_thread(free_bytes, self.path.parent)
        if free is not None and free < MIN_FREE_BYTES:
            return f"disk full: {free // 1024} KiB free where the database is"
        if self.full is not None and free is not None and free < 4 * MIN_FREE_BYTES:
            return f"disk full: {self.full}"
        return None

    def nudge(self) -> None:
        """Commit the pending batch now rather than at the end of the interval."""
        self._wake.set()

    def add_flush_hook(self, hook: FlushHook) -> Callable[[], None]:
        """`hook()` runs before every commit and returns (sql, rows) to write in that batch."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    # -- reading ---------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        conn = self._reader()
        async with conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        conn = self._reader()
        async with conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def iterate(self, sql: str, params: Params = (), batch: int = 1000
                      ) -> AsyncIterator[sqlite3.Row]:
        """Stream rows in batches, for exports and purges that must not load everything."""
        conn = self._reader()
        async with conn.execute(sql, params) as cur:
            while True:
                rows = await cur.fetchmany(batch)
                if not rows:
                    return
                for row in rows:
                    yield row

    async def checkpoint(self, vacuum: bool = False) -> None:
        """Flush, fold the WAL into the main file and truncate it (used after erasure)."""
        await self.flush()
        assert self._write is not None
        # each statement's cursor is closed: an open one makes VACUUM fail ("statements in
        # progress"); the writer may start a batch meanwhile, so VACUUM retries briefly
        await self._exec_closed("PRAGMA wal_checkpoint(TRUNCATE)")
        if vacuum:
            for attempt in range(50):
                try:
                    await self._exec_closed("VACUUM")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    await self.flush()
                    await asyncio.sleep(0.01)
            await self._exec_closed("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _exec_closed(self, sql: str) -> None:
        assert self._write is not None
        async with self._write.execute(sql) as cur:
            await cur.fetchall()

    # -- internals -------------------------------------------------------------------------

    def _reader(self) -> aiosqlite.Connection:
        if self._read is None:
            raise StorageError("database is not open")
        return self._read

    def _add(self, op: _Op, urgent: bool = False) -> None:
        if self._closing and self._task is None:
            raise StorageError("database is closed")
        self._pending.append(op)
        self._flushed.clear()
        self._pending_rows += len(op.params) if op.many and op.params else 1
        if urgent or self._pending_rows >= self.max_batch:
            self._wake.set()

    def _migrate_sync(self) -> dict[str, tuple[int, int]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return migrate(conn, self.schemas)
        finally:
            conn.close()

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA secure_delete = ON")
        await conn.execute("PRAGMA busy_timeout = 5000")

    async def _run(self) -> None:
        while True:
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.commit_interval)
            self._wake.clear()
            try:
                await self._commit_batch()
            except Exception as exc:  # a bug must not kill the writer; the batch's waiters know
                if not is_disk_full(exc):
                    _LOG.exception("storage writer failed a batch")
                self._error(exc)  # (a full disk: logged once per outage, no traceback)
            if self._closing and not self._pending:
                return

    async def _commit_batch(self) -> None:
        for hook in list(self._hooks):
            try:
                ops = hook()
            except Exception:  # one component's bug must not cost the others their rows
                _LOG.exception("a storage flush hook failed")
                continue
            for sql, rows in ops:
                if rows:
                    self._pending.append(_Op(sql, rows, True, None))
        if not self._pending:
            self._flushed.set()
            return
        batch, self._pending, self._pending_rows = self._pending, [], 0
        conn = self._write
        assert conn is not None
        started = time.perf_counter()
        results: list[tuple[asyncio.Future[int | None], int | None, BaseException | None]] = []
        await conn.execute("BEGIN")
        try:
            for op in batch:
                if op.script is not None:
                    err = await self._run_script(conn, op.script)
                    if op.future is not None:
                        results.append((op.future, None, err))
                    continue
                try:
                    if op.many:
                        await self._run_many(conn, op)
                        lastrowid = None
                    else:
                        cur = await conn.execute(op.sql, op.params)
                        lastrowid = cur.lastrowid
                        await cur.close()
                    self.stats.statements += 1
                    self.stats.history_rows += op.history
                    if op.future is not None:
                        results.append((op.future, lastrowid, None))
                except Exception as exc:
                    # One statement failed (a bad value, a constraint); SQLite undid only that
                    # statement, the others in the batch stand. Unless SQLite ended the whole
                    # transaction (disk full, I/O error): then the batch fails as a whole.
                    self._check_transaction(conn, exc)
                    if op.future is not None:
                        results.append((op.future, None, exc))
                    else:
                        self._poisoned(op.sql, exc)
            await conn.execute("COMMIT")
            if self.full is not None:
                _LOG.info("storage writer: the disk has space again")
                self.full = None
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            # SQLite rolls a transaction back by itself on SQLITE_FULL; the COMMIT then
            # fails with "no transaction is active": report the full disk, the first cause
            cause = next((e for _f, _v, e in results if e is not None and is_disk_full(e)), exc)
            for op in batch:
                if op.future is not None and not op.future.done():
                    op.future.set_exception(self._error(cause, "commit failed: "))
            raise
        self.stats.commits += 1
        self.stats.last_commit_seconds = time.perf_counter() - started
        self.stats.bytes_written = self._wchar() - self._wchar_start
        for fut, value, err in results:
            if fut.done():
                continue
            if err is not None:
                fut.set_exception(self._error(err))
            else:
                fut.set_result(value)
        if not self._pending:
            self._flushed.set()

    async def _run_many(self, conn: aiosqlite.Connection, op: _Op) -> None:
        """executemany, but a row that fails is skipped (and logged), not the whole batch."""
        params = op.params
        if isinstance(params, BulkRows):
            if len(params):  # the whole array in one statement, the fast path
                try:
                    await conn.executemany(op.sql, params)
                    return
                except Exception as exc:
                    self._check_transaction(conn, exc)
            rows: Iterable[Params] = params.one_by_one()
        else:
            rows = params  # type: ignore[assignment]
        # SQLite runs each row as its own statement and the rows before a failure stand:
        # count what executemany consumed and resume after the row that failed.
        remaining = iter(rows)
        while True:
            seen = _Counting(remaining)
            try:
                await conn.executemany(op.sql, seen)
                return
            except Exception as exc:
                self._check_transaction(conn, exc)
                if not seen.count:  # nothing consumed: the statement itself is bad
                    raise
                self._poisoned(op.sql, exc)

    @staticmethod
    def _check_transaction(conn: aiosqlite.Connection, exc: BaseException) -> None:
        if not conn.in_transaction:
            raise StorageError(f"SQLite ended the transaction: {exc}") from exc

    def _poisoned(self, sql: str, exc: BaseException) -> None:
        """Log a dropped write once per statement and cause; never its values (secrets)."""
        key = (sql, type(exc).__name__)
        self.stats.dropped += 1
        if key in self._poison_seen:
            return
        if len(self._poison_seen) > 256:
            self._poison_seen.clear()
        self._poison_seen.add(key)
        cause = str(exc) if isinstance(exc, sqlite3.Error) else getattr(exc, "reason", "")
        _LOG.error("dropped a queued write that failed (%s: %s): %s",
                   type(exc).__name__, cause, _statement_name(sql))

    async def _run_script(
        self, conn: aiosqlite.Connection, statements: list[tuple[str, Params]]
    ) -> BaseException | None:
        if not statements:
            return None
        await conn.execute("SAVEPOINT uone_script")
        try:
            for sql, params in statements:
                await conn.execute(sql, params)
                self.stats.statements += 1
        except Exception as exc:
            self._check_transaction(conn, exc)
            await conn.execute("ROLLBACK TO uone_script")
            await conn.execute("RELEASE uone_script")
            return exc
        await conn.execute("RELEASE uone_script")
        return None

    def _error(self, exc: BaseException, prefix: str = "") -> StorageError:
        """The error a waiting caller gets: StorageFull (507) when the disk is full, which
        is also remembered for health and logged once per outage."""
        if not is_disk_full(exc):
            return StorageError(f"{prefix}{exc}")
        if self.full is None:
            _LOG.error("storage: the disk is full (%s); writes fail until space is freed", exc)
        self.full = str(exc)
        return StorageFull("the hub's disk is full: nothing was changed; free some space "
                           "(see /api/health)")

    def _wchar(self) -> int:
        """Bytes the writer thread passed to write(2): SQLite's own disk writes, nothing else."""
        if self._writer_tid is None:
            return 0
        try:
            text = Path(f"/proc/self/task/{self._writer_tid}/io").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
        return 0


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLITE_CORRUPT (and its extended codes) or SQLITE_NOTADB: the file, not our SQL."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


class _Counting(Iterator[Params]):
    """An iterator that counts the rows taken from it (executemany takes them one by one)."""

    def __init__(self, rows: Iterator[Params]) -> None:
        self._rows = rows
        self.count = 0

    def __next__(self) -> Params:
        row = next(self._rows)
        self.count += 1
        return row


def _statement_name(sql: str) -> str:
    """The verb and table of a statement, for a log line (its values stay out)."""
    words = sql.split()
    for i, word in enumerate(words):
        if word.upper() in ("INTO", "FROM", "UPDATE") and i + 1 < len(words):
            return f"{words[0].upper()} {words[i + 1].split('(')[0]}"
    return " ".join(words[:3])
