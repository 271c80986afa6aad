"""Attestation: chain to a configured anchor, dates, revocation, signature, DID/MAC binding."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hub.errors import ConfigError
from hub.provisioning.attestation import (
    AttestationVerifier,
    Evidence,
    Revocations,
)
from integrations.uone.factory import FactoryPKI, sign_challenge

HUB_ID = "hub-0123"
DID = "uone-4f2a9c"
MAC = "a4:c1:38:12:34:56"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def pki() -> FactoryPKI:
    return FactoryPKI.create()


def _evidence(ident, *, nonce=None, hub_id=HUB_ID, sig=None, chain=None,
              dids=(DID,), macs=(MAC,)) -> Evidence:
    nonce = nonce if nonce is not None else os.urandom(32)
    sig = sig if sig is not None else sign_challenge(ident.key, nonce, hub_id)
    return Evidence(tuple(chain if chain is not None else ident.chain_der), nonce, HUB_ID, sig,
                    tuple(dids), tuple(macs))


def test_genuine_device_is_verified(pki: FactoryPKI) -> None:
    ident = pki.issue(DID, MAC)
    result = AttestationVerifier([pki.root]).verify(_evidence(ident), NOW)
    assert result.outcome == "verified", result
    assert (result.did, result.mac) == (DID, MAC)
    assert result.key_fingerprint and result.serial == f"{ident.cert.serial_number:x}"
    assert result.to_json()["outcome"] == "verified"


def _fail(pki: FactoryPKI, evidence: Evidence, code: str, *, anchors=None,
          revocations=None) -> str:
    verifier = AttestationVerifier(anchors if anchors is not None else [pki.root], revocations)
    result = verifier.verify(evidence, NOW)
    assert result.outcome == "failed", result
    assert result.code == code, result
    assert result.reason
    return result.reason


def test_wrong_key_for_did(pki: FactoryPKI) -> None:
    ident = pki.issue(DID, MAC)
    nonce = os.urandom(32)
    other = ec.generate_private_key(ec.SECP256R1())
    _fail(pki, _evidence(ident, nonce=nonce, sig=sign_challenge(other, nonce, HUB_ID)),
          "bad_signature")


def test_signature_replayed_for_another_nonce_or_hub(pki: FactoryPKI) -> None:
    ident = pki.issue(DID, MAC)
    old = os.urandom(32)
    sig = sign_challenge(ident.key, old, HUB_ID)
    _fail(pki, _evidence(ident, nonce=os.urandom(32), sig=sig), "bad_signature")
    sig_other_hub = sign_challenge(ident.key, old, "another-hub")
    _fail(pki, _evidence(ident, nonce=old, sig=sig_other_hub), "bad_signature")


def test_mac_and_did_mismatch(pki: FactoryPKI) -> None:
    ident = pki.issue(DID, MAC)
    reason = _fail(pki, _evidence(ident, macs=(MAC, "a4:c1:38:99:99:99")), "mac_mismatch")
    assert "a4:c1:38:99:99:99" in reason
    _fail(pki, _evidence(ident, dids=("uone-other",)), "did_mismatch")
    # case and separators of an advertised MAC do not matter
    ok = AttestationVerifier([pki.root]).verify(_evidence(ident, macs=("A4-C1-38-12-34-56",)),
                                                NOW)
    assert ok.outcome == "verified"


def test_expired_and_not_yet_valid(pki: FactoryPKI) -> None:
    expired = pki.issue(DID, MAC, not_before=NOW - dt.timedelta(days=30),
                        not_after=NOW - dt.timedelta(days=1))
    assert "expired" in _fail(pki, _evidence(expired), "expired")
    future = pki.issue(DID, MAC, not_before=NOW + dt.timedelta(days=1))
    _fail(pki, _evidence(future), "not_yet_valid")


def test_revoked_by_serial_list_and_by_crl(pki: FactoryPKI, tmp_path: Path) -> None:
    ident = pki.issue(DID, MAC)
    by_serial = Revocations(frozenset({ident.cert.serial_number}))
    _fail(pki, _evidence(ident), "revoked", revocations=by_serial)
    crl = tmp_path / "pai.crl"
    crl.write_bytes(pki.crl([ident.cert.serial_number]))
    anchor = tmp_path / "root.pem"
    anchor.write_bytes(pki.root_pem())
    verifier = AttestationVerifier.from_files([str(anchor)], [str(crl)])
    result = verifier.verify(_evidence(ident), NOW)
    assert (result.outcome, result.code) == ("failed", "revoked")
    other = pki.issue("uone-other", MAC)
    assert verifier.verify(_evidence(other, dids=("uone-other",)), NOW).outcome == "verified"
    # a revoked intermediate takes all its devices with it
    _fail(pki, _evidence(other, dids=("uone-other",)), "revoked",
          revocations=Revocations(frozenset({pki.pai.serial_number})))


def test_untrusted_root_and_no_anchors(pki: FactoryPKI) -> None:
    other = FactoryPKI.create("Counterfeit")
    fake = other.issue(DID, MAC)
    assert "trust anchor" in _fail(pki, _evidence(fake), "untrusted_chain")
    # a device certificate without its intermediate does not chain either
    ident = pki.issue(DID, MAC)
    _fail(pki, _evidence(ident, chain=ident.chain_der[:1]), "untrusted_chain")
    _fail(pki, _evidence(ident), "no_trust_anchors", anchors=[])


def test_missing_binding(pki: FactoryPKI) -> None:
    ident = pki.issue(DID, MAC, uris=["urn:uone:did:" + DID])
    _fail(pki, _evidence(ident), "missing_binding")


@pytest.mark.parametrize(
    ("mangle", "code", "words"),
    [
        (lambda c, s: (c[:0], s), "empty_chain", "no certificate"),
        (lambda c, s: ([*c, c[1], c[1]], s), "chain_too_long", "at most 3"),
        (lambda c, s: ([b"\x30\x03garbage", *c[1:]], s), "unparsable_certificate",
         "device certificate does not parse"),
        (lambda c, s: ([c[0], os.urandom(300)], s), "unparsable_certificate", "certificate 1"),
        (lambda c, s: ([c[0] + b"\x00" * 4096, *c[1:]], s), "unparsable_certificate",
         "larger than"),
        (lambda c, s: (c, s[:63]), "bad_signature_size", "63 bytes"),
        (lambda c, s: (c, s + b"\x00"), "bad_signature_size", "expected 64"),
        (lambda c, s: (c, b"\xff" * 64), "bad_signature", "does not verify"),
        (lambda c, s: (c, b""), "bad_signature_size", "0 bytes"),
    ],
)
def test_bad_input_gives_a_clear_failure(pki: FactoryPKI, mangle, code: str,
                                         words: str) -> None:
    ident = pki.issue(DID, MAC)
    nonce = os.urandom(32)
    chain, sig = mangle(ident.chain_der, sign_challenge(ident.key, nonce, HUB_ID))
    reason = _fail(pki, _evidence(ident, nonce=nonce, sig=sig, chain=chain), code)
    assert words in reason


def test_bad_config_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "root.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError) as err:
        AttestationVerifier.from_files([str(bad), str(tmp_path / "missing.pem")],
                                       revoked_serials=["zz"])
    text = str(err.value)
    assert "root.pem" in text and "missing.pem" in text and "'zz'" in text


async def test_unreadable_trust_config_fails_closed_without_stopping_the_hub(
        config_factory, tmp_path: Path, pki: FactoryPKI, caplog) -> None:
    from hub.hub import Hub

    good = tmp_path / "root.pem"
    good.write_bytes(pki.root_pem())
    bad = tmp_path / "pai.crl"
    bad.write_text("garbage")
    loaded = config_factory({"provisioning": {"trust_anchors": [str(good)],
                                              "crl_files": [str(bad)]}})
    async with Hub(loaded) as hub:
        result = hub.provisioning.verify(_evidence(pki.issue(DID, MAC)))
    assert (result.outcome, result.code) == ("failed", "trust_config_invalid")
    assert "pai.crl" in result.reason and "config.yaml:" in result.reason
    assert "crl_files[0]" in result.reason or "crl_files.0" in result.reason
