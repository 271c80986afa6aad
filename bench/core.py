"""Core benchmarks: start-up to READY=1, RSS, history ingest vs raw SQLite, bytes per change.

    python -m bench.core [--devices 1000] [--automations 100] [--changes 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import env_with_repo, repo_root, rss_mib, table, virtual_config


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


def startup(devices: int, automations: int, runs: int,
            loop: str = "asyncio") -> tuple[list[float], list[float]]:
    times, rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            config = virtual_config(tmp, devices, automations=automations_config(automations,
                                                                                 devices))
            sock_path = tmp / "notify.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(sock_path))
            sock.settimeout(30)
            env = env_with_repo() | {"NOTIFY_SOCKET": str(sock_path)} | UNIT_ENV
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--loop", loop,
                                     "-c", str(config)],
                                    cwd=repo_root(), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                msg = sock.recv(4096).decode()
                assert msg.startswith("READY=1"), msg
                times.append(time.perf_counter() - started)
                time.sleep(1.0)  # settle: what a Pi would hold once idle
                rss.append(rss_mib(proc.pid))
            finally:
                proc.terminate()
                proc.wait(timeout=15)
                sock.close()
    return times, rss


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
    args = p.parse_args()
    times, rss = startup(args.devices, args.automations, args.runs, args.loop)
    res = asyncio.run(ingest(args.changes, args.devices))
    print(table(
        f"Uone Hub core ({args.devices} devices, {args.automations} automations, "
        f"{args.changes} state changes, {args.loop} loop)",
        [
            ("start to READY=1, median", f"{statistics.median(times) * 1000:.0f} ms",
             "<= 500 ms (HA 3.1 s)"),
            ("start to READY=1, worst", f"{max(times) * 1000:.0f} ms", ""),
            ("RSS after start, median", f"{statistics.median(rss):.1f} MiB",
             "<= 60 MB (HA 185 MiB)"),
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
