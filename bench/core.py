"""Core benchmarks: start-up to READY=1, RSS, history ingest vs raw SQLite, bytes per change.

    python -m bench.core [--devices 1000] [--automations 100] [--changes 200000] [--bthome]

`--bthome` also starts, in each run, the same home with one encrypted BTHome sensor: its bind
key in the vault (moved there by a first start, then gone from the config, as the guide says)
and its advertisements heard through the fake BlueZ. Its RSS is printed beside the plain one:
the vault's cipher and bthome-ble both load cryptography (its own OpenSSL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    env_with_repo,
    free_port,
    in_private_netns,
    private_mib,
    repo_root,
    rss_by_kind,
    rss_mib,
    run_in_private_netns,
    table,
    virtual_config,
)


def _unit_environment() -> dict[str, str]:
    """Environment= lines of the shipped systemd unit: the hub is measured as it runs."""
    out = {}
    for line in (repo_root() / "systemd" / "uone-hub.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            out[key] = value
    return out


UNIT_ENV = _unit_environment()


def automations_config(n: int, devices: int) -> list[dict]:
    """`n` automations of the usual shape: when switch dX turns on, turn on switch dY."""
    out = []
    for i in range(n):
        a, b = (2 * i) % devices, (2 * i + 2) % devices
        out.append({
            "id": f"auto{i}", "name": f"Follow d{a}",
            "triggers": [{"type": "state", "device": f"virtual.d{a}", "attribute": "on",
                          "to": True}],
            "actions": [{"type": "command", "device": f"virtual.d{b}", "command": "turn_on"}],
        })
    return out


STEADY_AFTER = 5.0  # seconds after discovery is up: what a Pi holds once idle
HOME_INTEGRATIONS = {"bthome": {}, "uone": {}, "improv": {}}  # beside the virtual devices


@dataclass
class StartRun:
    ready: float  # seconds from exec to READY=1
    ready_rss: float  # MiB at READY=1
    discovery: float  # seconds from exec until zeroconf and the BLE scanner run
    steady_rss: float  # MiB STEADY_AFTER seconds after that
    steady_private: float  # of which private to the process (USS), MiB
    floor: float  # seconds from exec to READY=1 of bench.floor, just before
    floor_rss: float
    steady_kinds: dict[str, float]  # steady RSS by mapping (bench.common.rss_by_kind)
    floor_kinds: dict[str, float]


def startup(devices: int, automations: int, runs: int, loop: str = "asyncio",
            bthome: bool = False) -> dict[str, list[StartRun]]:
    """Start the hub `runs` times as the unit runs it (its Environment=, byte-compiled as pip
    installs it), mDNS and BLE on (a fake BlueZ on a private bus, a veth pair for zeroconf),
    each run after one of bench.floor. With `bthome`, each run also starts the same home with
    one encrypted BTHome sensor ("bthome"; the plain home is "plain")."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "hub", "integrations", "bench"],
                   cwd=repo_root(), check=True, stdout=subprocess.DEVNULL)
    return asyncio.run(_startup_runs(devices, automations, runs, loop, bthome))


# the encrypted sensor of the `--bthome` home (the test suite's, tests/discovery/conftest.py)
SENSOR_MAC = "54:48:E6:8F:80:A5"
SENSOR_KEY = "231d39c1d7cc1ab1aee224cd096db932"


async def _startup_runs(devices: int, automations: int, runs: int, loop: str,
                        bthome: bool) -> dict[str, list[StartRun]]:
    from tests.doubles.bluez import running_fake_bluez

    out: dict[str, list[StartRun]] = {"plain": []}
    if bthome:
        out["bthome"] = []
    for _ in range(runs):
        for variant, results in out.items():
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                async with running_fake_bluez(tmp / "bluez") as bluez:
                    floor, floor_rss, floor_kinds = await _start_floor(tmp)
                    integrations: dict[str, Any] = dict(HOME_INTEGRATIONS)
                    if variant == "bthome":
                        integrations["bthome"] = {"bind_keys": {SENSOR_MAC: SENSOR_KEY}}
                    config = virtual_config(
                        tmp, devices, automations=automations_config(automations, devices),
                        integrations=integrations,
                        extra={"discovery": {"mdns": {"enabled": True},
                                             "ble": {"enabled": True}}})
                    port = yaml.safe_load(config.read_text())["api"]["port"]
                    if variant == "bthome":
                        await _key_into_vault(tmp, config)
                        await _advertise_sensor(bluez)
                    results.append(await _start_hub(tmp, config, port, loop, floor,
                                                    floor_rss, floor_kinds))
    return out


async def _key_into_vault(tmp: Path, config: Path) -> None:
    """A first start moves the bind key from the config into the vault; the owner then
    removes it from the file: the measured start reads it from the vault only."""
    async with _Notified(tmp / "first.sock", ["-m", "hub", "run", "-c", str(config)]) as child:
        await child.ready()
    await asyncio.to_thread(_drop_config_key, config)


def _drop_config_key(config: Path) -> None:
    cfg = yaml.safe_load(config.read_text())
    with sqlite3.connect(Path(cfg["data_dir"]) / "hub.db") as db:
        [(keys,)] = db.execute("SELECT count(*) FROM vault_entries WHERE kind = 'device_key'")
    if keys != 1:
        raise RuntimeError(f"the bind key did not reach the vault ({keys} device keys)")
    cfg["integrations"]["bthome"] = {}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))


async def _advertise_sensor(bluez: Any) -> None:
    """The sensor advertises (encrypted, counter 1) through the fake BlueZ from now on."""
    from tests.discovery import bthome_adv as adv

    payload = adv.encrypted(adv.objects(packet_id=1, battery=90, temperature=21.5,
                                        humidity=48.0), SENSOR_MAC,
                            bytes.fromhex(SENSOR_KEY), 1)
    await bluez.add_le_device(SENSOR_MAC, "TH Sensor", service_data={adv.BTHOME_UUID: payload})


async def _start_floor(tmp: Path) -> tuple[float, float, dict[str, float]]:
    args = ["-m", "bench.floor", str(free_port()), str(tmp / "floor.db")]
    async with _Notified(tmp / "floor.sock", args) as child:
        took = await child.ready()
        await asyncio.sleep(1.0)
        return took, rss_mib(child.proc.pid), rss_by_kind(child.proc.pid)


async def _start_hub(tmp: Path, config: Path, port: int, loop: str, floor: float,
                     floor_rss: float, floor_kinds: dict[str, float]) -> StartRun:
    args = ["-m", "hub", "run", "--loop", loop, "-c", str(config)]
    async with _Notified(tmp / "notify.sock", args) as child:
        took = await child.ready()
        ready_rss = rss_mib(child.proc.pid)
        for _ in range(600):
            health = await asyncio.to_thread(_health, port)
            if (health["ble"]["state"], health["mdns"]["state"]) == ("scanning", "running"):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"discovery did not come up: {health}")
        up = time.perf_counter() - child.started
        await asyncio.sleep(STEADY_AFTER)
        pid = child.proc.pid
        return StartRun(took, ready_rss, up, rss_mib(pid), private_mib(pid), floor,
                        floor_rss, rss_by_kind(pid), floor_kinds)


class _Notified:
    """A child process (`python args`) with NOTIFY_SOCKET, as systemd starts the unit;
    terminated on exit."""

    def __init__(self, sock_path: Path, args: list[str]) -> None:
        self.sock_path, self.args = sock_path, args
        self.started = 0.0

    async def __aenter__(self) -> _Notified:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.setblocking(False)
        env = {k: v for k, v in env_with_repo().items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"NOTIFY_SOCKET": str(self.sock_path)} | UNIT_ENV
        self.started = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.args, cwd=repo_root(), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        return self

    async def ready(self) -> float:
        """Wait for READY=1; the seconds since exec."""
        loop = asyncio.get_running_loop()
        msg = (await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 60)).decode()
        if not msg.startswith("READY=1"):
            raise RuntimeError(f"expected READY=1, got {msg!r}")
        return time.perf_counter() - self.started

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)
        self.sock.close()


def _health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as resp:
        return json.loads(resp.read())["discovery"]


async def ingest(changes: int, devices: int) -> dict[str, float]:
    from hub.config import load_config
    from hub.hub import Hub

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        loaded = load_config(virtual_config(tmp, devices, commit_interval=1.0))
        async with Hub(loaded) as hub:
            await hub.db.flush()
            ids = [f"virtual.d{i}" for i in range(1, devices, 2)]  # sensors
            base_rows = hub.db.stats.history_rows
            base_bytes = hub.db.stats.bytes_written
            started = time.perf_counter()
            for i in range(changes):
                hub.states.set(ids[i % len(ids)], {"value": i + 0.25})
                if i % 5000 == 4999:
                    await asyncio.sleep(0)  # let the writer run, as the live loop would
            await hub.db.flush()
            await hub.states.merge_history()  # into the indexed table, as raw SQLite does
            hub_rate = changes / (time.perf_counter() - started)
            rows = hub.db.stats.history_rows - base_rows
            hub.db.refresh_bytes()
            per_change = (hub.db.stats.bytes_written - base_bytes) / rows
            # A live home: 100 changes/s spread over many devices, at two commit intervals.
            trickle = {}
            for interval in (1.0, 5.0):
                hub.db.commit_interval = interval
                await hub.db.checkpoint()  # start from an empty WAL; end with a checkpoint too
                base_rows = hub.db.stats.history_rows
                base_bytes = hub.db.stats.bytes_written
                n = 0
                for _tick in range(int(interval * 4 * 10)):
                    for _k in range(10):
                        n += 1
                        hub.states.set(ids[(n * 7) % len(ids)], {"value": -float(n)})
                    await asyncio.sleep(0.1)
                await hub.db.checkpoint()
                hub.db.refresh_bytes()
                trickle[interval] = (hub.db.stats.bytes_written - base_bytes) / (
                    hub.db.stats.history_rows - base_rows)
            # ...then the move of staged rows into the indexed table, once per snapshot
            # interval: one interval's rows at 100/s, merged and checkpointed
            per_merge = int(100 * hub.states.snapshot_interval)
            for n in range(per_merge):
                hub.states.set(ids[(n * 7) % len(ids)], {"value": n + 0.5})
                if n % 5000 == 4999:
                    await asyncio.sleep(0)
            await hub.db.flush()
            await hub.db.checkpoint()
            base_bytes = hub.db.refresh_bytes()
            await hub.states.merge_history()
            await hub.db.checkpoint()
            merge = (hub.db.refresh_bytes() - base_bytes) / per_merge
        raw = _raw_rate(tmp / "raw.db", changes, ids)
    return {"hub_rate": hub_rate, "raw_rate": raw, "bytes_per_change": per_change,
            "trickle_bytes": trickle, "merge_bytes": merge}


def _raw_rate(path: Path, changes: int, ids: list[str]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE history(id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, "
                 "attribute TEXT NOT NULL, value TEXT, ts REAL NOT NULL)")
    conn.execute("CREATE INDEX history_device_ts ON history(device_id, ts)")
    conn.execute("CREATE INDEX history_ts ON history(ts)")
    now = time.time()
    rows = [(ids[i % len(ids)], "value", str(i + 0.25), now) for i in range(changes)]
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO history(device_id, attribute, value, ts) VALUES(?,?,?,?)",
                     rows)
    conn.execute("COMMIT")
    rate = changes / (time.perf_counter() - started)
    conn.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--automations", type=int, default=100)
    p.add_argument("--changes", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="the hub's event loop: asyncio (a default install) or uvloop "
                        "(with the 'fast' extra)")
    p.add_argument("--bthome", action="store_true",
                   help="also start each run's home with one encrypted BTHome sensor (bind "
                        "key in the vault) and print its RSS beside the plain one")
    args = p.parse_args()
    if not in_private_netns():
        raise SystemExit(run_in_private_netns("bench.core", sys.argv[1:], veth=True))
    variants = startup(args.devices, args.automations, args.runs, args.loop, args.bthome)
    runs = variants["plain"]
    res = asyncio.run(ingest(args.changes, args.devices))

    def med(attr: str, of: list[StartRun] = runs) -> float:
        return statistics.median(getattr(r, attr) for r in of)

    sensor = variants.get("bthome")
    with_sensor = [] if sensor is None else [
        ("one encrypted BTHome sensor (key in the vault, heard):", "", "same runs, interleaved"),
        ("  start to READY=1, median", f"{med('ready', sensor) * 1000:.0f} ms",
         f"plain {med('ready') * 1000:.0f} ms"),
        ("  RSS at READY=1, median", f"{med('ready_rss', sensor):.1f} MiB",
         f"plain {med('ready_rss'):.1f} MiB"),
        ("  RSS steady, median", f"{med('steady_rss', sensor):.1f} MiB",
         f"plain {med('steady_rss'):.1f} MiB; < 60 MiB"),
        ("  RSS steady, worst", f"{max(r.steady_rss for r in sensor):.1f} MiB", ""),
        ("  steady RSS: other libraries",
         f"{statistics.median(r.steady_kinds['libraries'] for r in sensor):.1f} MiB",
         "cryptography's OpenSSL among them"),
    ]

    def kind(name: str) -> str:
        hub = statistics.median(r.steady_kinds[name] for r in runs)
        floor = statistics.median(r.floor_kinds[name] for r in runs)
        return f"{hub:.1f} MiB" + (f" (floor {floor:.1f})" if floor else "")

    print(table(
        f"Uone Hub core ({args.devices} devices, {args.automations} automations, "
        f"{args.changes} state changes, {args.loop} loop, {len(runs)} starts, "
        "mDNS and BLE on)",
        [
            ("start to READY=1, median", f"{med('ready') * 1000:.0f} ms",
             "<= 500 ms (HA 3.1 s)"),
            ("start to READY=1, worst", f"{max(r.ready for r in runs) * 1000:.0f} ms", ""),
            ("  floor: import the stack + listen, median", f"{med('floor') * 1000:.0f} ms",
             "same run (bench.floor)"),
            ("  hub minus floor, median",
             f"{statistics.median(r.ready - r.floor for r in runs) * 1000:.0f} ms", ""),
            ("start to discovery up (zeroconf + bleak), median",
             f"{med('discovery') * 1000:.0f} ms", ""),
            ("RSS at READY=1, median", f"{med('ready_rss'):.1f} MiB", ""),
            (f"RSS steady ({STEADY_AFTER:g} s after discovery is up), median",
             f"{med('steady_rss'):.1f} MiB", "< 60 MiB (HA 185 MiB)"),
            ("RSS steady, worst", f"{max(r.steady_rss for r in runs):.1f} MiB", ""),
            ("  of which private (USS), median", f"{med('steady_private'):.1f} MiB",
             "the rest: shared library pages"),
            ("  floor RSS", f"{med('floor_rss'):.1f} MiB", "same run (bench.floor)"),
            ("  steady RSS: Python objects, code, malloc heap", kind("objects"),
             "anonymous pages"),
            ("  steady RSS: zeroconf, dbus_fast, bleak compiled modules", kind("discovery"),
             "their .so pages"),
            ("  steady RSS: libpython + stdlib extensions", kind("python"), ""),
            ("  steady RSS: other libraries", kind("libraries"),
             "OpenSSL, SQLite, libyaml..."),
            *with_sensor,
            ("state changes into history", f"{res['hub_rate']:,.0f} /s", ""),
            ("raw SQLite executemany", f"{res['raw_rate']:,.0f} /s", ""),
            ("hub / raw", f"{res['hub_rate'] / res['raw_rate'] * 100:.0f} %", ">= 50 %"),
            ("bytes written per state change, bulk", f"{res['bytes_per_change']:.0f} B",
             "measured"),
            ("bytes per change, 100/s live, 1 s commits",
             f"{res['trickle_bytes'][1.0] + res['merge_bytes']:.0f} B", "measured"),
            ("bytes per change, 100/s live, 5 s commits",
             f"{res['trickle_bytes'][5.0] + res['merge_bytes']:.0f} B", "measured (default)"),
            ("  of which the 5-minute merge into the index", f"{res['merge_bytes']:.0f} B",
             "(in both rows above)"),
        ],
    ))


if __name__ == "__main__":
    main()
