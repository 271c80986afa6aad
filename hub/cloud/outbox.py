"""The store-and-forward outbox: sealed messages wait here until the broker's PUBACK.

Messages are sealed and inserted by a storage flush hook, so they commit in the same SQLite
transaction as the history, event and device rows of the change they describe: after a crash
either both exist or neither does. The sequence counter commits in that same transaction, so a
sequence number is never reused. Rows leave the table only after PUBACK (deleted in a later
batch; a crash before that delete only re-sends, and receivers drop duplicates by seq).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hub.clock import Clock
from hub.cloud.crypto import seal
from hub.storage import Database, Schema

_LOG = logging.getLogger(__name__)

SCHEMA = Schema(
    "cloud",
    (
        """
        CREATE TABLE cloud_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE cloud_outbox(
            seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
            retain INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL
        );
        CREATE TABLE cloud_retained(topic TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE cloud_nonces(
            client TEXT NOT NULL, nonce TEXT NOT NULL, ts REAL NOT NULL,
            PRIMARY KEY(client, nonce)
        ) WITHOUT ROWID;
        CREATE INDEX cloud_nonces_ts ON cloud_nonces(ts);
        """,
    ),
)

Policy = Literal["drop_oldest", "drop_newest"]

_INSERT = "INSERT INTO cloud_outbox(seq, topic, payload, retain, created) VALUES(?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM cloud_outbox WHERE seq = ?"
_SEQ = ("INSERT INTO cloud_meta(key, value) VALUES('seq', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
_RETAINED_ADD = "INSERT OR IGNORE INTO cloud_retained(topic) VALUES(?)"
_RETAINED_DEL = "DELETE FROM cloud_retained WHERE topic = ?"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True)
class _Staged:
    topic: str
    key: bytes | None  # None: a zero-length payload (clears a retained topic)
    body: dict[str, Any] | None
    retain: bool


class Outbox:
    """Sealed messages for the broker, bounded by `limit` with a counted drop policy."""

    def __init__(self, db: Database, clock: Clock, limit: int, policy: Policy) -> None:
        self._db = db
        self._clock = clock
        self.limit = limit
        self.policy = policy
        self.hub_id = ""
        self.next_seq = 1
        self.dropped = 0
        self.delivered = 0
        self.last_delivery: float | None = None
        self._seqs: dict[int, None] = {}  # waiting for PUBACK, in seq order
        self._staged: list[_Staged] = []
        self._acked: list[int] = []
        self._before_seal: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._commit_target = 0
        self._unhook: Callable[[], None] | None = None

    async def load(self) -> None:
        """Read the hub id, the sequence counter and what still waits for the broker."""
        row = await self._db.fetchone("SELECT value FROM cloud_meta WHERE key = 'hub_id'")
        if row is None:
            self.hub_id = uuid.uuid4().hex
            await self._db.write(
                "INSERT OR IGNORE INTO cloud_meta(key, value) VALUES('hub_id', ?)", (self.hub_id,)
            )
        else:
            self.hub_id = row["value"]
        row = await self._db.fetchone("SELECT value FROM cloud_meta WHERE key = 'seq'")
        last = int(row["value"]) if row else 0
        row = await self._db.fetchone("SELECT MAX(seq) AS m FROM cloud_outbox")
        last = max(last, int(row["m"] or 0) if row else 0)
        self.next_seq = last + 1
        self._seqs = {r["seq"]: None for r in await self._db.fetchall(
            "SELECT seq FROM cloud_outbox ORDER BY seq")}
        self._unhook = self._db.add_flush_hook(self._flush)

    def close(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None

    @property
    def depth(self) -> int:
        return len(self._seqs)

    def before_seal(self, callback: Callable[[], None]) -> Callable[[], None]:
        """`callback()` runs just before staged messages are sealed (to coalesce snapshots)."""
        self._before_seal.append(callback)
        return lambda: self._before_seal.remove(callback)

    def add(self, topic: str, key: bytes, body: dict[str, Any], *, retain: bool = False) -> None:
        """Queue a message; it is sealed and committed with the current storage batch."""
        self._staged.append(_Staged(topic, key, body, retain))

    def clear_retained(self, topic: str) -> None:
        """Queue an empty retained message, which deletes `topic`'s retained copy."""
        self._staged.append(_Staged(topic, None, None, True))

    def ack(self, seq: int) -> None:
        """The broker has the message: forget it (deleted in the next batch)."""
        if self._seqs.pop(seq, 0) is None:
            self._acked.append(seq)
            self.delivered += 1
            self.last_delivery = self._clock.time()

    async def rows_after(self, seq: int, limit: int = 256) -> list[OutboxRow]:
        """Committed messages after `seq` still waiting for PUBACK, oldest first."""
        rows = await self._db.fetchall(
            "SELECT seq, topic, payload, retain FROM cloud_outbox WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (seq, limit))
        return [OutboxRow(r["seq"], r["topic"], bytes(r["payload"]), bool(r["retain"]))
                for r in rows if r["seq"] in self._seqs]

    async def wait_committed(self) -> None:
        """Wait until new messages were sealed and their batch committed.

        The core writer has no after-commit signal and forcing a commit would cost SD-card
        writes, so this watches the writer's commit counter (a few ms after the hook ran).
        """
        await self._wake.wait()
        self._wake.clear()
        target = self._commit_target
        # Bounded: a batch that failed to commit is not waited for forever (the caller
        # re-reads the table either way).
        deadline = self._clock.monotonic() + max(2.0, 3 * self._db.commit_interval)
        while self._db.stats.commits < target and self._clock.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.002)

    def poke(self) -> None:
        """Make the publisher look at the table again (after a reconnect)."""
        self._wake.set()

    async def drop(self) -> int:
        """Opt-out: delete every waiting message now. Returns how many there were."""
        n = len(self._seqs) + len(self._staged)
        self._staged.clear()
        self._acked.clear()
        self._seqs.clear()
        await self._db.write("DELETE FROM cloud_outbox")
        return n

    async def retained_topics(self) -> list[str]:
        await self._db.flush()  # commit what the hooks hold first
        return [r["topic"] for r in await self._db.fetchall("SELECT topic FROM cloud_retained")]

    async def forget_retained(self, topics: list[str]) -> None:
        await self._db.write_script([(_RETAINED_DEL, (t,)) for t in topics])

    # -- the flush hook -----------------------------------------------------------------------

    def _flush(self) -> list[tuple[str, list[Any]]]:
        for callback in list(self._before_seal):
            try:
                callback()
            except Exception:  # a bug in a snapshot must not lose the batch
                _LOG.exception("cloud snapshot failed")
        staged, self._staged = self._staged, []
        acked, self._acked = self._acked, []
        if acked:
            # Same batch as new rows: enqueued from the hook so the writer's flush()/
            # _flushed bookkeeping sees it (the hook runs before the batch is taken).
            self._db.enqueue_many(_DELETE, [(s,) for s in acked])
        if not staged:
            return []
        if self.policy == "drop_newest":
            room = max(0, self.limit - len(self._seqs))
            if len(staged) > room:
                self.dropped += len(staged) - room
                _LOG.warning("cloud outbox full (%d): dropped %d new messages",
                             self.limit, len(staged) - room)
                staged = staged[:room]
            if not staged:
                return []
        now = self._clock.time()
        rows: list[tuple[int, str, bytes, int, float]] = []
        retained_add: list[tuple[str]] = []
        retained_del: list[tuple[str]] = []
        for item in staged:
            seq = self.next_seq
            self.next_seq += 1
            if item.key is None or item.body is None:
                payload = b""
                retained_del.append((item.topic,))
            else:
                payload = seal(item.key, self.hub_id, item.topic, seq, item.body)
                if item.retain:
                    retained_add.append((item.topic,))
            rows.append((seq, item.topic, payload, int(item.retain), now))
            self._seqs[seq] = None
        self._db.enqueue_many(_INSERT, rows)
        self._db.enqueue(_SEQ, (str(self.next_seq - 1),))
        if retained_add:
            self._db.enqueue_many(_RETAINED_ADD, retained_add)
        if retained_del:
            self._db.enqueue_many(_RETAINED_DEL, retained_del)
        over = len(self._seqs) - self.limit
        if over > 0:  # drop_oldest
            last = 0
            for _ in range(over):
                last = next(iter(self._seqs))
                del self._seqs[last]
            self.dropped += over
            self._db.enqueue("DELETE FROM cloud_outbox WHERE seq <= ?", (last,))
            _LOG.warning("cloud outbox full (%d): dropped the %d oldest messages",
                         self.limit, over)
        self._commit_target = self._db.stats.commits + 1
        self._wake.set()
        return []
