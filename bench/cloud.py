"""Cloud sync benchmark: `python -m bench.cloud` (root not needed; loopback only).

Starts a real mosquitto (TLS with a throwaway CA, password auth) on loopback and an in-process
hub with cloud sync on, then measures:
- throughput: state changes -> sealed outbox rows -> PUBACK, messages per second, for a burst
  of N changes (every change is one stream message; retained snapshots are coalesced per batch);
- latency: hub state change -> broker -> remote client (decrypted, deduplicated), p50/p99,
  at a paced rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from hub.cloud.crypto import Pairing
from hub.cloud.remote import CloudPeer
from hub.cloud.sources import CLOUD_SYNC, MemoryConsent, MemorySecrets
from hub.config import load_config
from hub.hub import Hub
from tests.doubles import mosquitto

USERS = {"hub": "bench-hub", "phone": "bench-phone"}
SYNC_KEY = bytes(range(32))


async def _until(predicate: Any, step: float = 0.002, within: float = 60.0) -> bool:
    """Poll hub counters (they have no event to wait on); False on timeout."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def _config(tmp: Path, broker: mosquitto.Mosquitto, commit_interval: float,
            max_delay: float | None) -> Path:
    cfg: dict[str, Any] = {
        "data_dir": str(tmp / f"data-{commit_interval}-{max_delay}"),
        "log_level": "warning",
        "storage": {"commit_interval": commit_interval},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": [
            {"id": "temp", "name": "Temperature", "kind": "sensor", "initial": 0.0}]}},
        "cloud": {"broker_url": broker.url, "ca_file": str(broker.pki.ca), "username": "hub",
                  "password_secret": "pw", "categories": ["states"], "outbox_limit": 1_000_000,
                  "max_delay": max_delay},
    }
    path = tmp / f"config-{commit_interval}-{max_delay}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def _hub(path: Path) -> Hub:
    hub = Hub(load_config(path))
    hub.cloud.consent = MemoryConsent(CLOUD_SYNC)
    hub.cloud.secrets = MemorySecrets({"pw": USERS["hub"],
                                       "cloud/sync_key": base64.b64encode(SYNC_KEY).decode()})
    await hub.start()
    if not await _until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0, 0.01, 20):
        raise RuntimeError(f"hub did not connect: {hub.cloud.status()['last_error']}")
    return hub


async def throughput(path: Path, n: int) -> dict[str, float]:
    hub = await _hub(path)
    try:
        delivered0 = hub.cloud.outbox.delivered
        started = time.perf_counter()
        for i in range(n):
            hub.states.set("virtual.temp", {"value": float(i)})
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the writer and publisher run, as a live hub would
        await _until(lambda: not hub.cloud.outbox.depth
                     and hub.cloud.outbox.delivered - delivered0 >= n)
        elapsed = time.perf_counter() - started
        msgs = hub.cloud.outbox.delivered - delivered0
        return {"changes": n, "messages": msgs, "seconds": elapsed, "msgs_per_s": msgs / elapsed,
                "commits": hub.db.stats.commits}
    finally:
        await hub.stop()


async def latency(path: Path, broker: mosquitto.Mosquitto, n: int, rate: float) -> dict[str, float]:
    hub = await _hub(path)
    sent: dict[float, float] = {}
    got: dict[float, float] = {}

    def on_message(topic: str, seq: int, body: Any) -> None:
        if body.get("type") == "state" and body.get("value") in sent:
            got.setdefault(body["value"], time.perf_counter())

    pairing = Pairing(hub.cloud.outbox.hub_id, "uone", SYNC_KEY)
    try:
        async with CloudPeer(pairing, host="127.0.0.1", port=broker.port, username="phone",
                             password=USERS["phone"], ca_file=str(broker.pki.ca),
                             persistent=False, on_message=on_message):
            await asyncio.sleep(0.2)
            for i in range(n):
                value = 10_000.0 + i
                sent[value] = time.perf_counter()
                hub.states.set("virtual.temp", {"value": value})
                await asyncio.sleep(1 / rate)
            await _until(lambda: len(got) >= n, 0.01, 10)
    finally:
        await hub.stop()
    lat = sorted((got[v] - sent[v]) * 1000 for v in got)
    return {"samples": len(lat), "lost": n - len(lat), "p50_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "max_ms": lat[-1]}


async def run(args: argparse.Namespace) -> int:
    reason = mosquitto.available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="uone-bench-cloud-"))
    broker = mosquitto.Mosquitto(tmp / "broker", mosquitto.make_pki(tmp / "pki"), USERS)
    broker.start()
    rows: list[tuple[str, str, str]] = []
    try:
        for interval in args.commit_intervals:
            path = _config(tmp, broker, interval, args.max_delay)
            label = f"commit_interval {interval}s" + (
                f", max_delay {args.max_delay}s" if args.max_delay is not None else "")
            t = await throughput(path, args.changes)
            rows.append((f"state change -> PUBACK ({label})",
                         f"{t['msgs_per_s']:,.0f} msgs/s",
                         f"{t['messages']:.0f} msgs in {t['seconds']:.2f} s, "
                         f"{t['commits']:.0f} commits"))
            lat = await latency(path, broker, args.samples, args.rate)
            rows.append((f"hub -> broker -> client latency ({label})",
                         f"p50 {lat['p50_ms']:.1f} ms / p99 {lat['p99_ms']:.1f} ms",
                         f"{lat['samples']:.0f} samples at {args.rate:.0f}/s, max "
                         f"{lat['max_ms']:.1f} ms, lost {lat['lost']:.0f}"))
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<{vwidth}}  detail")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 40}")
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {detail}")
    print("(loopback, TLS 1.2+/1.3 + password auth, MQTT 5 QoS 1, AES-256-GCM payloads, "
          "SQLite outbox in the same transaction as history)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=5000, help="state changes in the burst")
    parser.add_argument("--samples", type=int, default=500, help="latency samples")
    parser.add_argument("--rate", type=float, default=100.0, help="latency samples per second")
    parser.add_argument("--commit-intervals", type=float, nargs="+", default=[0.05, 1.0],
                        help="storage.commit_interval values to measure")
    parser.add_argument("--max-delay", type=float, default=None,
                        help="cloud.max_delay (commit early to publish sooner)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
