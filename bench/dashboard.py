"""Dashboard benchmark: how soon the first page is usable, in Debian's Chromium (Playwright).

    python -m bench.dashboard [--runs 5] [--devices 1000]

A hub process on loopback (as tests/dashboard starts it), then:
1. cold: a new Chromium process each run, new profile, first page load: from the start of
   navigation until the sign-in form is there to use (`performance.now()` at that moment),
   and the browser's own start beside it. The very first run of all also pays for the OS
   reading Chromium from disk; it is shown on its own.
2. warm: the same browser, a new page in a new context (no HTTP cache), and a reload of
   the same page (HTTP cache), each `--runs` times.
3. signed in with `--devices` virtual devices: from submitting the sign-in form until every
   device card is on the page.
No test asserts any of these times (they vary with the machine): this table is where they
are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import table

FORM = "#login-form"


async def _usable_ms(page: Any, url: str) -> float:
    await page.goto(url)
    await page.wait_for_selector(FORM)
    return await page.evaluate("() => performance.now()")


async def run(runs: int, devices: int) -> list[tuple[str, str, str]]:
    from playwright.async_api import async_playwright

    from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, start_hub, stop_hub

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        devs = [{"id": f"d{i}", "name": f"Device {i}",
                 "kind": "switch" if i % 2 == 0 else "sensor", "area": f"room{i % 20}"}
                for i in range(devices)]
        hub = await asyncio.to_thread(start_hub, Path(tmp), {
            "log_level": "warning", "integrations": {"virtual": {"devices": devs}}})
        url = hub.url + "/"
        try:
            async with async_playwright() as p:
                launches, cold = [], []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    browser = await p.chromium.launch(executable_path=CHROMIUM,
                                                      args=CHROMIUM_ARGS)
                    launches.append((time.perf_counter() - t0) * 1000)
                    try:
                        page = await (await browser.new_context()).new_page()
                        cold.append(await _usable_ms(page, url))
                    finally:
                        await browser.close()
                rows += [
                    ("cold: first run of all, sign-in form usable", f"{cold[0]:.0f} ms",
                     f"browser start {launches[0]:.0f} ms"),
                    ("cold: new Chromium each run, median", f"{statistics.median(cold):.0f} ms",
                     f"browser start {statistics.median(launches):.0f} ms"),
                    ("cold: worst", f"{max(cold):.0f} ms", ""),
                ]
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    fresh, reload = [], []
                    for _ in range(runs):
                        context = await browser.new_context()
                        page = await context.new_page()
                        fresh.append(await _usable_ms(page, url))
                        reload.append(await _usable_ms(page, url))
                        await context.close()
                    rows += [
                        ("warm browser, new context, median", f"{statistics.median(fresh):.0f} ms",
                         "no HTTP cache"),
                        ("warm browser, same page again, median",
                         f"{statistics.median(reload):.0f} ms", "HTTP cache"),
                    ]
                    home = []
                    for _ in range(runs):
                        context = await browser.new_context()
                        page = await context.new_page()
                        await page.goto(url)
                        await page.fill(f"{FORM} input[name=username]", "owner")
                        await page.fill(f"{FORM} input[name=password]", PASSWORD)
                        t0 = time.perf_counter()
                        await page.click(f"{FORM} button[type=submit]")
                        await page.wait_for_function(
                            "(n) => document.querySelectorAll('[data-device]').length >= n",
                            arg=devices, timeout=120_000)
                        home.append((time.perf_counter() - t0) * 1000)
                        await context.close()
                    rows.append((f"sign-in to {devices} device cards shown, median",
                                 f"{statistics.median(home):.0f} ms",
                                 f"worst {max(home):.0f} ms"))
                finally:
                    await browser.close()
        finally:
            await asyncio.to_thread(stop_hub, hub)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    from tests.dashboard.conftest import HAVE_CHROMIUM

    if not HAVE_CHROMIUM:
        print("needs Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    rows = asyncio.run(run(args.runs, args.devices))
    print(table(f"Uone Hub dashboard in Chromium ({args.runs} runs, loopback)", rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
