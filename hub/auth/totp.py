"""TOTP (RFC 6238) two-step verification with cryptography's implementation."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

DIGITS, STEP = 6, 30
ISSUER = "Uone Hub"


def new_secret() -> bytes:
    return os.urandom(20)


def provisioning_uri(secret: bytes, account: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app scans."""
    return _totp(secret).get_provisioning_uri(account, ISSUER)


def verify(secret: bytes, code: str, now: float, last_step: int) -> int | None:
    """The time step the code belongs to (one step of drift allowed), or None.

    A step at or before `last_step` is refused, so an observed code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = _totp(secret)
    current = int(now // STEP)
    for step in (current, current - 1, current + 1):
        if step <= last_step:
            continue
        try:
            totp.verify(code.encode(), step * STEP)
        except InvalidToken:
            continue
        return step
    return None


def code_at(secret: bytes, now: float) -> str:
    """The code for `now` (what the user's app shows; used by tests and the CLI)."""
    return _totp(secret).generate(now).decode()


def encode_secret(secret: bytes) -> str:
    return base64.b32encode(secret).decode()


def decode_secret(text: str) -> bytes:
    return base64.b32decode(text)


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP, enforce_key_length=False)
