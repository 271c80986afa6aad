"""TOTP and scrypt run on the standard library (hub/auth/totp.py, passwords.py): the same codes,
URIs and hashes as cryptography's implementations, and the RFC's published vectors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from hub.auth import passwords, totp

RFC_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(("now", "eight_digits"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")])
def test_codes_are_rfc_6238s(now: int, eight_digits: str) -> None:
    # RFC 6238 appendix B, SHA-1: the hub shows six digits, the last six of the eight
    assert totp.code_at(RFC_SECRET, now) == eight_digits[-6:]


def test_codes_and_uri_match_cryptography() -> None:
    secret = totp.new_secret()
    theirs = TOTP(secret, 6, SHA1(), 30, enforce_key_length=False)
    for now in range(0, 4_000_000_000, 39_999_989):
        assert totp.code_at(secret, now) == theirs.generate(now).decode()
    for account in ("ann", "ann@example.org", "Zoë Müller / kitchen", "a:b?c&d=e"):
        assert totp.provisioning_uri(secret, account) == theirs.get_provisioning_uri(
            account, totp.ISSUER)


def test_verify_takes_one_step_of_drift_and_refuses_replay() -> None:
    now = 1_700_000_000.0
    step = int(now // 30)
    assert totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, now), now, 0) == step
    assert totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, now - 30), now, 0) == step - 1
    assert totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, now + 30), now, 0) == step + 1
    assert totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, now - 60), now, 0) is None
    assert totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, now), now, step) is None
    assert totp.verify(RFC_SECRET, "12a456", now, 0) is None


def test_scrypt_hashes_verify_both_ways_with_cryptography() -> None:
    stored = passwords.hash_password("correct horse battery", 1 << 14)
    scheme, n, r, p, salt, key = stored.split("$")
    assert scheme == "scrypt"
    theirs = Scrypt(salt=passwords._unb64(salt), length=32, n=int(n), r=int(r), p=int(p))
    assert theirs.derive(b"correct horse battery") == passwords._unb64(key)
    # a hash cryptography made (as stored by earlier versions) verifies here
    made = Scrypt(salt=b"0123456789abcdef", length=32, n=1 << 15, r=8, p=1).derive(b"pw12345678")
    old = f"scrypt${1 << 15}$8$1${passwords._b64(b'0123456789abcdef')}${passwords._b64(made)}"
    assert passwords.verify_password("pw12345678", old)
    assert not passwords.verify_password("pw12345679", old)


@pytest.mark.parametrize("stored", [
    "", "garbage", "bcrypt$1$2$3$4$5", "scrypt$3$8$1$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA",
    "scrypt$16384$8$1$AAAA$", "scrypt$16384$8$1$!!$AAAA"])
def test_malformed_stored_hashes_are_a_plain_no(stored: str) -> None:
    assert passwords.verify_password("anything", stored) is False
