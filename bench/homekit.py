"""HomeKit benchmarks: pairing time, accessory write/event -> hub state, phone -> hub state.

    sudo /work/venv/bin/python -m bench.homekit          (from the repo root)

Runs in a fresh network namespace with only `lo` (it re-executes itself there; needs root),
so nothing multicasts on a real interface. The accessory is HAP-python in its own process
(tests/homekit/hap_accessory.py, a lightbulb); the hub runs in this process with the
homekit_controller integration and the bridge; the phone is aiohomekit with its own
zeroconf, as in tests/homekit/test_bridge.py.

1. Pairing: POST-equivalent adoption with the setup code (SRP-3072 + Ed25519 exchange, then
   the first read of the accessory), then removal (unpairs) and again.
2. Hub command (set_brightness) -> accessory -> acknowledged -> hub state.
3. A change on the accessory -> HAP event -> hub state (includes the harness's pipe to the
   accessory process). HAP-python holds events for up to 0.5 s to coalesce them
   (EVENT_COALESCE_TIME_WINDOW): that, not the hub, is most of this figure.
4. The phone writes On through the hub's bridge -> hub command -> virtual switch state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    free_port,
    in_private_netns,
    percentile,
    run_in_private_netns,
    table,
)

PIN = "031-45-154"
PAIRINGS = 5
WRITES = 200


async def _accessory(port: int, statedir: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.homekit.hap_accessory", "light", "127.0.0.1", str(port),
        PIN, statedir, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    return proc, ready["id"].lower()


async def _send(proc: asyncio.subprocess.Process, **cmd: Any) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(cmd) + "\n").encode())
    await proc.stdin.drain()
    return json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))


async def _until(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


def _state_waiter(hub: Any, device_id: str, attribute: str, value: Any) -> asyncio.Future[None]:
    from hub.bus import StateChanged

    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on(event: StateChanged) -> None:
        if event.attribute == attribute and event.new == value and not fut.done():
            fut.set_result(None)

    undo = hub.bus.subscribe(StateChanged, on, key=device_id)
    fut.add_done_callback(lambda _f: undo())
    return fut


async def run() -> list[tuple[str, str, str]]:
    import yaml

    from hub.config import load_config
    from hub.hub import Hub

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            "data_dir": f"{tmp}/data", "log_level": "error",
            "api": {"host": "127.0.0.1", "port": 0},
            "storage": {"commit_interval": 1.0},
            "discovery": {"mdns": {"enabled": True, "interfaces": ["lo"], "advertise": False,
                                   "interface_check": 5.0}, "ble": {"enabled": False}},
            "homekit_bridge": {"enabled": True, "port": free_port(),
                               "devices": ["virtual.lamp"]},
            "integrations": {"virtual": {"devices": [
                {"id": "lamp", "name": "Lamp", "kind": "switch"}]}, "homekit_controller": {}},
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc, hap_id = await _accessory(free_port(), tmp)
        try:
            async with Hub(load_config(path)) as hub:
                rows += await _controller(hub, proc, hap_id)
                rows += await _bridge(hub)
        finally:
            with contextlib.suppress(Exception):
                await _send(proc, op="exit")
            await proc.wait()
    return rows


async def _controller(hub: Any, proc: Any, hap_id: str) -> list[tuple[str, str, str]]:
    def item() -> Any:
        return next((d for d in hub.discovery.registry
                     if d.data.get("hap_id") == hap_id and d.present), None)

    await _until(lambda: item() is not None and hub.integrations.instance(
        "homekit_controller").ready.is_set())
    pair_times = []
    device = None
    for i in range(PAIRINGS):
        t0 = time.perf_counter()
        device = await hub.discovery.adopt(item().id, credentials={"setup_code": PIN})
        pair_times.append(time.perf_counter() - t0)
        if i < PAIRINGS - 1:
            await hub.devices.remove(device.id)  # unpairs the accessory
            assert (await _send(proc, op="paired"))["paired"] is False
    assert device is not None
    await _until(lambda: hub.states.available(device.id))
    writes = []
    for i in range(WRITES):
        value = 1 + i % 99
        t0 = time.perf_counter()
        await hub.integrations.command(device.id, "set_brightness", {"brightness": value})
        writes.append(time.perf_counter() - t0)
        assert hub.states.value(device.id, "brightness") == value
    events = []
    for i in range(WRITES // 2):
        value = 1 + (i * 37) % 99
        if hub.states.value(device.id, "brightness") == value:
            value = 100
        waiter = _state_waiter(hub, device.id, "brightness", value)
        t0 = time.perf_counter()
        await _send(proc, op="set", char="Brightness", value=value)
        await asyncio.wait_for(waiter, 10)
        events.append(time.perf_counter() - t0)
    ms = 1000
    return [
        ("pairing (adopt with setup code), median", f"{percentile(pair_times, 50):.2f} s",
         f"n={PAIRINGS}"),
        ("pairing, max", f"{max(pair_times):.2f} s", ""),
        ("hub write -> accessory -> hub state, p50", f"{percentile(writes, 50) * ms:.1f} ms",
         f"n={WRITES}"),
        ("hub write -> accessory -> hub state, p99", f"{percentile(writes, 99) * ms:.1f} ms",
         ""),
        ("accessory change -> event -> hub state, p50", f"{percentile(events, 50) * ms:.1f} ms",
         f"n={WRITES // 2}; 0.5 s coalescing"),
        ("accessory change -> event -> hub state, p99", f"{percentile(events, 99) * ms:.1f} ms",
         ""),
    ]


async def _bridge(hub: Any) -> list[tuple[str, str, str]]:
    from aiohomekit import Controller
    from aiohomekit.zeroconf import HAP_TYPE_TCP, HAP_TYPE_UDP
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    await _until(lambda: hub.homekit.state == "running")
    status = hub.homekit.status()
    azc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    browsers = [AsyncServiceBrowser(azc.zeroconf, [t], handlers=[lambda **kw: None])
                for t in (HAP_TYPE_TCP, HAP_TYPE_UDP)]
    ctl = Controller(async_zeroconf_instance=azc)
    await ctl.async_start()
    try:
        t0 = time.perf_counter()
        discovery = await ctl.async_find(status["accessory_id"], timeout=30)
        finish = await discovery.async_start_pairing("phone")
        pairing = await finish(status["setup_code"])
        phone_pair = time.perf_counter() - t0
        accessories = await pairing.list_accessories_and_characteristics()
        acc = next(a for a in accessories if a["aid"] == 2)
        on = next(c for s in acc["services"] for c in s["characteristics"]
                  if c["type"].upper().startswith("00000025"))
        times = []
        for _ in range(WRITES):
            value = not hub.states.value("virtual.lamp", "on")
            waiter = _state_waiter(hub, "virtual.lamp", "on", value)
            t0 = time.perf_counter()
            await pairing.put_characteristics([(2, on["iid"], value)])
            await asyncio.wait_for(waiter, 10)
            times.append(time.perf_counter() - t0)
        await pairing.close()
    finally:
        await ctl.async_stop()
        for b in browsers:
            await b.async_cancel()
        await azc.async_close()
    ms = 1000
    return [
        ("phone pairs with the bridge (find + pair)", f"{phone_pair:.2f} s", "n=1"),
        ("phone write -> bridge -> hub state, p50", f"{percentile(times, 50) * ms:.1f} ms",
         f"n={WRITES}"),
        ("phone write -> bridge -> hub state, p99", f"{percentile(times, 99) * ms:.1f} ms", ""),
    ]


def main() -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    if not in_private_netns():
        return run_in_private_netns("bench.homekit", sys.argv[1:])
    rows = asyncio.run(run())
    print(table("HomeKit (loopback in a private namespace; HAP-python light, aiohomekit phone)",
                rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
