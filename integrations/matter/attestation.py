"""A commissioned node's attestation, mapped onto the hub's trust levels.

The CHIP SDK already refused any device whose DAC -> PAI -> PAA chain does not end at one of
the PAA roots the owner imported (`uone-hub matter import-paa`); a node that exists passed
that check. The hub then reads the DAC and PAI back from the node (OperationalCredentials
CertificateChainRequest), checks the DAC -> PAI link and the dates itself, and says:

- `verified`: the chain holds and ends at a production PAA;
- `unverified`: it holds but is a development chain (test vendor id 0xFFF1-0xFFF4, or the
  Matter Test PAA): anyone can make such a device;
- `failed`: the node's certificates do not hold together, are out of date or unreadable.

A device the SDK refuses never becomes a node, and the server's answer does not say why
("Commission with code failed"). Its log does (the SDK's AttestationVerificationResult
code): `refusal_in_log` reads what the server logged during the attempt and `refusal` maps
that code onto a `failed` outcome naming the check.
"""

from __future__ import annotations

import base64
import datetime
import re
from pathlib import Path
from typing import Any

from hub.facade import Attestation

OPERATIONAL_CREDENTIALS = 62
DAC, PAI = 1, 2
VENDOR_ID_OID = "1.3.6.1.4.1.37244.2.1"
TEST_VENDORS = range(0xFFF1, 0xFFF5)
DEFAULT_LOG = Path("/var/log/uone-matter/server.log")
_REFUSED = re.compile(r"Failed in verifying '[^']*' command received from the device: "
                      r"err (\d+)")
_PARTS = {1: ("paa", "the PAA (the maker's root certificate)"),
          2: ("pai", "the PAI (the maker's intermediate certificate)"),
          3: ("dac", "the device's own certificate (DAC)"),
          4: ("firmware", "the firmware information"),
          5: ("attestation", "the device's attestation signature"),
          6: ("cd", "the certification declaration")}
# the CHIP SDK's AttestationVerificationResult (credentials/DeviceAttestationVerifier.h)
_RESULTS = {
    100: ("untrusted", "is not trusted"),
    101: ("not_found", "is not among the PAA roots imported on this hub (uone-hub matter "
          "import-paa): an unknown maker, or a PAA set without it"),
    102: ("expired", "has expired"), 103: ("signature_invalid", "has an invalid signature"),
    104: ("revoked", "is revoked"), 105: ("format_invalid", "is malformed"),
    106: ("argument_invalid", "is malformed"),
    200: ("expired", "has expired"), 201: ("signature_invalid", "is not signed by its PAA"),
    202: ("revoked", "is revoked"), 203: ("format_invalid", "is malformed"),
    204: ("argument_invalid", "is malformed"),
    205: ("vendor_id_mismatch", "names another vendor than its PAA"),
    206: ("authority_not_found", "has no known issuer"), 207: ("missing", "is missing"),
    300: ("expired", "has expired"),
    301: ("chain_invalid", "does not chain to its PAI and PAA (the DAC chain is invalid)"),
    302: ("revoked", "is revoked"), 303: ("format_invalid", "is malformed"),
    304: ("argument_invalid", "is malformed"),
    305: ("vendor_id_mismatch", "names another vendor than the device reports"),
    306: ("product_id_mismatch", "names another product than the device reports"),
    307: ("authority_not_found", "has no known issuer"),
    400: ("mismatch", "does not match"), 401: ("missing", "is missing"),
    500: ("invalid", "is invalid"), 501: ("malformed", "is malformed"),
    502: ("nonce_mismatch", "answers another challenge (nonce mismatch)"),
    503: ("invalid_format", "is malformed"),
    600: ("no_key_id", "names no signing key"),
    601: ("unknown_signer", "is signed by a key this hub does not know"),
    602: ("invalid_signature", "has an invalid signature"),
    603: ("invalid_format", "is malformed"),
    604: ("invalid_vendor_id", "is for another vendor"),
    605: ("invalid_product_id", "is for another product"),
    606: ("invalid_paa", "does not allow this PAA"),
}


async def attest(client: Any, node_id: int, now: float) -> Attestation:
    try:
        dac_der = await _certificate(client, node_id, DAC)
        pai_der = await _certificate(client, node_id, PAI)
    except Exception as exc:  # any failure to read is a failed attestation, with why
        return Attestation("failed", "unreadable", f"could not read the device's "
                           f"certificates: {exc}")
    return check_chain(dac_der, pai_der, now)


def check_chain(dac_der: bytes, pai_der: bytes, now: float) -> Attestation:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        dac = x509.load_der_x509_certificate(dac_der)
        pai = x509.load_der_x509_certificate(pai_der)
    except ValueError:
        return Attestation("failed", "malformed", "the device's certificates are not X.509")
    try:
        dac.verify_directly_issued_by(pai)
    except Exception:  # several exception kinds for a wrong issuer or signature
        return Attestation("failed", "chain_broken", "the device's DAC is not signed by its PAI")
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    for name, cert in (("DAC", dac), ("PAI", pai)):
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            return Attestation("failed", "expired", f"the device's {name} is not valid now")
    serial = f"{dac.serial_number:x}"
    key = dac.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    not_after = dac.not_valid_after_utc.timestamp()
    vendor = _vendor_id(dac)
    issuer = pai.issuer.rfc4514_string()
    if (vendor is not None and vendor in TEST_VENDORS) or "Test PAA" in issuer:
        return Attestation("unverified", "development_device",
                           f"development device: test vendor id {vendor:#06x}" if vendor
                           else f"development device: chains to {issuer}", serial=serial,
                           not_after=not_after, public_key=key)
    return Attestation("verified", None, f"DAC chains to the PAA {issuer} (vendor "
                       f"{vendor:#06x})" if vendor else f"DAC chains to the PAA {issuer}",
                       serial=serial, not_after=not_after, public_key=key)


def refusal(result: int) -> Attestation:
    """The hub's `failed` outcome for the SDK's AttestationVerificationResult code."""
    part = _PARTS.get(result // 100)
    known = _RESULTS.get(result)
    if part is None or known is None:
        return Attestation("failed", f"attestation_error_{result}", "the Matter SDK refused "
                           f"the device's attestation (AttestationVerificationResult {result})")
    return Attestation("failed", f"{part[0]}_{known[0]}", f"the device failed attestation: "
                       f"{part[1]} {known[1]} (AttestationVerificationResult {result})")


def log_size(path: Path) -> int:
    """Where the server's log ends now (0 if absent): read from here after an attempt."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def refusal_in_log(path: Path, since: int) -> Attestation | None:
    """The attestation refusal the server logged after byte `since` (blocking: a thread).

    Raises OSError when the log cannot be read. A log rotated meanwhile (smaller than
    `since`) is read from its start."""
    from integrations.matter.serverlog import read_since

    return refusal_in_text(read_since(path, since))


def refusal_in_text(text: str) -> Attestation | None:
    """The attestation refusal in lines of the server's log, if any."""
    found = _REFUSED.search(text)
    return refusal(int(found.group(1))) if found else None


async def _certificate(client: Any, node_id: int, kind: int) -> bytes:
    answer = await client.device_command(node_id, 0, OPERATIONAL_CREDENTIALS,
                                         "CertificateChainRequest", {"certificateType": kind})
    value = answer.get("certificate") if isinstance(answer, dict) else None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return base64.b64decode(value)
    raise ValueError("no certificate in the answer")


def _vendor_id(cert: Any) -> int | None:
    from cryptography import x509

    for attr in cert.subject:
        if attr.oid == x509.ObjectIdentifier(VENDOR_ID_OID):
            try:
                return int(str(attr.value), 16)
            except ValueError:
                return None
    return None
