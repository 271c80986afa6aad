"""Encrypted backups: the whole hub (database snapshot, state files, config) under a key
derived from a passphrase the owner keeps.

File layout: MAGIC, a 4-byte header length, the JSON header (KDF parameters, salt, nonce
prefix, chunk size), then the encrypted archive in chunks. Each chunk is AES-256-GCM with
nonce = prefix || chunk index, and its associated data is the header, its index and a
last-chunk flag: a changed header, a dropped, reordered or truncated chunk, or a wrong
passphrase all fail authentication. Restore checks the whole file before it touches
anything, so a bad file or passphrase changes nothing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hub.errors import HubError, ValidationError
from hub.vault import LOCK_FILENAME, VaultLocked, acquire_lock

MAGIC = b"UONE-BACKUP\x01"
CHUNK = 1 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1  # 32 MiB, about 0.1-0.3 s on a Pi 4
MIN_PASSPHRASE = 12
DB_NAME = "hub.db"
_SKIP = {"hub.db", "hub.db-wal", "hub.db-shm", LOCK_FILENAME}


class BackupError(HubError):
    """The backup cannot be read: wrong passphrase, damaged or not a backup at all."""

    status = 400
    code = "backup_invalid"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    created: float
    hub_version: str
    files: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "hub_version": self.hub_version, "files": self.files}


def check_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE:
        raise ValidationError("passphrase", f"use at least {MIN_PASSPHRASE} characters")


def create_backup(db_path: Path, state_dir: Path, config_path: Path | None, out: BinaryIO,
                  passphrase: str, hub_version: str) -> BackupInfo:
    """Write an encrypted backup to `out`. Blocking: run it in a thread."""
    check_passphrase(passphrase)
    with tempfile.TemporaryDirectory(prefix="uone-backup-") as tmp:
        snap = Path(tmp) / DB_NAME
        _snapshot_db(db_path, snap)
        archive = Path(tmp) / "archive.tar"
        files = [DB_NAME]
        import tarfile  # loaded when a backup is made, not at start-up

        with tarfile.open(archive, "w") as tar:
            tar.add(snap, arcname=f"state/{DB_NAME}")
            for path in sorted(state_dir.rglob("*")):
                rel = path.relative_to(state_dir).as_posix()
                if rel in _SKIP or not path.is_file() or rel.endswith(".partial"):
                    continue
                tar.add(path, arcname=f"state/{rel}")
                files.append(rel)
            if config_path is not None and config_path.is_file():
                tar.add(config_path, arcname="config.yaml")
                files.append("config.yaml")
            meta = json.dumps({"hub_version": hub_version, "created": time.time(),
                               "files": files}).encode()
            info = tarfile.TarInfo("backup.json")
            info.size = len(meta)
            tar.addfile(info, io.BytesIO(meta))
        _encrypt(archive, out, passphrase)
    return BackupInfo(time.time(), hub_version, files)


def read_backup(src: BinaryIO, passphrase: str, dest: Path) -> BackupInfo:
    """Decrypt and unpack into `dest` (an empty staging dir). Raises BackupError."""
    import tarfile

    archive = dest / ".archive.tar"
    with open(archive, "wb") as fh:
        _decrypt(src, fh, passphrase)
    try:
        with tarfile.open(archive, "r") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"the backup's archive is unreadable: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
    try:
        meta = json.loads((dest / "backup.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"the backup has no valid description: {exc}") from None
    db = dest / "state" / DB_NAME
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the backup's database is unreadable: {exc}") from None
    if ok != "ok":
        raise BackupError(f"the backup's database is damaged: {ok}")
    return BackupInfo(meta["created"], meta["hub_version"], meta["files"])


class HubRunning(BackupError):
    """A restore while a hub runs on the state directory: the hub would keep writing to the
    replaced (deleted) database file and every later change would be lost."""

    status = 409
    code = "hub_running"


def refuse_if_running(state_dir: Path) -> None:
    """HubRunning when a hub holds the state directory (its shared vault lock)."""
    os.close(_exclusive(state_dir))


def restore_backup(src: BinaryIO, passphrase: str, state_dir: Path,
                   config_out: Path | None = None) -> BackupInfo:
    """Restore into `state_dir`; refused (HubRunning) while a hub runs on it, and no hub can
    start meanwhile. Nothing changes unless the whole backup decrypted and checked out.
    Blocking: run it in a thread."""
    lock = _exclusive(state_dir)
    try:
        return _restore(src, passphrase, state_dir, config_out)
    finally:
        os.close(lock)


def _exclusive(state_dir: Path) -> int:
    try:
        return acquire_lock(state_dir)
    except VaultLocked:
        raise HubRunning(f"a hub is running on {state_dir}; stop it first "
                         "(systemctl stop uone-hub), then restore") from None


def _restore(src: BinaryIO, passphrase: str, state_dir: Path,
             config_out: Path | None) -> BackupInfo:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=state_dir.parent))
    try:
        info = read_backup(src, passphrase, staging)
        # move entries, not the directory: under systemd the state dir may be a mount point
        old = staging / ".before-restore"
        old.mkdir()
        moved: list[str] = []
        try:
            for entry in list(state_dir.iterdir()):
                if entry.name == LOCK_FILENAME:  # stays: we hold it, no hub starts meanwhile
                    continue
                os.replace(entry, old / entry.name)
                moved.append(entry.name)
            for entry in list((staging / "state").iterdir()):
                if entry.name != LOCK_FILENAME:  # (older backups carried one)
                    os.replace(entry, state_dir / entry.name)
        except OSError:
            for entry in list(state_dir.iterdir()):
                if entry.name == LOCK_FILENAME:
                    continue
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            for name in moved:
                os.replace(old / name, state_dir / name)
            raise
        os.chmod(state_dir, 0o700)
        if config_out is not None and (staging / "config.yaml").exists():
            shutil.copyfile(staging / "config.yaml", config_out)
            os.chmod(config_out, 0o600)
        return info
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- internals -------------------------------------------------------------------------------


def _snapshot_db(src: Path, dest: Path) -> None:
    """SQLite's online backup: a consistent copy while the hub keeps writing."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _encrypt(archive: Path, out: BinaryIO, passphrase: str) -> None:
    salt, prefix = os.urandom(16), os.urandom(8)
    header = json.dumps({
        "format": 1, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(), "nonce_prefix": prefix.hex(),
        "chunk": CHUNK, "cipher": "AES-256-GCM",
    }, sort_keys=True).encode()
    aead = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    out.write(MAGIC + struct.pack(">I", len(header)) + header)
    size = archive.stat().st_size
    count = max(1, -(-size // CHUNK))
    with open(archive, "rb") as fh:
        for index in range(count):
            plain = fh.read(CHUNK)
            last = index == count - 1
            nonce = prefix + struct.pack(">I", index)
            out.write(aead.encrypt(nonce, plain, _aad(header, index, last)))


def _decrypt(src: BinaryIO, out: BinaryIO, passphrase: str) -> None:
    if src.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a Uone Hub backup (bad magic)")
    raw_len = src.read(4)
    if len(raw_len) != 4:
        raise BackupError("the backup is truncated (no header)")
    (hlen,) = struct.unpack(">I", raw_len)
    if hlen > 4096:
        raise BackupError("the backup's header is damaged")
    header = src.read(hlen)
    try:
        h = json.loads(header)
        salt = base64.b64decode(h["salt"])
        prefix = bytes.fromhex(h["nonce_prefix"])
        chunk, n, r, p = int(h["chunk"]), int(h["n"]), int(h["r"]), int(h["p"])
        if h.get("format") != 1 or len(prefix) != 8 or not 0 < chunk <= 16 << 20:
            raise ValueError("unsupported parameters")
        if n > 1 << 20 or r > 16 or p > 4:
            raise ValueError("KDF parameters out of range")
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the backup's header is damaged: {exc}") from None
    aead = AESGCM(_derive(passphrase, salt, n, r, p))
    index = 0
    block = src.read(chunk + 16)
    if not block:
        raise BackupError("the backup is truncated (no data)")
    while block:
        following = src.read(chunk + 16)
        last = not following
        try:
            plain = aead.decrypt(prefix + struct.pack(">I", index), block,
                                 _aad(header, index, last))
        except InvalidTag:
            if index == 0:
                raise BackupError(
                    "wrong passphrase, or the backup is damaged (authentication failed)"
                ) from None
            raise BackupError(
                f"the backup is damaged or truncated (chunk {index} fails authentication)"
            ) from None
        out.write(plain)
        index += 1
        block = following


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">IB", index, int(last))
