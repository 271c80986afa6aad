"""The credential vault: Wi-Fi networks, BTHome bind keys, device keys, named secrets.

Every entry is sealed with AES-256-GCM under a key derived from the hub key. The entry's name
(an SSID, a device id) is inside the ciphertext too; rows are found by an HMAC of (kind, name),
and the additional data is kind + that id, so a ciphertext is bound to its kind and name and
cannot be moved to another row. The hub key is a 0600 file in the state directory, or a
systemd credential (`LoadCredentialEncrypted=vault-key:...` puts it in $CREDENTIALS_DIRECTORY).

Key rotation (`uone-hub vault rotate`) never loses an entry, even when killed at any point:
1. the new key is written to `vault.key.pending` (fsynced);
2. every row is re-encrypted in one SQLite transaction, each row tagged with its key id;
3. `vault.key.pending` is renamed over `vault.key` (atomic).
At open, `recover_key()` finishes or undoes an interrupted rotation by looking at which key
the rows carry.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hub.clock import Clock
from hub.errors import HubError, NotFound, ValidationError
from hub.storage import Database, Schema

if TYPE_CHECKING:  # cryptography (its own OpenSSL: +8 MiB of RSS) loads at the first secret
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LOG = logging.getLogger(__name__)

Kind = Literal["wifi", "bthome", "device_key", "broker", "secret", "homekit"]
# "secret": named secrets the config refers to (hub/namedsecrets.py); "homekit": the
# HomeKit bridge's identity and its paired phones (hub/homekit/bridge.py)
KINDS: tuple[str, ...] = ("wifi", "bthome", "device_key", "broker", "secret", "homekit")
KEY_FILENAME = "vault.key"
PENDING_FILENAME = "vault.key.pending"
LOCK_FILENAME = "vault.lock"
CREDENTIAL_NAME = "vault-key"
_AAD_PREFIX = b"uone-vault/v1\0"

SCHEMA = Schema(
    "vault",
    (
        """
        CREATE TABLE vault_entries(
            id TEXT PRIMARY KEY,          -- HMAC(index key, kind \\0 name): no name in clear
            kind TEXT NOT NULL,
            key_id TEXT NOT NULL,         -- which hub key sealed this row (rotation recovery)
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_used REAL
        );
        CREATE INDEX vault_entries_kind ON vault_entries(kind);
        """,
    ),
)


class VaultError(HubError):
    """The vault cannot be opened or an entry cannot be read (wrong key, tampered row)."""

    code = "vault_error"


class VaultLocked(VaultError):
    """Another process (the running hub, or a rotation) holds the vault."""

    status = 409
    code = "vault_locked"


@dataclass(frozen=True, slots=True)
class HubKey:
    """The 32-byte hub key and the keys derived from it."""

    raw: bytes
    source: str  # "file" | "credential"

    @property
    def key_id(self) -> str:
        return _derive(self.raw, b"uone-vault key-id v1", 8).hex()

    def enc_key(self) -> bytes:
        return _derive(self.raw, b"uone-vault enc v1", 32)

    def index_key(self) -> bytes:
        return _derive(self.raw, b"uone-vault index v1", 32)


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """What may be shown about an entry: never the secret."""

    kind: str
    name: str
    created_at: float
    updated_at: float
    last_used: float | None
    public: dict[str, Any]


class Vault:
    """Encrypted entries in the hub database. Start with `open()`, stop with `close()`."""

    def __init__(self, db: Database, state_dir: Path, clock: Clock) -> None:
        self._db = db
        self._state_dir = state_dir
        self._clock = clock
        self._key: HubKey | None = None
        self._aead: AESGCM | None = None
        self._lock_fd: int | None = None

    async def open(self) -> None:
        """Take the vault lock, finish any interrupted rotation, load the hub key. The cipher
        is made at the first entry read or written: its first use initialises the OpenSSL
        that cryptography links in (0.9 MiB of RSS, bench.core), which a hub whose vault is
        not used never needs."""
        self._key = await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> HubKey:
        self._lock_fd = acquire_lock(self._state_dir, shared=True)
        try:
            key = load_or_create_key(self._state_dir)
            key = recover_key(self._db.path, self._state_dir, key)
            with contextlib.closing(sqlite3.connect(self._db.path)) as conn:
                foreign = _foreign_key_ids(conn, key.key_id)
            if foreign:
                raise VaultError(
                    f"vault entries were sealed with key(s) {', '.join(foreign)} but the hub "
                    f"key is {key.key_id}: the key file was replaced; restore the previous "
                    f"{KEY_FILENAME} (or the vault-key credential)"
                )
        except BaseException:
            self.close()
            raise
        return key

    def close(self) -> None:
        self._key = self._aead = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def key_id(self) -> str:
        return self._hub_key().key_id

    async def put(
        self, kind: str, name: str, secret: dict[str, Any], public: dict[str, Any] | None = None
    ) -> tuple[EntryInfo, bool]:
        """Store or replace an entry; returns (info, created). Durable when it returns."""
        _check_kind(kind)
        key = self._hub_key()
        entry_id = _entry_id(key, kind, name)
        existing = await self._db.fetchone(
            "SELECT created_at FROM vault_entries WHERE id = ?", (entry_id,)
        )
        now = self._clock.time()
        plaintext = _encode(name, secret, public or {})
        nonce = os.urandom(12)
        ct = self._cipher().encrypt(nonce, plaintext, _aad(kind, entry_id))
        created_at = existing["created_at"] if existing else now
        await self._db.write(
            "INSERT INTO vault_entries(id, kind, key_id, nonce, ciphertext, created_at, "
            "updated_at, last_used) VALUES(?, ?, ?, ?, ?, ?, ?, NULL) "
            "ON CONFLICT(id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, "
            "ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            (entry_id, kind, key.key_id, nonce, ct, created_at, now),
        )
        if existing:
            # the old ciphertext must not linger in the WAL either
            await self._db.checkpoint()
        info = EntryInfo(kind, name, created_at, now, None, dict(public or {}))
        return info, existing is None

    async def get(self, kind: str, name: str) -> dict[str, Any]:
        """The secret of an entry; NotFound if there is none."""
        _check_kind(kind)
        row = await self._db.fetchone(
            "SELECT * FROM vault_entries WHERE id = ?", (_entry_id(self._hub_key(), kind, name),)
        )
        if row is None:
            raise NotFound(f"no {kind} entry {name!r} in the vault")
        stored_name, secret, _public = self._open_row(row, kind)
        if stored_name != name:
            raise VaultError(f"vault entry for {kind} does not match its name")
        return secret

    async def exists(self, kind: str, name: str) -> bool:
        _check_kind(kind)
        row = await self._db.fetchone(
            "SELECT 1 FROM vault_entries WHERE id = ?", (_entry_id(self._hub_key(), kind, name),)
        )
        return row is not None

    async def entries(self, kind: str) -> list[EntryInfo]:
        """Names and dates of every entry of `kind`, sorted by name; no secrets."""
        _check_kind(kind)
        out = []
        for row in await self._db.fetchall(
            "SELECT * FROM vault_entries WHERE kind = ?", (kind,)
        ):
            name, _secret, public = self._open_row(row, kind)
            out.append(EntryInfo(kind, name, row["created_at"], row["updated_at"],
                                 row["last_used"], public))
        return sorted(out, key=lambda e: e.name)

    async def info(self, kind: str, name: str) -> EntryInfo:
        for entry in await self.entries(kind):
            if entry.name == name:
                return entry
        raise NotFound(f"no {kind} entry {name!r} in the vault")

    async def touch(self, kind: str, name: str) -> None:
        """Record that an entry was used now (shown as `last_used`)."""
        _check_kind(kind)
        await self._db.write(
            "UPDATE vault_entries SET last_used = ? WHERE id = ?",
            (self._clock.time(), _entry_id(self._hub_key(), kind, name)),
        )

    async def delete(self, kind: str, name: str) -> bool:
        """Delete an entry for good: secure_delete zeroes its pages, the WAL is truncated."""
        _check_kind(kind)
        entry_id = _entry_id(self._hub_key(), kind, name)
        row = await self._db.fetchone("SELECT 1 FROM vault_entries WHERE id = ?", (entry_id,))
        if row is None:
            return False
        await self._db.write("DELETE FROM vault_entries WHERE id = ?", (entry_id,))
        await self._db.checkpoint()
        return True

    # -- internals -------------------------------------------------------------------------

    def _hub_key(self) -> HubKey:
        if self._key is None:
            raise VaultError("the vault is not open")
        return self._key

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._hub_key().enc_key())
        return self._aead

    def _open_row(self, row: Any, kind: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return open_row(self._cipher(), self._hub_key(), kind, row["id"], row["nonce"],
                        row["ciphertext"])


# -- key files --------------------------------------------------------------------------------


def key_path(state_dir: Path) -> Path:
    return state_dir / KEY_FILENAME


def credential_path() -> Path | None:
    """The systemd credential holding the hub key, if the service was given one."""
    cdir = os.environ.get("CREDENTIALS_DIRECTORY")
    if not cdir:
        return None
    path = Path(cdir) / CREDENTIAL_NAME
    return path if path.exists() else None


def load_or_create_key(state_dir: Path) -> HubKey:
    """The hub key: the systemd credential if present, else the 0600 file (made on first use)."""
    cred = credential_path()
    if cred is not None:
        return HubKey(_parse_key(cred.read_bytes(), cred), "credential")
    path = key_path(state_dir)
    if path.exists():
        _check_mode(path)
        return HubKey(_parse_key(path.read_bytes(), path), "file")
    raw = os.urandom(32)
    write_key_file(path, raw, exclusive=True)
    _LOG.info("created a new vault key at %s", path)
    return HubKey(raw, "file")


def write_key_file(path: Path, raw: bytes, *, exclusive: bool = False) -> None:
    """Write a key file with mode 0600 from the first byte, fsync it and its directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, base64.b64encode(raw) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def recover_key(db_path: Path, state_dir: Path, current: HubKey) -> HubKey:
    """Finish or undo a rotation that was interrupted; return the key the rows are under."""
    pending_path = state_dir / PENDING_FILENAME
    if not pending_path.exists():
        return current
    pending = HubKey(_parse_key(pending_path.read_bytes(), pending_path), "file")
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        under_pending = _count_key(conn, pending.key_id)
        under_current = _count_key(conn, current.key_id)
    if under_pending and under_current:  # cannot happen: re-encryption is one transaction
        raise VaultError("vault rows are split between two keys; keep both key files")
    if under_pending:
        if current.source == "credential":
            raise VaultError(
                f"a rotation re-encrypted the vault under {pending_path}; install it as the "
                "vault-key credential (systemd-creds encrypt) and restart"
            )
        os.replace(pending_path, key_path(state_dir))
        _fsync_dir(state_dir)
        _LOG.warning("finished an interrupted vault key rotation (key %s)", pending.key_id)
        return pending
    pending_path.unlink()
    _fsync_dir(state_dir)
    _LOG.warning("undid an interrupted vault key rotation; entries stay under key %s",
                 current.key_id)
    return current


def acquire_lock(state_dir: Path, *, shared: bool = False) -> int:
    """A lock on the vault: shared while a hub runs, exclusive for a rotation (which then
    cannot start while any hub runs, nor a hub while it rotates). VaultLocked if taken."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise VaultLocked(
            "the vault is being rotated" if shared else
            "the vault is in use by a running hub (stop it first: systemctl stop uone-hub)"
        ) from None
    return fd


# -- rotation (runs in the CLI process, the hub stopped) ---------------------------------------

_PAUSE_ENV = "UONE_TEST_VAULT_ROTATE_PAUSE"  # tests only: pause at a stage so they can kill us


def rotate(db_path: Path, state_dir: Path, *, progress: Any = None) -> tuple[str, str, int]:
    """Re-encrypt every entry under a fresh key; returns (old key id, new key id, entries)."""
    lock = acquire_lock(state_dir)
    try:
        if credential_path() is not None:
            raise VaultError(
                "the hub key is a systemd credential; rotate it with systemd-creds and "
                "`uone-hub vault rotate` is not possible in place"
            )
        old = recover_key(db_path, state_dir, load_or_create_key(state_dir))
        new = HubKey(os.urandom(32), "file")
        pending_path = state_dir / PENDING_FILENAME
        write_key_file(pending_path, new.raw)
        _pause("pending")
        count = 0
        with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            if _has_table(conn):
                count = _reencrypt(conn, old, new, progress)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _pause("committed")
        os.replace(pending_path, key_path(state_dir))
        _fsync_dir(state_dir)
        return old.key_id, new.key_id, count
    finally:
        os.close(lock)


def _reencrypt(conn: sqlite3.Connection, old: HubKey, new: HubKey, progress: Any) -> int:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    old_aead, new_aead = AESGCM(old.enc_key()), AESGCM(new.enc_key())
    rows = conn.execute(
        "SELECT id, kind, key_id, nonce, ciphertext, created_at, updated_at, last_used "
        "FROM vault_entries"
    ).fetchall()
    foreign = {r[2] for r in rows} - {old.key_id}
    if foreign:
        raise VaultError(f"entries under unknown key(s) {', '.join(sorted(foreign))}; not rotating")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i, (_id, kind, _kid, nonce, ct, created, updated, used) in enumerate(rows):
            name, secret, public = open_row(old_aead, old, kind, _id, nonce, ct)
            new_id = _entry_id(new, kind, name)
            new_nonce = os.urandom(12)
            new_ct = new_aead.encrypt(new_nonce, _encode(name, secret, public), _aad(kind, new_id))
            conn.execute("DELETE FROM vault_entries WHERE id = ?", (_id,))
            conn.execute(
                "INSERT INTO vault_entries(id, kind, key_id, nonce, ciphertext, created_at, "
                "updated_at, last_used) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id, kind, new.key_id, new_nonce, new_ct, created,
                 updated, used),
            )
            if i == len(rows) // 2:
                _pause("midway")
            if progress is not None:
                progress(i + 1, len(rows))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def _pause(stage: str) -> None:
    if os.environ.get(_PAUSE_ENV) == stage:
        print(f"paused at {stage}", flush=True)
        while True:  # the test kills us here
            time.sleep(1)


# -- helpers ----------------------------------------------------------------------------------


def open_row(
    aead: AESGCM, key: HubKey, kind: str, entry_id: str, nonce: bytes, ct: bytes
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Decrypt a row and check it belongs where it is: (name, secret, public)."""
    from cryptography.exceptions import InvalidTag

    try:
        plaintext = aead.decrypt(nonce, ct, _aad(kind, entry_id))
    except InvalidTag:
        raise VaultError(
            f"a {kind} vault entry failed authentication (wrong key or tampered row)"
        ) from None
    doc = json.loads(plaintext)
    name = doc["name"]
    if not hmac.compare_digest(_entry_id(key, kind, name), entry_id):
        raise VaultError(f"a {kind} vault entry is stored under another name's id")
    return name, doc["secret"], doc.get("public", {})


def _aad(kind: str, entry_id: str) -> bytes:
    """Binds the ciphertext to its kind and name (the id is an HMAC of both)."""
    return _AAD_PREFIX + kind.encode() + b"\0" + entry_id.encode()


def _encode(name: str, secret: dict[str, Any], public: dict[str, Any]) -> bytes:
    return json.dumps({"name": name, "secret": secret, "public": public},
                      separators=(",", ":")).encode()


def _entry_id(key: HubKey, kind: str, name: str) -> str:
    return hmac.new(key.index_key(), kind.encode() + b"\0" + name.encode(),
                    hashlib.sha256).hexdigest()


def _derive(raw: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) without salt, on the standard library's HMAC: the same bytes as
    cryptography's HKDF (tests/core/test_vault.py checks it against it and the RFC's vectors),
    whose first use initialises cryptography's own OpenSSL (0.7 MiB of RSS) at every start."""
    prk = hmac.digest(bytes(32), raw, "sha256")
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
    return out[:length]


def _parse_key(data: bytes, where: Path) -> bytes:
    if len(data) == 32:
        return data
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise VaultError(f"{where}: a vault key is 32 bytes (raw or base64)")
    return raw


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise VaultError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationError("kind", f"unknown vault entry kind {kind!r}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_entries'"
    ).fetchone() is not None


def _count_key(conn: sqlite3.Connection, key_id: str) -> int:
    if not _has_table(conn):
        return 0
    return conn.execute(
        "SELECT COUNT(*) FROM vault_entries WHERE key_id = ?", (key_id,)
    ).fetchone()[0]


def _foreign_key_ids(conn: sqlite3.Connection, key_id: str) -> list[str]:
    if not _has_table(conn):
        return []
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT key_id FROM vault_entries WHERE key_id != ?", (key_id,)
    )]

