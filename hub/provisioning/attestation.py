"""Device attestation: is this device the genuine one its certificate says it is?

Modelled on Matter's DAC -> PAI -> PAA chain and fully offline: the trust anchors and the
revocation list are local files named in config. A Uone device holds a P-256 key and a
factory certificate binding its DID and MAC (subjectAltName URIs `urn:uone:did:<did>` and
`urn:uone:mac:<mac>`, see integrations/uone/PROTOCOL.md). The hub sends a fresh nonce; the
device signs `"uone-attest-v1\\0" || nonce || hub id` (ECDSA P-256, SHA-256, raw r||s). The hub
then checks the chain to a trust anchor and its dates, revocation, the signature, and that
the DID and MAC in the certificate are what the device advertises over BLE and mDNS.

`verify` never raises on bad input: every problem is a `failed` outcome with a code and a
message naming what was wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from hub.errors import ConfigError, ConfigProblem
from hub.provisioning.evidence import (  # noqa: F401 - re-exported
    _DID_RE,
    _MAC_RE,
    CHALLENGE_CONTEXT,
    DID_URI,
    MAC_URI,
    MAX_CERT_BYTES,
    MAX_CHAIN,
    NONCE_SIZE,
    SIGNATURE_SIZE,
    UNVERIFIED,
    Attestation,
    Evidence,
    Outcome,
    challenge,
    failed,
    normalize_mac,
)


@dataclass(frozen=True, slots=True)
class Revocations:
    """Revoked certificates: serial numbers from config and CRLs signed by a chain's CA."""

    serials: frozenset[int] = frozenset()
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    def check(self, chain: Sequence[x509.Certificate]) -> str | None:
        """The reason a certificate of `chain` is revoked, or None."""
        for index, cert in enumerate(chain):
            what = "device certificate" if index == 0 else f"intermediate {index}"
            if cert.serial_number in self.serials:
                return f"{what} serial {cert.serial_number:x} is on the revocation list"
            issuer = chain[index + 1] if index + 1 < len(chain) else None
            for crl in self.crls:
                if crl.issuer != cert.issuer or issuer is None:
                    continue
                if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    continue
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                    return f"{what} serial {cert.serial_number:x} is revoked by a CRL"
        return None


class AttestationVerifier:
    """Checks evidence against locally configured trust anchors; thread-safe, no I/O."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate],
        revocations: Revocations | None = None,
        broken: str | None = None,
    ) -> None:
        self.anchors = list(anchors)
        self.revocations = revocations or Revocations()
        self.broken = broken  # the trust configuration could not be read: fail closed
        self._store = Store(self.anchors) if self.anchors else None

    @classmethod
    def from_files(
        cls, anchor_files: Iterable[str], crl_files: Iterable[str] = (),
        revoked_serials: Iterable[str] = (), base: Path | None = None,
        locate: Callable[[tuple[str | int, ...], str], ConfigProblem] | None = None,
    ) -> AttestationVerifier:
        """Load PEM anchors and PEM/DER CRLs; ConfigError naming each bad file (located in
        the config file by `locate(key path, message)` when given)."""
        where = locate or (lambda keypath, msg: _problem(".".join(map(str, keypath)), msg))
        problems: list[ConfigProblem] = []
        anchors: list[x509.Certificate] = []
        for i, name in enumerate(anchor_files):
            path = _resolve(name, base)
            try:
                anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
            except (OSError, ValueError) as exc:
                problems.append(where(("provisioning", "trust_anchors", i), f"{path}: {exc}"))
        crls: list[x509.CertificateRevocationList] = []
        for i, name in enumerate(crl_files):
            path = _resolve(name, base)
            try:
                data = path.read_bytes()
                crls.append(x509.load_pem_x509_crl(data) if b"-----BEGIN" in data
                            else x509.load_der_x509_crl(data))
            except (OSError, ValueError) as exc:
                problems.append(where(("provisioning", "crl_files", i), f"{path}: {exc}"))
        serials: set[int] = set()
        for i, text in enumerate(revoked_serials):
            try:
                serials.add(int(text.replace(":", ""), 16))
            except ValueError:
                problems.append(where(("provisioning", "revoked_serials", i),
                                      f"{text!r} is not a hex serial number"))
        if problems:
            raise ConfigError(problems)
        return cls(anchors, Revocations(frozenset(serials), tuple(crls)))

    def verify(self, evidence: Evidence, now: dt.datetime) -> Attestation:
        """Check everything; the first problem found is the `failed` reason."""
        if self.broken is not None:
            return failed("trust_config_invalid", "the attestation trust configuration "
                          f"could not be read, so no device can be verified: {self.broken}")
        if self._store is None:
            return failed("no_trust_anchors", "no trust anchors are configured "
                          "(provisioning.trust_anchors)")
        parsed = parse_chain(evidence.chain)
        if isinstance(parsed, Attestation):
            return parsed
        leaf, intermediates = parsed[0], parsed[1:]
        did, mac = _binding(leaf)
        info: dict[str, Any] = {
            "did": did, "mac": mac, "serial": f"{leaf.serial_number:x}",
            "not_after": leaf.not_valid_after_utc.timestamp(),
            "public_key": leaf.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        }
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            return failed("unsupported_key", "the device key must be ECDSA P-256", **info)
        for index, cert in enumerate(parsed):
            what = "device certificate" if index == 0 else f"intermediate {index}"
            if now < cert.not_valid_before_utc:
                return failed("not_yet_valid", f"{what} is not valid before "
                              f"{cert.not_valid_before_utc.isoformat()}", **info)
            if now > cert.not_valid_after_utc:
                return failed("expired", f"{what} expired on "
                              f"{cert.not_valid_after_utc.isoformat()}", **info)
        try:
            self._verifier(now).verify(leaf, intermediates)
        except VerificationError as exc:
            return failed("untrusted_chain",
                          f"the certificate chain does not lead to a trust anchor: {exc}",
                          **info)
        revoked = self.revocations.check(parsed)
        if revoked:
            return failed("revoked", revoked, **info)
        if did is None or mac is None:
            return failed("missing_binding", "the device certificate binds no DID and MAC "
                          f"({DID_URI}... and {MAC_URI}... subjectAltName URIs)", **info)
        if len(evidence.nonce) != NONCE_SIZE:
            return failed("bad_nonce", f"the nonce must be {NONCE_SIZE} bytes", **info)
        if len(evidence.signature) != SIGNATURE_SIZE:
            return failed("bad_signature_size", f"the signature is {len(evidence.signature)} "
                          f"bytes; expected {SIGNATURE_SIZE} (raw r||s)", **info)
        r = int.from_bytes(evidence.signature[:32], "big")
        s = int.from_bytes(evidence.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), challenge(evidence.nonce, evidence.hub_id),
                       ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return failed("bad_signature", "the device's signature over the nonce does not "
                          "verify with its certified key", **info)
        for adv in evidence.advertised_dids:
            if adv != did:
                return failed("did_mismatch", f"the device advertises DID {adv!r} but its "
                              f"certificate is for {did!r}", **info)
        for adv in evidence.advertised_macs:
            if normalize_mac(adv) != mac:
                return failed("mac_mismatch", f"the device advertises MAC {adv} but its "
                              f"certificate is for {mac}", **info)
        return Attestation("verified", **info)

    def _verifier(self, now: dt.datetime):
        assert self._store is not None
        return (
            PolicyBuilder().store(self._store).time(now).max_chain_depth(MAX_CHAIN - 1)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                ee_policy=ExtensionPolicy.webpki_defaults_ee())
            .build_client_verifier()
        )


def parse_chain(chain: Sequence[bytes]) -> list[x509.Certificate] | Attestation:
    """DER certificates, or a `failed` outcome saying which one is wrong and why."""
    if not chain:
        return failed("empty_chain", "the device sent no certificate")
    if len(chain) > MAX_CHAIN:
        return failed("chain_too_long", f"the chain has {len(chain)} certificates; at most "
                      f"{MAX_CHAIN} are allowed")
    out = []
    for index, der in enumerate(chain):
        what = "device certificate" if index == 0 else f"certificate {index}"
        if not isinstance(der, bytes | bytearray) or len(der) > MAX_CERT_BYTES:
            return failed("unparsable_certificate", f"{what} is larger than {MAX_CERT_BYTES} "
                          "bytes")
        try:
            out.append(x509.load_der_x509_certificate(bytes(der)))
        except ValueError as exc:
            return failed("unparsable_certificate", f"{what} does not parse as DER X.509: {exc}")
    return out


def _binding(cert: x509.Certificate) -> tuple[str | None, str | None]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None, None
    did = mac = None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(DID_URI) and _DID_RE.match(uri[len(DID_URI):]):
            did = uri[len(DID_URI):]
        elif uri.startswith(MAC_URI) and _MAC_RE.match(uri[len(MAC_URI):]):
            mac = uri[len(MAC_URI):]
    return did, mac


def _resolve(name: str, base: Path | None) -> Path:
    p = Path(name)
    return p if p.is_absolute() or base is None else base / p


def _problem(path: str, message: str) -> ConfigProblem:
    return ConfigProblem("<config>", 0, 0, path, message)
