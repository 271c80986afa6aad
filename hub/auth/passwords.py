"""Password hashing with scrypt (memory-hard) and a per-user random salt. Blocking: call
these through asyncio.to_thread.

scrypt is the standard library's (`hashlib.scrypt`, the system OpenSSL the `ssl` module
already loads): the same bytes as cryptography's Scrypt (tests/auth checks both ways), without
loading cryptography's own OpenSSL (+8 MiB of RSS on a Pi) for a sign-in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

R, P, LENGTH = 8, 1, 32
MIN_LENGTH, MAX_LENGTH = 8, 1024


def hash_password(password: str, n: int = 1 << 14) -> str:
    """`scrypt$n$r$p$salt$hash`, all that is needed to verify later with the same cost."""
    salt = os.urandom(16)
    key = _scrypt(password, salt, n, R, P, LENGTH)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        got = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except ValueError:  # malformed, or parameters scrypt refuses
        return False
    return hmac.compare_digest(got, expected)


def dummy_hash(n: int) -> str:
    """A hash nobody knows the password of: unknown users cost as much as known ones."""
    return hash_password(base64.b64encode(os.urandom(24)).decode(), n)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    if not 1 <= length <= 1024:
        raise ValueError("bad key length")
    # OpenSSL refuses above 32 MiB unless told: 128·r·n for V plus 128·r·p for B, and slack
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem,
                          dklen=length)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
