"""ESPHome benchmark: `python -m bench.esphome [--instances 20] [--seconds 10]`.

Loopback only: run it inside a network namespace like the other benchmarks
(`ip netns add b; ip netns exec b ip link set lo up; ip netns exec b python -m bench.esphome`).

Real ESPHome firmware (tests/esphome/firmware/bench_node.yaml, built for Linux, cached): N
instances of a node with 10 sensors, each publishing every 20 ms (50 updates/s), the value
being the firmware's wall clock in ms. The hub runs in its own process (its CPU is its own)
with the esphome and bthome integrations; this process plays a dashboard on the websocket.
1. steady state: hub CPU per state update, firmware publish -> websocket p50/p99;
2. every instance killed and started again at once: time until all are available again,
   and the hub's CPU meanwhile;
3. Bluetooth proxy path: a native-API proxy (tests/esphome/api_double.py) streams raw
   advertisement batches (BTHome payloads among others) while the hub's local adapter path
   hears the same addresses: advertisements/s through the one pipeline, CPU per advertisement.
Devices are announced to the hub's discovery directly (mDNS itself is not measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import free_port, percentile, table
from bench.hubproc import HubProcess, cpu_seconds, serve

SERVICE_TYPE = "_esphomelib._tcp.local."


# -- the hub process -----------------------------------------------------------------------


async def _serve(config: str) -> None:
    """The hub (bench.hubproc), answering this benchmark's commands."""
    from hub.discovery.models import MdnsService, mdns_id

    feeders: list[asyncio.Task[None]] = []

    def answer(hub: Any, cmd: dict[str, Any]) -> Any:
        if cmd["op"] == "cpu":
            return cpu_seconds()
        if cmd["op"] == "announce":
            name = f"{cmd['node']}.{SERVICE_TYPE}"
            hub.discovery.handle_mdns(MdnsService(
                SERVICE_TYPE, name, f"{cmd['node']}.local.", ("127.0.0.1",),
                cmd["port"], {"mac": cmd["mac"].replace(":", ""),
                              "version": "2026.6.5", "board": "host",
                              "friendly_name": cmd["node"]}))
            return mdns_id(SERVICE_TYPE, name)
        if cmd["op"] == "stats":
            esphome: Any = hub.integrations.instance("esphome")
            return {"discovery": hub.discovery.stats.as_dict(),
                    "states": sum(link.states for link in esphome.links.values()),
                    "connected": sum(link.connected for link in esphome.links.values())}
        if cmd["op"] == "local":  # the local adapter hearing the same addresses
            feeders.append(asyncio.get_running_loop().create_task(
                _local(hub, cmd["batch"], cmd["seconds"])))
        return None

    def cancel_feeders() -> None:
        for task in feeders:
            task.cancel()

    await serve(config, answer, cleanup=cancel_feeders)


async def _local(hub: Any, batch: list[list[Any]], seconds: float) -> None:
    from bluetooth_data_tools import parse_advertisement_data_bytes

    parsed = [(a, r, parse_advertisement_data_bytes(bytes.fromhex(d))) for a, r, d in batch]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for address, rssi, (name, uuids, sd, md, tx) in parsed:
            hub.discovery.handle_advertisement(address, name, rssi - 5, tuple(uuids), sd, md, tx)
        await asyncio.sleep(0.01)


# -- firmware instances --------------------------------------------------------------------


class Node:
    def __init__(self, binary: Path, i: int, log_dir: Path, port: int) -> None:
        self.binary = binary
        self.node = f"bench-node-{i}"
        self.mac = f"06:35:69:00:{i // 256:02x}:{i % 256:02x}"
        self.port = port
        self.log = log_dir / f"{self.node}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.device_id = "esphome." + self.mac.replace(":", "")

    def start(self) -> None:
        env = {**os.environ, "UONE_NODE": self.node, "UONE_MAC": self.mac,
               "UONE_API_PORT": str(self.port)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(self.binary)], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def _poll(done: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if done():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's condition was not met in time")
        await asyncio.sleep(0.05)


def _ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together, so none is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _listening(nodes: list[Node], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    for node in nodes:
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", node.port)
                w.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def _available(session: Any, hub: HubProcess, count: int, within: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if hub.ask(op="stats")["connected"] >= count:
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    return float("nan")


# -- phases --------------------------------------------------------------------------------


async def _steady(session: Any, hub: HubProcess, nodes: list[Node], seconds: float
                  ) -> list[tuple[str, str, str]]:
    ws = await session.ws_connect(f"ws://127.0.0.1:{hub.port}/api/ws", headers=hub.headers,
                                  heartbeat=None, max_msg_size=0)
    await ws.send_json({"type": "subscribe", "events": ["state_changed"]})
    latencies: list[float] = []
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:  # read (and drop) what queued before the window
        with contextlib.suppress(TimeoutError):
            await ws.receive(timeout=0.1)
    cpu0, states0 = hub.ask(op="cpu"), hub.ask(op="stats")["states"]
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        try:
            msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        if msg.type.name != "TEXT":
            break
        now_ms = time.time() * 1000 % 1_000_000
        for event in _events(json.loads(msg.data)):
            value = event.get("new") if "new" in event else event.get("value")
            if isinstance(value, (int, float)):
                latencies.append((now_ms - value) % 1_000_000)
    elapsed = time.monotonic() - t0
    cpu1, states1 = hub.ask(op="cpu"), hub.ask(op="stats")["states"]
    await ws.close()
    updates = states1 - states0
    n = len(nodes)
    return [
        (f"{n} instances x 10 sensors @ 50/s: updates reaching the hub",
         f"{updates / elapsed:,.0f}/s", f"{n * 500:,}/s offered"),
        ("hub CPU per state update", f"{(cpu1 - cpu0) / max(updates, 1) * 1e6:.0f} µs",
         f"{(cpu1 - cpu0) / elapsed * 100:.0f} % of a core"),
        ("firmware publish -> websocket p50 / p99",
         f"{percentile(latencies, 50):.0f} / {percentile(latencies, 99):.0f} ms",
         f"{len(latencies):,} events (ms clock)"),
    ]


def _events(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return [e for b in body for e in _events(b)]
    if isinstance(body, dict):
        if isinstance(body.get("events"), list):
            return [e for b in body["events"] for e in _events(b)]
        return [body.get("event", body)]
    return []


async def _restart_all(session: Any, hub: HubProcess, nodes: list[Node]
                       ) -> list[tuple[str, str, str]]:
    for node in nodes:
        node.kill()
    await _poll(lambda: hub.ask(op="stats")["connected"] == 0)
    for node in nodes:
        node.start()
    await _listening(nodes)
    cpu0, t0 = hub.ask(op="cpu"), time.monotonic()
    took = await _available(session, hub, len(nodes), within=120)
    cpu1 = hub.ask(op="cpu")
    return [(f"all {len(nodes)} restarted at once: all available again after",
             f"{took:.1f} s", "< 10 s (issue 14)"),
            ("hub CPU while they reconnect", f"{(cpu1 - cpu0) / (time.monotonic() - t0) * 100:.0f}"
             " % of a core", "not pegged")]


async def _proxy(session: Any, hub: HubProcess, seconds: float) -> list[tuple[str, str, str]]:
    from tests.discovery import bthome_adv
    from tests.esphome import api_double

    proxy = api_double.ApiDevice(name="bench-proxy", mac="0c:8b:95:00:00:01", proxy=True)
    await proxy.start()
    try:
        discovery_id = hub.ask(op="announce", node=proxy.name, port=proxy.port, mac=proxy.mac)
        async with session.post(f"{hub.base}/api/discovered/{discovery_id}/adopt",
                                headers=hub.headers, json={}) as r:
            assert r.status == 201, await r.text()
        await _poll(lambda: any(p.ble for p in proxy._peers))
        addresses = [f"A4:C1:38:{i // 65536:02X}:{i // 256 % 256:02X}:{i % 256:02X}"
                     for i in range(400)]
        batches = []
        for round_ in range(8):  # new readings every 4th round: repeats are most of the air
            batch = []
            reading = round_ // 4
            for i, address in enumerate(addresses):
                if i % 4 == 0:
                    payload = bthome_adv.plain(bthome_adv.objects(
                        packet_id=reading, temperature=20 + reading / 10))
                    data = api_double.bthome_advertising_data(f"TH {i}", payload)
                else:
                    beacon = b"\x4c\x00" + bytes([reading, i % 256])
                    data = (api_double.ad_structure(0x01, b"\x06")
                            + api_double.ad_structure(0xFF, beacon))
                batch.append((address, -60 - i % 30, data))
            batches.append(batch)
        hub.ask(op="local", batch=[[a, r, d.hex()] for a, r, d in batches[0][:100]],
                seconds=seconds)
        before = hub.ask(op="stats")["discovery"]
        cpu0, t0 = hub.ask(op="cpu"), time.monotonic()
        sent = 0
        while time.monotonic() - t0 < seconds:
            for batch in batches:
                for k in range(0, len(batch), 16):  # a proxy sends up to 16 per message
                    await proxy.advertise(batch[k:k + 16])
                    sent += len(batch[k:k + 16])
                await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        elapsed = time.monotonic() - t0
        after = hub.ask(op="stats")["discovery"]
        cpu1 = hub.ask(op="cpu")
    finally:
        await proxy.stop()
    total = after["advertisements"] - before["advertisements"]
    dups = after["duplicates"] - before["duplicates"]
    return [("proxy + local adapter: advertisements through the pipeline",
             f"{total / elapsed:,.0f}/s", f"{sent / elapsed:,.0f}/s sent by the proxy"),
            ("hub CPU per advertisement (proxy path incl. the API)",
             f"{(cpu1 - cpu0) / max(total, 1) * 1e6:.1f} µs",
             f"{dups / max(total, 1) * 100:.0f} % duplicates")]


async def main(args: argparse.Namespace) -> None:
    import aiohttp

    from tests.esphome import firmware

    binary = await asyncio.to_thread(firmware.build, "bench_node.yaml", runtime_identity=True)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-esphome-") as tmpdir:
        tmp = Path(tmpdir)
        cfg = {"data_dir": str(tmp / "data"), "log_level": "warning",
               "api": {"host": "127.0.0.1", "port": free_port()},
               "storage": {"commit_interval": 1.0},
               "discovery": {"mdns": {"enabled": False, "advertise": False},
                             "ble": {"enabled": False}},
               "integrations": {"esphome": {}, "bthome": {}}}
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        hub = HubProcess("bench.esphome", tmp / "config.yaml")
        nodes = [Node(binary, i, tmp, port) for i, port in enumerate(_ports(args.instances))]
        try:
            for node in nodes:
                node.start()
            await _listening(nodes)
            async with aiohttp.ClientSession() as session:
                for node in nodes:
                    discovery_id = hub.ask(op="announce", node=node.node, port=node.port,
                                           mac=node.mac)
                    async with session.post(f"{hub.base}/api/discovered/{discovery_id}/adopt",
                                            headers=hub.headers, json={}) as r:
                        assert r.status == 201, await r.text()
                took = await _available(session, hub, len(nodes), within=60)
                rows.append((f"{len(nodes)} instances adopted: all connected after",
                             f"{took:.1f} s", ""))
                rows += await _steady(session, hub, nodes, args.seconds)
                rows += await _restart_all(session, hub, nodes)
                for node in nodes:
                    node.kill()
                rows += await _proxy(session, hub, args.seconds)
        finally:
            for node in nodes:
                node.kill()
            with contextlib.suppress(Exception):
                hub.stop(60)
    print(table(f"bench.esphome (ESPHome {firmware.ESPHOME_VERSION} firmware for Linux, "
                f"{os.cpu_count()} cores)", rows))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_serve":
        asyncio.run(_serve(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--instances", type=int, default=20)
        parser.add_argument("--seconds", type=float, default=10.0)
        asyncio.run(main(parser.parse_args()))
