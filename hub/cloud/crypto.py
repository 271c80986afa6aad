"""End-to-end encryption of sync messages: keys, opaque topic ids, sealed envelopes, pairing.

The broker only ever sees ciphertext and opaque topic levels. The wire format is specified in
docs/cloud-sync.md; keep both in step (a test decodes a message with nothing but that spec).

    envelope = version (1 byte, 0x01) | seq (8 bytes, big-endian) | nonce (12) | AES-GCM ct+tag
    AAD      = "uone-sync/1" 0x00 hub_id 0x00 topic 0x00 seq (8 bytes, big-endian)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

VERSION = 1
LABEL = b"uone-sync/1"
HEADER = struct.Struct(">BQ12s")  # version, seq, nonce
PAIRING_PREFIX = "UONE1-"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class EnvelopeError(ValueError):
    """A message that is not ours, was tampered with, or was sealed under another key."""


def derive_from_passphrase(passphrase: str, hub_id: str) -> bytes:
    """The 32-byte sync root key from a passphrase (scrypt; slow on purpose: run in a thread)."""
    return hashlib.scrypt(
        passphrase.encode(), salt=LABEL + b"\0salt\0" + hub_id.encode(),
        n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32, maxmem=64 << 20,
    )


def new_key() -> bytes:
    return os.urandom(32)


# cryptography (with its own OpenSSL: +8 MiB of RSS) is imported at the first use: a hub that
# never syncs never loads it.


def _hkdf(root: bytes, info: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt=None, info=LABEL + b"\0" + info.encode()).derive(root)


@dataclass(frozen=True, slots=True)
class SyncKeys:
    """Keys derived from the sync root key: one to encrypt, one to make opaque topic ids."""

    hub_id: str
    enc: bytes
    topic: bytes

    @classmethod
    def from_root(cls, hub_id: str, root: bytes) -> SyncKeys:
        if len(root) != 32:
            raise ValueError("the sync key is 32 bytes")
        return cls(hub_id, _hkdf(root, "enc"), _hkdf(root, "topic"))

    def opaque(self, kind: str, name: str) -> str:
        """A topic level that identifies `name` to key holders and to nobody else."""
        mac = hmac.new(self.topic, f"{kind}\0{name}".encode(), hashlib.sha256).digest()
        return base64.b32encode(mac[:15]).decode().lower()

    @property
    def hub_topic(self) -> str:
        return self.opaque("hub", self.hub_id)


def command_key(client_key: bytes) -> bytes:
    """The AES key of one remote client's commands and answers."""
    if len(client_key) != 32:
        raise ValueError("a remote client key is 32 bytes")
    return _hkdf(client_key, "cmd")


def aad(hub_id: str, topic: str, seq: int) -> bytes:
    return b"\0".join((LABEL, hub_id.encode(), topic.encode(), struct.pack(">Q", seq)))


def seal(key: bytes, hub_id: str, topic: str, seq: int, body: dict[str, Any]) -> bytes:
    """Encrypt a JSON body for `topic` as message number `seq`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    plain = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    ct = AESGCM(key).encrypt(nonce, plain, aad(hub_id, topic, seq))
    return HEADER.pack(VERSION, seq, nonce) + ct


def open_envelope(key: bytes, hub_id: str, topic: str, payload: bytes) -> tuple[int, Any]:
    """Check and decrypt a message received on `topic`: (seq, body). Raises EnvelopeError."""
    if len(payload) < HEADER.size + 16:
        raise EnvelopeError("too short")
    version, seq, nonce = HEADER.unpack_from(payload)
    if version != VERSION:
        raise EnvelopeError(f"unknown version {version}")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plain = AESGCM(key).decrypt(nonce, payload[HEADER.size:], aad(hub_id, topic, seq))
    except InvalidTag:
        raise EnvelopeError("authentication failed (wrong key, topic or tampered)") from None
    try:
        return seq, json.loads(plain)
    except ValueError:
        raise EnvelopeError("body is not JSON") from None


@dataclass(frozen=True, slots=True)
class Pairing:
    """What another device of the owner needs to read the sync and send commands."""

    hub_id: str
    prefix: str
    sync_key: bytes
    client: str | None = None
    client_key: bytes | None = None
    broker_url: str | None = None

    def encode(self) -> str:
        body: dict[str, Any] = {"v": VERSION, "hub": self.hub_id, "prefix": self.prefix,
                                "key": _b64(self.sync_key)}
        if self.client is not None and self.client_key is not None:
            body["client"] = self.client
            body["client_key"] = _b64(self.client_key)
        if self.broker_url is not None:
            body["broker"] = self.broker_url
        raw = json.dumps(body, separators=(",", ":")).encode()
        return PAIRING_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, code: str) -> Pairing:
        if not code.startswith(PAIRING_PREFIX):
            raise ValueError("not a Uone pairing code")
        text = code[len(PAIRING_PREFIX):]
        try:
            body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if body.get("v") != VERSION:
                raise ValueError(f"unsupported pairing version {body.get('v')!r}")
            ck = body.get("client_key")
            return cls(
                hub_id=str(body["hub"]), prefix=str(body["prefix"]),
                sync_key=_unb64(body["key"]), client=body.get("client"),
                client_key=_unb64(ck) if ck is not None else None,
                broker_url=body.get("broker"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed pairing code: {exc}") from None

    def keys(self) -> SyncKeys:
        return SyncKeys.from_root(self.hub_id, self.sync_key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
