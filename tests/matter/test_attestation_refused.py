"""A device whose attestation the CHIP SDK refuses: its DAC chains to a PAA (the Matter test
PAA matter.js devices use) that is not in the server's local PAA set, which holds only
another maker's root. The job ends `failed` naming the check that failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from hub.cli import EXIT_OK, main
from tests.doubles import matter
from tests.matter.conftest import certificate, commission


def _foreign_paa(directory: Path, download: Path) -> None:
    """A PAA set imported as the docs say (`uone-hub matter import-paa`) from a download that
    holds one root of another maker, not the Matter test PAA."""
    root, _ = certificate("Other Maker PAA", ca=True)
    download.mkdir()
    (download / "other-maker-paa.der").write_bytes(root.public_bytes(Encoding.DER))
    assert main(["matter", "import-paa", str(download), "--to", str(directory)]) == EXIT_OK


@pytest.fixture
async def server(matter_parts, tmp_path, lan):
    """The server of this module's hub: its PAA set lacks the root of matter.js devices."""
    paa = tmp_path / "foreign-paa"
    _foreign_paa(paa, tmp_path / "download")
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
