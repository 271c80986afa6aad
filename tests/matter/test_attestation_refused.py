"""A device whose attestation the CHIP SDK refuses: its DAC chains to a PAA (the Matter test
PAA matter.js devices use) that is not in the server's local PAA set, which holds only
another maker's root. The job ends `failed` naming the check that failed."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.doubles import matter
from tests.matter.conftest import commission


def _foreign_paa(directory: Path) -> None:
    """A PAA set with one self-signed root of another maker (not the Matter test PAA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Maker PAA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True)
    (directory / "other-maker-paa.der").write_bytes(cert.public_bytes(Encoding.DER))
    (directory / ".version").write_text("1")


@pytest.fixture
async def server(matter_parts, tmp_path, lan):
    """The server of this module's hub: its PAA set lacks the root of matter.js devices."""
    paa = tmp_path / "foreign-paa"
    _foreign_paa(paa)
    srv = matter.MatterServer(matter_parts[0], tmp_path / "server", paa)
    async with matter.running(srv):
        yield srv


async def test_device_chaining_to_an_unknown_paa_is_refused_with_the_reason(
        hub, server, make_device, api_client) -> None:
    light = make_device("onoff")
    await light.start()
    try:
        job = await commission(api_client, light.manual_code, within=120)
    finally:
        await light.stop()
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "attestation_failed"
    assert "is not among the PAA roots imported" in job["error"]["message"]
    assert job["attestation"]["outcome"] == "failed"
    assert job["attestation"]["code"] == "paa_not_found"
    assert "AttestationVerificationResult 101" in job["attestation"]["reason"]
    assert hub.devices.by_integration("matter") == []
    steps = [h["state"] for h in job["history"]]
    assert steps[-1] == "failed" and "attested" not in steps


def test_every_sdk_result_maps_to_a_failed_outcome_naming_the_check(tmp_path) -> None:
    from integrations.matter.attestation import refusal, refusal_in_log

    assert refusal(301).code == "dac_chain_invalid" and "DAC chain" in refusal(301).reason
    assert refusal(302).code == "dac_revoked"
    assert refusal(602).code == "cd_invalid_signature"
    assert "certification declaration" in refusal(602).reason
    assert refusal(999).code == "attestation_error_999"
    assert all(refusal(n).outcome == "failed" for n in (100, 207, 306, 401, 503, 606))
    log = tmp_path / "server.log"
    old = "Failed in verifying 'Attestation Information' command received from the device: err 104."
    log.write_text(old + "\n")
    mark = log.stat().st_size
    assert refusal_in_log(log, mark) is None  # an earlier attempt's refusal is not this one's
    with log.open("a") as f:
        f.write("CHIP_ERROR [chip.native.CTL] Failed in verifying 'Attestation Information' "
                "command received from the device: err 300. Look at ...\n")
    assert refusal_in_log(log, mark).code == "dac_expired"
    log.write_text("rotated\n")  # smaller than the mark: read from its start
    assert refusal_in_log(log, mark) is None
