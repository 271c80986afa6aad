"""Integrations: loaded by name, isolated when they fail, restarted with backoff."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hub import loader
from hub.hub import Hub
from hub.manifests import ManifestError, parse_manifest, read_manifests


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "BACKOFF_START", 0.02)


async def test_virtual_devices_registered_with_state(hub: Hub) -> None:
    assert {d.id for d in hub.devices} == {
        "virtual.lamp", "virtual.button", "virtual.temp", "virtual.motion"}
    assert hub.states.value("virtual.temp", "value") == 20.0
    assert hub.states.available("virtual.lamp") is True
    assert hub.integrations.status()["virtual"]["state"] == "loaded"


async def test_failing_setup_is_retried_with_backoff(config_factory, fast_backoff) -> None:
    cfg = config_factory({"integrations": {"virtual": {
        "devices": [{"id": "s", "kind": "switch"}], "faults": {"fail_setup": 2}}}})
    async with Hub(cfg) as hub:
        status = hub.integrations.status()["virtual"]
        assert status["state"] == "retrying" and "on purpose" in status["error"]
        assert (await hub.health())["status"] == "degraded"
        await _wait_for(lambda: hub.integrations.loaded("virtual"))
        assert hub.integrations.status()["virtual"]["restarts"] == 2
        assert "virtual.s" in hub.devices
        assert (await hub.health())["status"] == "ok"


async def test_crashing_task_unloads_and_restarts(config_factory, fast_backoff) -> None:
    cfg = config_factory({"integrations": {"virtual": {
        "devices": [{"id": "s", "kind": "switch"}], "faults": {"crash_after": 0.05}}}})
    async with Hub(cfg) as hub:
        await _wait_for(lambda: hub.integrations.status()["virtual"]["restarts"] >= 2)
        # the hub itself keeps running and answers
        assert hub.running
        assert "crashing on purpose" in (hub.integrations.status()["virtual"]["error"] or "")


async def test_command_to_unloaded_integration_is_503(config_factory, fast_backoff) -> None:
    from hub.errors import DeviceUnavailable

    cfg = config_factory({"integrations": {"virtual": {
        "devices": [{"id": "s", "kind": "switch"}], "faults": {"fail_setup": 1000}}}})
    async with Hub(cfg) as hub:
        # the device is known from an earlier run? Not here: register it by hand
        from hub.devices import CommandSpec, Device

        hub.devices.add(Device("virtual.s", "s", "virtual", commands=(CommandSpec("toggle"),)))
        with pytest.raises(DeviceUnavailable):
            await hub.integrations.command("virtual.s", "toggle", {})


def test_manifests_are_valid_json_schema() -> None:
    import jsonschema

    manifests = read_manifests()
    assert "virtual" in manifests
    for manifest in manifests.values():
        jsonschema.Draft202012Validator.check_schema(manifest.config_schema)


def test_bad_manifest_is_rejected(tmp_path: Path) -> None:
    d = tmp_path / "thing"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"name": "other", "version": "1"}))
    with pytest.raises(ManifestError, match="folder name"):
        parse_manifest(d / "manifest.json")
    (d / "manifest.json").write_text(json.dumps({"name": "thing", "mdns": ["http"]}))
    with pytest.raises(ManifestError, match="mDNS service type"):
        parse_manifest(d / "manifest.json")


async def test_restarts_wait_on_the_hub_clock_and_log_once(config_factory, caplog) -> None:
    """The integration restart is a ReconnectLoop on the injected clock: no retry before the
    clock moves, one warning (with the traceback) for the outage, one line for the recovery."""
    import logging

    from hub.clock import ManualClock

    caplog.set_level(logging.DEBUG, logger="hub.loader")
    clock = ManualClock()
    cfg = config_factory({"integrations": {"virtual": {
        "devices": [{"id": "s", "kind": "switch"}], "faults": {"fail_setup": 3}}}})
    async with Hub(cfg, clock=clock) as hub:
        assert hub.integrations.status()["virtual"]["restarts"] == 1
        await clock.settle(100)  # the loop runs, the hub's clock stays: no retry
        assert hub.integrations.status()["virtual"]["restarts"] == 1
        for step in (1.0, 2.0, 4.0):  # the backoff's nominal waits (jitter only shortens)
            await clock.advance(step)
        assert hub.integrations.loaded("virtual")
        assert hub.integrations.status()["virtual"]["restarts"] == 3
    records = [r for r in caplog.records if r.name == "hub.loader"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failing setup on purpose" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None
    assert [r.getMessage() for r in records if "up again" in r.getMessage()] == [
        "integration virtual: up again"]
