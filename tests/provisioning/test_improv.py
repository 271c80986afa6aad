"""Improv Wi-Fi through py-improv-ble-client and real bleak against an Improv device double
on the fake BlueZ: authorization (button) with a timeout, every error code, the redirect
URL, and the API saying the password travels unencrypted."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from improv_ble_client.protocol import Error

from hub.hub import Hub
from hub.provisioning.improv import IMPROV_ERRORS
from hub.provisioning.jobs import ProvisionTarget
from tests.provisioning.improv_device import ImprovDevice

SSID, PASSWORD = "Home-Net", "correct-horse-battery"
ADDRESS = "A4:C1:38:55:00:01"


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"provisioning": {"ble_timeout": 10.0, "authorization_timeout": 5.0},
            "integrations": {"virtual": {"devices": []}, "improv": {}}}


@pytest.fixture
async def improv(hub: Hub, fake_bluez):
    """`await improv(**device_kw)`: an Improv device double and a job provisioning it."""
    devices: list[ImprovDevice] = []

    async def start(**kw: Any) -> tuple[ImprovDevice, Any]:
        await hub.provisioning.wifi.put(SSID, PASSWORD, "wpa2-psk")
        device = ImprovDevice(fake_bluez, ADDRESS, **kw)
        devices.append(device)
        await device.start()
        job = await hub.provisioning.start_job(
            ProvisionTarget("ble-a4c138550001", "improv", ADDRESS, name="esphome-plug"),
            SSID, "test")
        return device, job

    yield start
    for device in devices:
        await device.stop()


async def _wait_state(job, state: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.02)):
        if job.state == state or job.state in ("succeeded", "failed"):
            return
        await asyncio.sleep(0.02)


async def test_improv_with_button_press_and_redirect(
        hub: Hub, improv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    device, job = await improv()
    assert job.encrypted is False and "unencrypted" in job.warnings[0]
    await _wait_state(job, "authorization_required")
    assert job.state == "authorization_required"
    assert "Press the button" in job.history[-1]["message"]
    assert device.received == []  # nothing sent before the button
    await device.press_button()
    await asyncio.wait_for(job.done.wait(), 20)
    assert job.state == "succeeded", job.to_json()
    assert job.redirect_url == "http://10.99.0.5/setup"
    assert job.attestation.outcome == "unverified"
    assert device.received == [(SSID, PASSWORD)]
    body = job.to_json()
    assert body["encrypted"] is False and PASSWORD not in json.dumps(body)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logs and PASSWORD.encode().hex() not in logs
    states = [h["state"] for h in job.history]
    assert states == ["pending", "connecting", "authorization_required",
                      "sending_credentials", "joining_wifi", "succeeded"]


async def test_improv_without_button(hub: Hub, improv) -> None:
    device, job = await improv(needs_button=False, redirect_url=None)
    await asyncio.wait_for(job.done.wait(), 20)
    assert job.state == "succeeded" and job.redirect_url is None
    assert device.received == [(SSID, PASSWORD)]
    assert "authorization_required" not in [h["state"] for h in job.history]


async def test_nobody_presses_the_button(hub: Hub, improv) -> None:
    device, job = await improv()
    await asyncio.wait_for(job.done.wait(), 20)
    assert job.state == "failed" and job.error["code"] == "authorization_timeout"
    assert "button" in job.error["message"] and device.received == []
    assert job.credentials_sent is False


@pytest.mark.parametrize("error", [Error.INVALID_RPC_PACKET, Error.UNKNOWN_RPC_COMMAND,
                                   Error.UNABLE_TO_CONNECT, Error.NOT_AUTHORIZED,
                                   Error.BAD_HOSTNAME, Error.UNKNOWN_ERROR])
async def test_every_improv_error_is_a_clear_failure(hub: Hub, improv,
                                                     error: Error) -> None:
    device, job = await improv(needs_button=False, error=error)
    await asyncio.wait_for(job.done.wait(), 20)
    assert job.state == "failed", job.to_json()
    code, message = IMPROV_ERRORS[int(error)]
    assert job.error["code"] == code
    assert job.error["message"].startswith(message)
    assert f"Improv error {int(error)}" in job.error["message"]
    assert hub.devices.by_integration("improv") == []
    assert device.received == [(SSID, PASSWORD)] and job.credentials_sent is True



class TestThroughTheApi:
    @pytest.fixture
    def hub_config(self) -> dict[str, Any]:
        return {"provisioning": {"ble_timeout": 10.0, "authorization_timeout": 5.0},
                "discovery": {"ble": {"enabled": True}},
                "integrations": {"virtual": {"devices": []}, "improv": {}}}

    async def test_api_job_says_unencrypted(self, fake_bluez, api_client, hub: Hub) -> None:
        resp = await api_client.put(f"/api/wifi/networks/{SSID}", json={"password": PASSWORD})
        assert resp.status == 200
        device = ImprovDevice(fake_bluez, ADDRESS, needs_button=False)
        await device.start()
        try:
            item = None
            for _ in range(500):
                listing = (await (await api_client.get("/api/discovered")).json())["discovered"]
                item = next((d for d in listing if d["integration"] == "improv"), None)
                if item:
                    break
                await asyncio.sleep(0.02)
            assert item is not None, "the shared scanner did not list the Improv device"
            resp = await api_client.post(f"/api/discovered/{item['id']}/provision",
                                         json={"ssid": SSID})
            assert resp.status == 202, await resp.text()
            job = await resp.json()
            assert job["kind"] == "improv" and job["encrypted"] is False
            assert "unencrypted" in job["warnings"][0]
            for _ in range(500):
                job = await (await api_client.get(f"/api/provisioning/{job['id']}")).json()
                if job["state"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.02)
            assert job["state"] == "succeeded", job
            assert job["redirect_url"] == "http://10.99.0.5/setup"
            assert job["attestation"]["outcome"] == "unverified"
        finally:
            await device.stop()


async def test_one_job_per_device_and_stop_ends_jobs_cleanly(hub: Hub, improv) -> None:
    from hub.errors import Conflict

    device, job = await improv()
    await _wait_state(job, "authorization_required")
    with pytest.raises(Conflict, match="already being provisioned"):
        await hub.provisioning.start_job(job.target, SSID, "test")
    await hub.provisioning.stop()  # what the hub does at shutdown
    assert job.state == "failed" and job.error["code"] == "cancelled"
    assert device.received == []
