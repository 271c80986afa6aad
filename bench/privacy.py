"""Privacy benchmarks on a hub with 1,000,000 history rows:
export time and peak RSS growth, and erasing one device's 100,000 rows while the API is
measured (p99 must stay under 50 ms).

    python -m bench.privacy [--rows 1000000] [--victim 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from bench.common import percentile, table, virtual_config

VICTIM = "bench.victim"


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def seed(db: Path, rows: int, victim: int) -> None:
    """Bulk history: `victim` rows for one device, the rest spread over 50 others."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    now = time.time()
    rnd = random.Random(7)
    sql = "INSERT INTO history(device_id, attribute, value, ts) VALUES(?,?,?,?)"
    batch = []
    for i in range(rows):
        dev = VICTIM if i < victim else f"virtual.d{rnd.randrange(50)}"
        batch.append((dev, "value", str(round(rnd.uniform(10, 30), 2)), now - 86_400 + i * 0.08))
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def run(rows: int, victim: int) -> list[tuple[str, str, str]]:
    from hub.api.server import ApiServer
    from hub.auth.principal import Role
    from hub.config import load_config
    from hub.hub import Hub

    out: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = virtual_config(tmp, 50, commit_interval=0.5)
        loaded = load_config(cfg)
        async with Hub(loaded):
            pass  # creates and migrates the database
        t0 = time.perf_counter()
        await asyncio.to_thread(seed, loaded.state_dir / "hub.db", rows, victim)
        out.append(("seed rows", f"{rows:,} ({time.perf_counter() - t0:.1f} s)", ""))
        db_mib = (loaded.state_dir / "hub.db").stat().st_size / 2**20
        out.append(("database size", f"{db_mib:.0f} MiB", ""))

        async with Hub(loaded) as hub, ApiServer(hub) as api:
            owner = await hub.auth.create_user("owner", "bench password 1", Role.OWNER)
            token, _ = await hub.auth.create_token(owner.id, "bench")
            base = f"http://127.0.0.1:{api.port}"
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                # -- export over the API, streamed, the client discarding what it reads
                await asyncio.sleep(0.5)
                rss0 = _rss_kib()
                peak_ok = _reset_peak()
                sampled = [rss0]
                sampling = threading.Event()

                def sample() -> None:  # a second witness besides the kernel's VmHWM
                    while not sampling.is_set():
                        sampled.append(_rss_kib())
                        time.sleep(0.005)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                t0 = time.perf_counter()
                size = 0
                async with http.post(f"{base}/api/privacy/export") as r:
                    assert r.status == 200, await r.text()
                    async for chunk in r.content.iter_chunked(1 << 16):
                        size += len(chunk)
                export_s = time.perf_counter() - t0
                sampling.set()
                sampler.join()
                peak = max(_rss_kib("VmHWM") if peak_ok else 0, max(sampled))
                growth = (peak - rss0) / 1024
                out.append(("export (API, streamed)", f"{export_s:.1f} s, {size / 2**20:.1f} MiB"
                            f" ZIP, {rows / export_s:,.0f} rows/s", ""))
                out.append(("export peak RSS growth", f"{growth:.1f} MiB", "< 30 MiB"))

                # -- erase one device's rows while clients measure the API
                latencies: dict[str, list[float]] = {
                    "GET /api/devices": [], "GET /api/privacy/consents": [],
                    "GET .../consents/history (db read)": []}
                stop = asyncio.Event()

                async def probe(path: str, name: str) -> None:
                    while not stop.is_set():
                        s = time.perf_counter()
                        async with http.get(base + path) as resp:
                            await resp.read()
                        latencies[name].append((time.perf_counter() - s) * 1000)
                        await asyncio.sleep(0.005)

                probes = [asyncio.create_task(probe("/api/devices", "GET /api/devices")),
                          asyncio.create_task(probe("/api/privacy/consents",
                                                    "GET /api/privacy/consents")),
                          asyncio.create_task(probe("/api/privacy/consents/history",
                                                    "GET .../consents/history (db read)"))]
                await asyncio.sleep(0.3)
                for v in latencies.values():
                    v.clear()
                t0 = time.perf_counter()
                async with http.post(f"{base}/api/privacy/erase",
                                     json={"target": "device", "device_id": VICTIM}) as r:
                    body = await r.json()
                    assert r.status == 200, body
                erase_s = time.perf_counter() - t0
                stop.set()
                await asyncio.gather(*probes)
                out.append(("erase device (batches + VACUUM)",
                            f"{body['deleted']['history']:,} rows in {erase_s:.1f} s", ""))
                for name, values in latencies.items():
                    out.append((f"{name} during erase",
                                f"p50 {percentile(values, 50):.1f} ms, p99 "
                                f"{percentile(values, 99):.1f} ms, max {max(values):.1f} ms "
                                f"(n={len(values)})", "p99 < 50 ms"))
                left = await hub.db.fetchone(
                    "SELECT count(*) AS n FROM history WHERE device_id = ?", (VICTIM,))
                out.append(("victim rows left", str(left["n"]), "0"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--victim", type=int, default=100_000)
    args = ap.parse_args()
    rows = asyncio.run(run(args.rows, args.victim))
    print(table(f"privacy: {args.rows:,} history rows", rows))


if __name__ == "__main__":
    main()
