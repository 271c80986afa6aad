"""A commissioned node's attestation, mapped onto the hub's trust levels.

The CHIP SDK already refused any device whose DAC -> PAI -> PAA chain does not end at one of
the PAA roots the owner imported (`uone-hub matter import-paa`); a node that exists passed
that check. The hub then reads the DAC and PAI back from the node (OperationalCredentials
CertificateChainRequest), checks the DAC -> PAI link and the dates itself, and says:

- `verified`: the chain holds and ends at a production PAA;
- `unverified`: it holds but is a development chain (test vendor id 0xFFF1-0xFFF4, or the
  Matter Test PAA): anyone can make such a device;
- `failed`: the node's certificates do not hold together, are out of date or unreadable.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from hub.facade import Attestation

OPERATIONAL_CREDENTIALS = 62
DAC, PAI = 1, 2
VENDOR_ID_OID = "1.3.6.1.4.1.37244.2.1"
TEST_VENDORS = range(0xFFF1, 0xFFF5)


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
