"""Password hashing with scrypt (memory-hard) and a per-user random salt. Blocking: call
these through asyncio.to_thread."""

from __future__ import annotations

import base64
import hmac
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

R, P, LENGTH = 8, 1, 32
MIN_LENGTH, MAX_LENGTH = 8, 1024


def hash_password(password: str, n: int = 1 << 14) -> str:
    """`scrypt$n$r$p$salt$hash`, all that is needed to verify later with the same cost."""
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=LENGTH, n=n, r=R, p=P).derive(password.encode())
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(salt=_unb64(salt), length=len(_unb64(key)), n=int(n), r=int(r), p=int(p))
        kdf.verify(password.encode(), _unb64(key))
        return True
    except (InvalidKey, ValueError):
        return False


def dummy_hash(n: int) -> str:
    """A hash nobody knows the password of: unknown users cost as much as known ones."""
    return hash_password(base64.b64encode(os.urandom(24)).decode(), n)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
