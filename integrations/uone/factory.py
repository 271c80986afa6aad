"""A manufacturer's PKI in miniature: root (PAA) -> intermediate (PAI) -> device certificates.

Used by the simulator, the tests and the benchmark to make certificates the way a Uone
factory would (profile in PROTOCOL.md). Nothing here is needed by the hub at run time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DID_URI = "urn:uone:did:"
MAC_URI = "urn:uone:mac:"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Uone"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def _cert(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey,
          signer: ec.EllipticCurvePrivateKey, issuer_public: ec.EllipticCurvePublicKey, *,
          ca: bool, path_length: int | None, not_before: dt.datetime, not_after: dt.datetime,
          serial: int | None = None, uris: list[str] | None = None) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
         .public_key(public).serial_number(serial or x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
         .add_extension(_usage(ca), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),
                        critical=False))
    if uris:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
    return b.sign(signer, hashes.SHA256())


@dataclass
class DeviceIdentity:
    """What a Uone device leaves the factory with."""

    did: str
    mac: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    intermediates: list[x509.Certificate] = field(default_factory=list)

    @property
    def chain_der(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER)
                for c in (self.cert, *self.intermediates)]

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.cert, *self.intermediates))


@dataclass
class FactoryPKI:
    """Root (PAA) and one intermediate (PAI) that issue device certificates."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    pai_key: ec.EllipticCurvePrivateKey
    pai: x509.Certificate

    @classmethod
    def create(cls, name: str = "Uone Test", now: dt.datetime | None = None) -> FactoryPKI:
        now = now or dt.datetime.now(dt.UTC)
        rk = ec.generate_private_key(ec.SECP256R1())
        pk = ec.generate_private_key(ec.SECP256R1())
        start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=3650)
        root = _cert(f"{name} PAA", _name(f"{name} PAA"), rk.public_key(), rk, rk.public_key(),
                     ca=True, path_length=1, not_before=start, not_after=end)
        pai = _cert(f"{name} PAI", root.subject, pk.public_key(), rk, rk.public_key(),
                    ca=True, path_length=0, not_before=start, not_after=end)
        return cls(rk, root, pk, pai)

    def issue(self, did: str, mac: str, *, key: ec.EllipticCurvePrivateKey | None = None,
              cert_key: ec.EllipticCurvePublicKey | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              serial: int | None = None, uris: list[str] | None = None) -> DeviceIdentity:
        """A device certificate for `did`/`mac`; `cert_key` certifies another key (a fault)."""
        now = dt.datetime.now(dt.UTC)
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = _cert(
            f"Uone device {did}", self.pai.subject, cert_key or key.public_key(), self.pai_key,
            self.pai_key.public_key(), ca=False, path_length=None,
            not_before=not_before or now - dt.timedelta(days=1),
            not_after=not_after or now + dt.timedelta(days=3650), serial=serial,
            uris=uris if uris is not None else [f"{DID_URI}{did}", f"{MAC_URI}{mac.lower()}"])
        return DeviceIdentity(did, mac.lower(), key, cert, [self.pai])

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def crl(self, serials: list[int]) -> bytes:
        """A CRL from the PAI revoking device certificates with these serials (PEM)."""
        now = dt.datetime.now(dt.UTC)
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.pai.subject)
             .last_update(now - dt.timedelta(hours=1)).next_update(now + dt.timedelta(days=30)))
        for s in serials:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(s)
                .revocation_date(now - dt.timedelta(hours=1)).build())
        return b.sign(self.pai_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def sign_challenge(key: ec.EllipticCurvePrivateKey, nonce: bytes, hub_id: str) -> bytes:
    """The device side of attestation: ECDSA P-256 over the challenge, raw r||s (64 bytes)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    der = key.sign(b"uone-attest-v1\0" + nonce + hub_id.encode("utf-8"),
                   ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
