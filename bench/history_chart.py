"""History graph benchmark: a week of a busy sensor (100,000 rows) on the device page.

    python -m bench.history_chart [--rows 100000] [--events 10000] [--points 200]

A hub process with one virtual sensor whose history holds `--rows` readings and `--events`
device events (drawn as marks) spread over 7 days (written into its database while it is
stopped). Measured:
1. GET /api/devices/virtual.temp/history?points=N (downsampled in SQL): body size, time;
   the raw history (`limit=10000`, the most the API gives) for comparison.
2. Debian's Chromium (Playwright) opening the device page with the 7 d range: time from the
   click until the SVG graph is in the page, and the response size the page fetched.
Target (issue 19): response under 100 KB, rendered in under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import table

ROOT = Path(__file__).resolve().parents[1]


def _seed(db: Path, rows: int, events: int) -> None:
    now = time.time()
    step = 7 * 86400 / rows
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO history(device_id, attribute, value, ts) VALUES(?, ?, ?, ?)",
            ((("virtual.temp", "value", f"{20 + 5 * math.sin(i / 2000) + (i % 7) / 10:.2f}",
               now - 7 * 86400 + i * step)) for i in range(rows)))
        estep = 7 * 86400 / max(events, 1)
        conn.executemany(
            "INSERT INTO events(device_id, event_type, data, ts) VALUES(?, ?, ?, ?)",
            (("virtual.temp", ("press", "double_press", "long_press")[i % 3], '{"n": 1}',
              now - 7 * 86400 + i * estep) for i in range(events)))


def _get(hub, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    req = urllib.request.Request(hub.url + path, headers={"Authorization": f"Bearer {hub.token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return len(body), time.perf_counter() - t0


async def _browser(hub, events: int) -> tuple[float, int]:
    from playwright.async_api import async_playwright

    from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, open_page, sign_in

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context, page, _ = await open_page(b, hub)
        await sign_in(page, hub, totp=False)
        await page.goto(hub.url + "/#/device/virtual.temp")
        await page.wait_for_selector("#history svg.chart")
        await page.evaluate("document.querySelector('#history svg.chart').dataset.old = '1'")
        t0 = time.perf_counter()
        async with page.expect_response(lambda r: "/history?" in r.url) as answer:
            await page.click('[data-range="7 d"]')
        size = len(await (await answer.value).body())
        await page.wait_for_selector("#history svg.chart:not([data-old])")
        if events:
            await page.wait_for_selector("#history svg.events")
        took = time.perf_counter() - t0
        await context.close()
        await b.close()
        return took, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.dashboard.conftest import PASSWORD, start_hub, stop_hub

    devices = [{"id": "temp", "name": "Temperature", "kind": "sensor", "initial": 20.0,
                "unit": "°C"}]
    extra = {"integrations": {"virtual": {"devices": devices}}}
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp), extra)
        stop_hub(hub)
        _seed(Path(tmp) / "data" / "hub.db", args.rows, args.events)
        hub = start_hub(Path(tmp), extra, owner=False)
        req = urllib.request.Request(hub.url + "/api/auth/login", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"username": "owner",
                                                      "password": PASSWORD}).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            hub.token = json.loads(resp.read())["access_token"]
        try:
            since = time.time() - 7 * 86400 - 60
            size, took = _get(hub, f"/api/devices/virtual.temp/history?since={since}"
                                   f"&points={args.points}")
            raw_size, raw_took = _get(hub, f"/api/devices/virtual.temp/history?since={since}"
                                           "&limit=10000")
            render, page_size = asyncio.run(_browser(hub, args.events))
        finally:
            stop_hub(hub)
    print(table(f"History graph: {args.rows:,} rows and {args.events:,} events over 7 days, "
                f"{args.points} points", [
        ("downsampled response", f"{size / 1024:.1f} KB", "< 100 KB"),
        ("downsampled response time", f"{took * 1000:.0f} ms", ""),
        ("raw response (first 10,000 rows only)", f"{raw_size / 1024:.1f} KB",
         f"{raw_took * 1000:.0f} ms"),
        ("page: click 7 d -> graph drawn", f"{render * 1000:.0f} ms", "< 1 s"),
        ("page: history response fetched", f"{page_size / 1024:.1f} KB", "< 100 KB"),
    ]))


if __name__ == "__main__":
    main()
