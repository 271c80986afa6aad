"""MQTT integration benchmark: `python -m bench.mqtt` (loopback only; run it in a network
namespace like the other benchmarks).

A real mosquitto on loopback; the hub runs in its own process (so its CPU and RSS are its
own) with the API and the MQTT integration; this process plays the devices (aiomqtt) and a
dashboard (a websocket subscribed to state changes):
1. N devices (a switch and a sensor each) announce at once -> all listed in /api/discovered;
2. after adopting them, state messages at a steady rate -> hub state -> websocket event:
   p50/p99 from publish to the websocket, and the hub's CPU time per message;
3. RSS growth of a fresh hub for M devices announced, adopted and reporting.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import env_with_repo, free_port, percentile, repo_root, rss_mib, table
from tests.doubles import mosquitto


async def _serve(config: str) -> None:
    """The hub process: prints its port and a token, then answers stdin commands."""
    from hub.api.server import ApiServer
    from hub.auth.principal import Role
    from hub.config import load_config
    from hub.hub import Hub

    async with Hub(load_config(config)) as hub:
        owner = await hub.auth.create_user("bench", "bench password", Role.OWNER)
        token, _ = await hub.auth.create_token(owner.id, "bench")
        async with ApiServer(hub) as server:
            gc.collect()
            gc.freeze()  # as hub.daemon does once started
            print(json.dumps({"port": server.port, "token": token}), flush=True)
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                cmd = line.strip()
                if cmd == "cpu":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    out: Any = [usage.ru_utime, usage.ru_stime]
                elif cmd == "status":
                    out = hub.integrations.instance("mqtt").status()  # type: ignore[union-attr]
                else:
                    out = None
                print(json.dumps(out), flush=True)


class HubProcess:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mqtt", "_serve", str(config)], cwd=repo_root(),
            env=env_with_repo(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.port, self.token = info["port"], info["token"]
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def ask(self, cmd: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(30)


def _config(tmp: Path, name: str, broker: mosquitto.Mosquitto,
            commit_interval: float = 1.0) -> Path:
    cfg = {
        "data_dir": str(tmp / f"data-{name}"), "log_level": "warning",
        "api": {"host": "127.0.0.1", "port": free_port()},
        "storage": {"commit_interval": commit_interval},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"mqtt": {"broker_url": f"mqtt://127.0.0.1:{broker.plain_port}",
                                  "client_id": f"bench-{name}", "birth_message": False,
                                  "max_messages_per_device": 100_000}},
    }
    path = tmp / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _announcements(i: int) -> list[tuple[str, dict[str, Any]]]:
    dev = {"ids": [f"bench{i}"], "name": f"Bench plug {i}", "mf": "Bench", "mdl": "P"}
    return [
        (f"homeassistant/switch/bench{i}/relay/config",
         {"name": "Relay", "uniq_id": f"bench{i}-relay", "stat_t": f"bench/{i}/relay",
          "cmd_t": f"bench/{i}/relay/set", "dev": dev}),
        (f"homeassistant/sensor/bench{i}/power/config",
         {"name": "Power", "uniq_id": f"bench{i}-power", "stat_t": f"bench/{i}/power",
          "unit_of_meas": "W", "dev_cla": "power", "stat_cla": "measurement",
          "val_tpl": "{{ value_json.w }}", "dev": dev}),
    ]


async def _discovered(session: Any, hub: HubProcess) -> list[dict[str, Any]]:
    async with session.get(f"{hub.base}/api/discovered?source=mqtt",
                           headers=hub.headers) as r:
        return (await r.json())["discovered"]


async def _announce_and_adopt(session: Any, hub: HubProcess, client: Any, n: int,
                              offset: int = 0) -> float:
    """Publish n devices' configs at once; seconds until all are in /api/discovered."""
    t0 = time.perf_counter()
    for i in range(offset, offset + n):
        for topic, body in _announcements(i):
            await client.publish(topic, json.dumps(body), qos=1, retain=True)
    while True:
        items = await _discovered(session, hub)
        complete = [d for d in items if len(d["data"]["entities"]) == 2]
        if len(complete) >= n:
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    for d in complete:
        if d["state"] == "new":
            async with session.post(f"{hub.base}/api/discovered/{d['id']}/adopt",
                                    headers=hub.headers, json={}) as r:
                assert r.status == 201, await r.text()
    return elapsed


async def _stream(session: Any, hub: HubProcess, client: Any, n_devices: int, rate: float,
                  seconds: float, profile: str | None = None) -> dict[str, float]:
    """Sensor readings at `rate`/s; publish -> websocket event latency and hub CPU."""
    sent: dict[float, float] = {}
    got: dict[float, float] = {}
    ws = await session.ws_connect(f"ws://127.0.0.1:{hub.port}/api/ws", headers=hub.headers,
                                  max_msg_size=1 << 22)
    await ws.receive_json()
    await ws.send_json({"type": "subscribe", "events": ["state_changed"]})
    await ws.receive_json()
    total = int(rate * seconds)

    async def reader() -> None:
        while len(got) < total:
            try:
                msg = await ws.receive(timeout=5)
            except TimeoutError:
                return
            now = time.perf_counter()
            if msg.type.name != "TEXT":
                return
            event = json.loads(msg.data)["event"]
            value = event.get("new")
            if value in sent:
                got.setdefault(value, now)

    task = asyncio.create_task(reader())
    spy = None
    if profile:
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "--gil", "-p",
            str(hub.proc.pid), "-r", "500", "-f", "raw", "-o", profile,
            "-d", str(int(seconds) + 1), stdout=subprocess.DEVNULL)
        await asyncio.sleep(1.0)
    cpu0 = hub.ask("cpu")
    start = time.perf_counter()
    for k in range(total):
        value = 100_000.0 + k + 0.5  # unique, so each message is a change
        i = k % n_devices
        sent[value] = time.perf_counter()
        await client.publish(f"bench/{i}/power", json.dumps({"w": value}), qos=0)
        delay = start + (k + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.wait_for(task, 30)
    cpu1 = hub.ask("cpu")
    await ws.close()
    if spy is not None:
        await spy.wait()
    lat = [(got[v] - sent[v]) * 1000 for v in got]
    return {"sent": total, "received": len(got), "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "cpu_us": (sum(cpu1) - sum(cpu0)) / max(1, len(got)) * 1e6,
            "sys_us": (cpu1[1] - cpu0[1]) / max(1, len(got)) * 1e6,
            "seconds": time.perf_counter() - start}


async def run(args: argparse.Namespace) -> int:
    import aiohttp
    import aiomqtt

    reason = mosquitto.available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="uone-bench-mqtt-"))
    broker = mosquitto.Mosquitto(tmp / "broker", mosquitto.make_pki(tmp / "pki"), {"x": "y"})
    broker.start()
    rows: list[tuple[str, str, str]] = []
    try:
        async with aiohttp.ClientSession() as session, aiomqtt.Client(
                "127.0.0.1", broker.plain_port, max_queued_outgoing_messages=0) as client:
            hub = HubProcess(_config(tmp, "a", broker, args.commit_interval))
            try:
                await asyncio.sleep(0.5)
                seconds = await _announce_and_adopt(session, hub, client, args.devices)
                rows.append((f"{args.devices} devices announce at once -> all in "
                             "/api/discovered", f"{seconds:.2f} s", "<= 2 s"))
                await asyncio.sleep(1.0)
                r = await _stream(session, hub, client, args.devices, args.rate, args.seconds,
                                  args.profile)
                rows.append((f"{args.rate:.0f} state msgs/s: publish -> websocket p50 / p99",
                             f"{r['p50']:.2f} / {r['p99']:.2f} ms", "p99 <= 5 ms"))
                rows.append(("  delivered", f"{r['received']} / {r['sent']}", "all"))
                rows.append(("  hub CPU per message", f"{r['cpu_us']:.0f} µs "
                             f"({r['sys_us']:.0f} µs in the kernel)", "-"))
                stats = hub.ask("status")["stats"]
                rows.append(("  refused / dropped by the hub",
                             f"{stats['refused_state'] + stats['flood_dropped']}", "0"))
            finally:
                hub.stop()
            # RSS growth: a fresh hub (and broker state) for M devices
            for i in range(args.devices):
                for topic, _ in _announcements(i):
                    await client.publish(topic, b"", qos=1, retain=True)
            hub = HubProcess(_config(tmp, "b", broker))
            try:
                await asyncio.sleep(1.0)
                before = hub.rss()
                await _announce_and_adopt(session, hub, client, args.rss_devices,
                                          offset=10_000)
                for i in range(10_000, 10_000 + args.rss_devices):
                    await client.publish(f"bench/{i}/power", json.dumps({"w": 1.5}), qos=0)
                    await client.publish(f"bench/{i}/relay", "ON", qos=0)
                await asyncio.sleep(2.0)
                after = hub.rss()
                rows.append((f"RSS growth for {args.rss_devices} devices (announced, adopted,"
                             " reporting)", f"{after - before:.1f} MiB",
                             f"<= 10 MB (from {before:.1f} MiB)"))
            finally:
                hub.stop()
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(table("bench.mqtt (mosquitto on loopback, hub in its own process)", rows))
    return 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_serve":
        asyncio.run(_serve(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="state messages per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rss-devices", type=int, default=500)
    parser.add_argument("--commit-interval", type=float, default=1.0,
                        help="storage.commit_interval of the hub (history batches)")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy samples of the hub while streaming (collapsed stacks)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
