"""Matter benchmark: `ip netns exec NS python -m bench.matter [--devices 3] [--commands 100]`
(as root, inside a private network namespace like the test suite: it makes a device
namespace and a veth of its own).

python-matter-server 7.0.1 and matter.js 0.17.9 on/off lights (the pinned test doubles,
tests/doubles/matter.py) with a hub in this process:
1. commissioning time per device (pairing code -> hub device registered, attested);
2. command -> state: `turn_on`/`turn_off` through the hub's command path until the device's
   report of the new value is hub state, p50/p99, each device commanded once its last
   report is over 1 s old (the subscription's minimum interval, which python-matter-server
   requests, holds a report back until then); and back to back on one device;
3. the server's RSS beside the hub's (this process: hub, event loop, client) at the end,
   measured here and as /api/health shows them (integration.measure_memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, rss_mib, table
from tests.discovery import netns
from tests.doubles import matter

FLOOR = 1.1  # s: python-matter-server subscribes with a 1 s minimum report interval


async def run(devices: int, commands: int) -> str:
    from hub.config import load_config
    from hub.hub import Hub
    from tests.conftest import write_config

    reason = netns.unavailable() or matter.unavailable()
    if reason:
        raise SystemExit(f"bench.matter: {reason}")
    venv, npm = matter.server_venv(), matter.npm_dir()
    with tempfile.TemporaryDirectory(prefix="uone-bench-matter-") as tmp_name:
        tmp = Path(tmp_name)
        paa = tmp / "paa"
        matter.write_test_paa(npm, paa)
        async with netns.veth_lan(prefix="mtb", net=81) as lan:
            server = matter.MatterServer(venv, tmp / "server", paa)
            lights = [matter.MatterDevice(npm, lan.dev_ns, "onoff", 5540 + i, 3000 + i,
                                          tmp / f"light{i}") for i in range(devices)]
            async with matter.running(server, *lights):
                cfg = {"integrations": {"matter": {"server_url": server.url}}}
                async with Hub(load_config(write_config(tmp, cfg))) as hub:
                    return await _measure(hub, server, lights, commands)


async def _measure(hub: Any, server: matter.MatterServer, lights: list[matter.MatterDevice],
                   commands: int) -> str:
    integration = hub.integrations.instance("matter")
    await _until(lambda: integration.connected, 30)
    commission: list[float] = []
    ids = []
    for light in lights:
        start = time.perf_counter()
        device = await integration.commission(light.manual_code, lambda *_: None)
        commission.append(time.perf_counter() - start)
        ids.append(device.id)
    # a device reports a change no sooner than the subscription's floor after its last
    # report (python-matter-server asks 1 s): commands wait for it, to measure the path
    latencies: list[float] = []
    reported: dict[str, float] = {}
    for i in range(commands):
        device_id = ids[i % len(ids)]
        idle = time.perf_counter() - reported.get(device_id, 0.0)
        if idle < FLOOR:
            await asyncio.sleep(FLOOR - idle)
        latencies.append(await _toggle(hub, device_id))
        reported[device_id] = time.perf_counter()
    # back to back on one device: what the floor makes of a burst of commands
    burst = [await _toggle(hub, ids[0]) for _ in range(min(10, commands))]
    server_pid = server.pid()
    assert server_pid is not None
    health = (await integration.measure_memory())  # what /api/health shows
    shown = health["server"]
    rows = [
        ("devices commissioned", str(len(ids)), ""),
        ("commissioning time p50", f"{percentile(commission, 50):.2f} s", "a few s"),
        ("commissioning time max", f"{max(commission):.2f} s", ""),
        ("command -> state p50", f"{percentile(latencies, 50) * 1000:.1f} ms", ""),
        ("command -> state p99", f"{percentile(latencies, 99) * 1000:.1f} ms", "< 500 ms"),
        ("same, back to back p50", f"{percentile(burst, 50) * 1000:.1f} ms",
         f"the {FLOOR - 0.1:.0f} s report floor"),
        ("Matter server RSS", f"{rss_mib(server_pid):.1f} MiB", "~116 MB idle (x86-64)"),
        ("hub RSS (this process)", f"{rss_mib(os.getpid()):.1f} MiB", ""),
        ("health: server memory", f"{shown['bytes'] / 2**20:.1f} MiB" if shown["bytes"]
         else f"unknown ({shown['unknown']})", shown.get("source", "")),
        ("health: hub RSS", f"{health['hub']['bytes'] / 2**20:.1f} MiB", ""),
    ]
    return table(f"bench.matter: {len(ids)} matter.js lights, {commands} commands", rows)


async def _toggle(hub: Any, device_id: str) -> float:
    """Seconds from a turn_on/turn_off command to the device's report of it in hub state."""
    want = hub.states.value(device_id, "on") is not True
    start = time.perf_counter()
    await hub.integrations.command(device_id, "turn_on" if want else "turn_off", {})
    await _until(lambda: hub.states.value(device_id, "on") is want, 10, 0.0005)
    return time.perf_counter() - start


async def _until(predicate: Any, within: float, step: float = 0.05) -> None:
    deadline = time.perf_counter() + within
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matter")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--commands", type=int, default=100)
    args = parser.parse_args(argv)
    print(asyncio.run(run(args.devices, args.commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
