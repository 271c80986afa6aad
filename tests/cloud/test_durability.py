"""Nothing lost, nothing applied twice: broker restarted mid-stream, hub killed -9 mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cloud.crypto import Pairing
from tests.cloud.conftest import (
    PHONE_KEY,
    SYNC_KEY,
    cloud_section,
    history_values,
    pairing_for,
    peer,
    secrets,
)
from tests.cloud.test_sync import wait_until
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def applied_values(phone, device_id: str = "virtual.temp") -> list:
    return [b["value"] for b in phone.applied
            if b["type"] == "state" and b["device"] == device_id and b["value"] >= 1000]


async def test_broker_restart_mid_stream_loses_nothing(broker, make_hub):
    hub = make_hub(cloud_section(broker, categories=["states"]))
    async with hub:
        pairing = pairing_for(hub)
        phone = peer(broker, pairing, identifier="phone-restart")
        await phone.__aenter__()
        try:
            await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)

            async def generate() -> None:
                for i in range(600):
                    hub.states.set("virtual.temp", {"value": 1000 + i})
                    await asyncio.sleep(0.004)

            gen = asyncio.create_task(generate())
            await asyncio.sleep(0.6)
            broker.stop()  # mid-stream
            await wait_until(lambda: not hub.cloud.connected)
            await asyncio.sleep(0.8)
            waiting = hub.cloud.outbox.depth
            broker.start()
            await gen
            await phone.__aexit__(None, None, None)
            await phone.__aenter__()  # the same persistent session: queued messages follow
            try:
                await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0, 20)
            except TimeoutError:
                print(hub.cloud.status())
                raise
            await hub.db.write_script([])
            expected = [v for v in history_values(hub.db.path, "virtual.temp", "value")
                        if v >= 1000]
            assert expected == list(range(1000, 1600))
            await phone.wait_for(lambda: len(applied_values(phone)) >= len(expected), 20)
            assert applied_values(phone) == expected  # all, in order, each once
            assert waiting > 0  # there really was a backlog while the broker was down
            assert hub.cloud.connects >= 2
        finally:
            await phone.__aexit__(None, None, None)


@pytest.mark.slow
async def test_hub_killed_mid_stream_loses_nothing(broker, tmp_path):
    cfg = write_config(tmp_path, {"cloud": cloud_section(broker, categories=["states"],
                                                         remote_clients={})})
    env = dict(os.environ, PYTHONPATH=str(ROOT), UONE_TEST_SECRETS=json.dumps(
        secrets().values))
    total = 3000

    def spawn(count: int) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tests.cloud.hub_proc", str(cfg),
                                 str(count)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

    async def read_until(proc: subprocess.Popen[str], prefix: str, check, within: float = 20):
        async with asyncio.timeout(within):
            while True:
                line = await asyncio.to_thread(proc.stdout.readline)
                if not line:
                    raise AssertionError(f"hub process ended (rc={proc.poll()})")
                if line.startswith(prefix) and check(line.split()):
                    return line.split()

    proc = spawn(total)
    try:
        hub_id = (await read_until(proc, "hub_id", lambda w: True))[1]
        import base64

        pairing = Pairing(hub_id, "uone", base64.b64decode(SYNC_KEY), "phone",
                          base64.b64decode(PHONE_KEY))
        async with peer(broker, pairing, identifier="phone-kill") as phone:
            (tmp_path / "GO").write_text("go")
            await read_until(proc, "set", lambda w: int(w[1]) >= 1000 + total // 3)
            proc.kill()  # SIGKILL: no goodbye, no final commit
            proc.wait(5)
            proc.stdout.close()
            import sqlite3

            conn = sqlite3.connect(f"file:{tmp_path / 'data' / 'hub.db'}?mode=ro", uri=True)
            left = conn.execute("SELECT COUNT(*) FROM cloud_outbox").fetchone()[0]
            conn.close()
            proc = spawn(0)
            await read_until(proc, "depth", lambda w: w[1] == "0" and w[3] == "1")
            expected = [v for v in history_values(tmp_path / "data" / "hub.db",
                                                  "virtual.temp", "value") if v >= 1000]
            assert 0 < len(expected) < total  # killed mid-stream
            assert expected == list(range(1000, 1000 + len(expected)))
            await phone.wait_for(lambda: len(applied_values(phone)) >= len(expected), 20)
            await asyncio.sleep(0.3)
            got = applied_values(phone)
            assert got == expected, (len(got), len(expected), left, phone.duplicates)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    print(f"killed with {left} messages waiting; duplicates dropped: {phone.duplicates}")


