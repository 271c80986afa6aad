"""What attestation is about, without the cryptography: evidence, outcome, the challenge.

Kept apart from the verifier (hub.provisioning.attestation) so that the hub, the façade and
integrations can name these types without loading X.509 support at start-up (a Pi that never
meets a Uone device never pays for it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["verified", "unverified", "failed"]

CHALLENGE_CONTEXT = b"uone-attest-v1\0"
NONCE_SIZE = 32
SIGNATURE_SIZE = 64  # raw r || s, 32 bytes each
MAX_CHAIN = 3  # device certificate + at most two intermediates (PAI)
MAX_CERT_BYTES = 2048
DID_URI = "urn:uone:did:"
MAC_URI = "urn:uone:mac:"
_DID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a device presented, and what it advertised, for one attestation."""

    chain: tuple[bytes, ...]  # DER certificates, device certificate first
    nonce: bytes
    hub_id: str
    signature: bytes
    advertised_dids: tuple[str, ...] = ()  # from BLE and/or mDNS
    advertised_macs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attestation:
    """The outcome of checking a device. `failed` carries a code and a reason."""

    outcome: Outcome
    code: str | None = None
    reason: str | None = None
    did: str | None = None
    mac: str | None = None
    serial: str | None = None
    not_after: float | None = None
    public_key: bytes | None = field(default=None, repr=False)  # SubjectPublicKeyInfo DER

    @property
    def ok(self) -> bool:
        return self.outcome == "verified"

    @property
    def key_fingerprint(self) -> str | None:
        return hashlib.sha256(self.public_key).hexdigest() if self.public_key else None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "code": self.code, "reason": self.reason,
            "did": self.did, "mac": self.mac, "serial": self.serial,
            "not_after": self.not_after, "key_sha256": self.key_fingerprint,
        }


UNVERIFIED = Attestation("unverified", "no_attestation",
                         "third-party device: it cannot prove who made it")


def failed(code: str, reason: str, **kw: Any) -> Attestation:
    return Attestation("failed", code, reason, **kw)


def challenge(nonce: bytes, hub_id: str) -> bytes:
    """The bytes a device signs: context, the hub's fresh nonce, the hub's id."""
    return CHALLENGE_CONTEXT + nonce + hub_id.encode("utf-8")


def normalize_mac(mac: str) -> str:
    return mac.strip().lower().replace("-", ":")
