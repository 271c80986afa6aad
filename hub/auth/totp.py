"""TOTP (RFC 6238) two-step verification.

HOTP is one HMAC-SHA1 and a truncation (RFC 4226 section 5.3); the standard library's hmac does
it without loading cryptography's own OpenSSL (+8 MiB of RSS on a Pi) at every sign-in.
tests/auth checks it against the RFC's vectors and cryptography's TOTP, URI included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from urllib.parse import quote, urlencode

DIGITS, STEP = 6, 30
ISSUER = "Uone Hub"


def new_secret() -> bytes:
    return os.urandom(20)


def provisioning_uri(secret: bytes, account: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app scans (Key URI Format)."""
    query = urlencode([("digits", DIGITS), ("secret", base64.b32encode(secret)),
                       ("algorithm", "SHA1"), ("issuer", ISSUER), ("period", STEP)])
    return f"otpauth://totp/{quote(ISSUER)}:{quote(account)}?{query}"


def verify(secret: bytes, code: str, now: float, last_step: int) -> int | None:
    """The time step the code belongs to (one step of drift allowed), or None.

    A step at or before `last_step` is refused, so an observed code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = int(now // STEP)
    for step in (current, current - 1, current + 1):
        if step <= last_step:
            continue
        if hmac.compare_digest(_hotp(secret, step).encode(), code.encode()):
            return step
    return None


def code_at(secret: bytes, now: float) -> str:
    """The code for `now` (what the user's app shows; used by tests and the CLI)."""
    return _hotp(secret, int(now // STEP))


def encode_secret(secret: bytes) -> str:
    return base64.b32encode(secret).decode()


def decode_secret(text: str) -> bytes:
    return base64.b32decode(text)


def _hotp(secret: bytes, counter: int) -> str:
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** DIGITS).zfill(DIGITS)
