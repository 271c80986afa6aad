"""`python -m integrations.uone.simulator` as its own process: the hub provisions it through
the fake BlueZ, then reaches it on the LAN (mDNS in the test namespace)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.hub import Hub
from tests.provisioning.conftest import needs_netns, uone_settings

pytestmark = needs_netns
ROOT = Path(__file__).resolve().parents[2]
DID = "uone-00000000000000c3"
MAC = "24:0a:c4:00:00:c3"


@pytest.fixture
def hub_config(tmp_path: Path) -> dict[str, Any]:
    return uone_settings(tmp_path / "pki" / "root.pem")


async def test_simulator_process_end_to_end(tmp_path: Path, fake_bluez, config_factory,
                                            hub_config: dict[str, Any]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integrations.uone.simulator", "--pki-dir",
        str(tmp_path / "pki"), "--did", DID, "--mac", MAC, "--join-delay", "0.05",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert ready["event"] == "ready" and ready["did"] == DID
        assert (tmp_path / "pki" / "root.pem").exists()  # the hub's trust anchor
        async with Hub(config_factory(hub_config)) as hub:
            await hub.provisioning.wifi.put("Home", "correct-horse-battery", "wpa2-psk")
            item = None
            for _ in range(500):
                item = next((d for d in hub.discovery.registry
                             if d.did == DID and d.source == "ble"), None)
                if item:
                    break
                await asyncio.sleep(0.02)
            assert item is not None
            job = await hub.provisioning.start_job(
                hub.provisioning.target_for(item.id), "Home", "test")
            await asyncio.wait_for(job.done.wait(), 40)
            assert job.state == "succeeded", job.to_json()
            result = await hub.integrations.command(job.device_id, "turn_on", {})
            assert result["on"] is True
        events = []
        while len(events) < 10:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 2)
            except TimeoutError:
                break
            if not line:
                break
            events.append(json.loads(line)["event"])
        assert {"wifi_received", "lan_up", "joined", "command"} <= set(events)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
