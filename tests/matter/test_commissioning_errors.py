"""Commissioning that does not end with a device says why: a device that does not answer is
`not_found` (apart from a wrong code: tests/matter/test_devices.py), read from the server's
log as the attestation refusals are; and a commissioning the hub stopped waiting for, which
the server finishes later, does not bring a device in unattested."""

from __future__ import annotations

import pytest

from hub.bus import DeviceRegistryChanged
from integrations.matter import CommissionError
from integrations.matter.serverlog import failure
from tests.matter.conftest import commission, wait_until
from tests.matter.test_devices import _manual_code

# the server's log lines (ANSI colours removed) of real attempts against a matter.js device
WRONG = (
    "INFO [matter_server.server.device_controller] Starting Matter commissioning "
    "with code using Node ID 1.\n"
    "CHIP_ERROR [chip.native.SC] Failed to verify peer's MAC. This can happen when "
    "setup code is incorrect.\n"
    "CHIP_ERROR [chip.native.SC] Failed during PASE session setup: "
    "src/crypto/CHIPCryptoPALOpenSSL.cpp:1444: CHIP Error 0x000000AC: Internal "
    "error\n"
    "CHIP_ERROR [chip.native.CTL] Discovery timed out\n"
    "CHIP_ERROR [chip.native.ZCL] Secure Pairing Failed\n"
    "ERROR [matter_server.server.client_handler] [1] Error while handling: "
    "commission_with_code: Commission with code failed for node 1.\n"
)
CLOSED = (
    "CHIP_ERROR [chip.native.SC] Received error (protocol code 2) during PASE "
    "process: src/protocols/secure_channel/PASESession.cpp:781: CHIP Error "
    "0x00000038: Invalid PASE parameter\n"
    "CHIP_ERROR [chip.native.SC] Failed during PASE session setup: "
    "src/protocols/secure_channel/PASESession.cpp:781: CHIP Error 0x00000038: "
    "Invalid PASE parameter\n"
    "CHIP_ERROR [chip.native.CTL] Discovery timed out\n"
)
ABSENT = (
    "INFO [matter_server.server.device_controller] Starting Matter commissioning "
    "with code using Node ID 2.\n"
    "CHIP_ERROR [chip.native.CTL] Discovery timed out\n"
    "CHIP_ERROR [chip.native.ZCL] Secure Pairing Failed\n"
    "WARNING [chip.ChipDeviceCtrl] Failed to establish secure session to device: "
    "src/controller/python/ChipDeviceController-ScriptDevicePairingDelegate.cpp:96:"
    " CHIP Error 0x00000003: Incorrect state\n"
    "ERROR [matter_server.server.client_handler] [1] Error while handling: "
    "commission_with_code: Commission with code failed for node 2.\n"
)
REFUSED = ("CHIP_ERROR [chip.native.CTL] Failed in verifying 'Attestation Information' command "
           "received from the device: err 101. Look at ...\n")


def test_each_failure_has_its_own_reason() -> None:
    said = "Commission with code failed for node 1."
    assert failure(WRONG, said).code == "wrong_code"
    assert failure(CLOSED, said).code == "pairing_refused"
    assert failure(ABSENT, said).code == "not_found"
    refused = failure(REFUSED + ABSENT, said)
    assert refused.code == "attestation_failed" and refused.attestation is not None
    assert refused.attestation["code"] == "paa_not_found"
    other = failure("INFO nothing the hub knows\n", said)
    assert other.code == "commission_failed" and said in other.message


async def test_a_device_that_does_not_answer(hub, api_client) -> None:
    """A well-formed code for a device that is not running: `not_found`, not a timeout."""
    absent = _manual_code(passcode=20202021, discriminator=3999)
    job = await commission(api_client, absent, within=120)
    assert job["state"] == "failed"
    assert job["error"]["code"] == "not_found", job["error"]
    assert "did not answer" in job["error"]["message"]
    assert hub.devices.by_integration("matter") == []


async def test_a_device_joining_after_the_timeout_is_attested_before_it_is_added(
        hub, make_device) -> None:
    matter = hub.integrations.instance("matter")
    matter.commission_timeout = 0.05  # the hub stops waiting; the server goes on
    added: list[tuple[str, bool]] = []  # (device id, its attestation known when added)

    def on(event: DeviceRegistryChanged) -> None:
        if event.action == "added":
            node_id = int(event.device_id.removeprefix("matter-"))
            added.append((event.device_id, node_id in matter.attestations))

    unsubscribe = hub.bus.subscribe(DeviceRegistryChanged, on)
    light = make_device("onoff")
    await light.start()
    try:
        with pytest.raises(CommissionError) as failed:
            await matter.commission(light.manual_code, lambda *_: None)
        assert failed.value.code == "timeout"
        assert "checks its attestation" in str(failed.value)
        await wait_until(lambda: added, 60)  # the server finished: the node joined
        [(device_id, attested)] = added
        assert attested  # not registered before its attestation was checked and kept
        device = hub.devices.get(device_id)
        assert matter.attestation(device)["outcome"] == "unverified"
        assert matter.attestation(device)["code"] == "development_device"
    finally:
        unsubscribe()
        await light.stop()
