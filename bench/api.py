"""API benchmark: GET /api/devices with 1,000 devices, and websocket fan-out.

    python -m bench.api [--seconds 5] [--devices 1000]

The hub runs in its own process (the real ApiServer on loopback, plain HTTP as on a
loopback listener); the load comes from another process with keep-alive connections:
`wrk` (Debian package wrk; a native load generator, so the client is not the bottleneck)
when installed, else an aiohttp client process (which saturates long before the hub does).
1. GET /api/devices (owner token): requests/s and p50/p99 latency with 8 and 50 clients,
   once as identity (326 KB body: the lean list, 498 KB before it left out null and default
   fields) and once with Accept-Encoding: gzip (what browsers and aiohttp send by default;
   the hub keeps the compressed list cached until a device changes); then with
   `?fields=id,name,area,available` (serialized per request, not cached).
2. 20 websocket clients subscribed to every state change while the hub makes 1,000 state
   changes per second: delivery latency (event timestamp -> client receive) p50/p99.
Home Assistant's /api/states with 1,000 entities did 2,175 req/s on a machine like CI's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import env_with_repo, percentile, repo_root, rss_mib, table, virtual_config

WS_CLIENTS = 20
WS_RATE = 1000


# -- the server process ------------------------------------------------------------------


async def _serve(config: str, rate: int, seconds: float, clients: int) -> None:
    from hub.api.server import ApiServer
    from hub.auth.principal import Role
    from hub.config import load_config
    from hub.hub import Hub

    loaded = load_config(config)
    async with Hub(loaded) as hub:
        owner = await hub.auth.create_user("bench", "bench password", Role.OWNER)
        token, _ = await hub.auth.create_token(owner.id, "bench")
        async with ApiServer(hub) as server:
            print(json.dumps({"port": server.port, "token": token, "devices": len(hub.devices)}),
                  flush=True)
            if rate:
                await _generate(hub, rate, seconds, clients)
            else:
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _generate(hub: Any, rate: int, seconds: float, clients: int) -> None:
    """Once `clients` websockets listen, change sensor values at `rate` per second."""
    def listening() -> int:
        return sum(1 for s in hub.bus.stats()["subscriptions"] if s["name"].startswith("ws:"))

    for _ in range(6000):  # up to 5 minutes for the clients (another process) to subscribe
        if listening() >= clients:
            break
        await asyncio.sleep(0.05)
    sensors = [d.id for d in hub.devices.all() if d.id.endswith(("1", "3", "5", "7", "9"))]
    per_tick = max(1, rate // 100)  # every 10 ms
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(per_tick):
            n += 1
            hub.states.set(sensors[n % len(sensors)], {"value": float(n)})
        await asyncio.sleep(max(0.0, start + (n / rate) - time.monotonic()))
    await asyncio.sleep(1.0)  # let the last events drain
    print(json.dumps({"published": n, "dropped": hub.bus.dropped}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# -- the client process ------------------------------------------------------------------


async def _http_load(port: int, token: str, concurrency: int, seconds: float,
                     gzip: bool = False) -> dict[str, Any]:
    """Like wrk: bodies are read, not decoded."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/devices"
    headers = {"Authorization": f"Bearer {token}",
               "Accept-Encoding": "gzip" if gzip else "identity"}
    latencies: list[float] = []
    errors = 0
    size = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     auto_decompress=False) as session:
        async with session.get(url) as r:
            size = len(await r.read())
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                async with session.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
            "bytes": size}


async def _ws_load(port: int, token: str, clients: int, expect: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    closed = 0
    async with aiohttp.ClientSession() as session:
        sockets = []
        for _ in range(clients):
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/api/ws",
                                          headers={"Authorization": f"Bearer {token}"})
            await ws.receive_json()
            await ws.send_json({"type": "subscribe", "events": ["state_changed"]})
            await ws.receive_json()
            sockets.append(ws)

        async def reader(ws: Any) -> None:
            nonlocal closed
            got = 0
            while got < expect:
                try:
                    msg = await ws.receive(timeout=10)
                except TimeoutError:
                    return
                if msg.type != aiohttp.WSMsgType.TEXT:
                    closed += 1
                    return
                now = time.time()
                latencies.append(now - json.loads(msg.data)["event"]["ts"])
                got += 1

        await asyncio.gather(*(reader(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
    return {"received": len(latencies), "closed": closed,
            "p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000}


FIELDS = "?fields=id,name,area,available"


def _wrk(port: int, token: str, concurrency: int, seconds: float,
         gzip: bool, query: str = "") -> dict[str, Any]:
    cmd = ["wrk", "-t2" if concurrency > 8 else "-t1", f"-c{concurrency}",
           f"-d{max(1, int(seconds))}s", "--latency", "-H", f"Authorization: Bearer {token}"]
    if gzip:
        cmd += ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/api/devices{query}"],
                         capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m is not None, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": rps, "p50": ms("50"), "p99": ms("99"),
            "errors": int(errors.group(1)) if errors else 0}


# -- orchestration -----------------------------------------------------------------------


def _start_server(config: Path, rate: int = 0, seconds: float = 0.0) -> tuple[Any, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.api", "_serve", str(config), str(rate), str(seconds),
         str(WS_CLIENTS)],
        cwd=repo_root(), env=env_with_repo(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def _stop(proc: Any) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.wait(30)


def _sizes(port: int, token: str, query: str = "") -> tuple[int, int]:
    import urllib.request

    out = []
    for enc in ("identity", "gzip"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/devices{query}", headers={
            "Authorization": f"Bearer {token}", "Accept-Encoding": enc})
        with urllib.request.urlopen(req) as resp:
            out.append(len(resp.read()))
    return out[0], out[1]


def _client(kind: str, *args: Any) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.api", kind, *map(str, args)],
                         cwd=repo_root(), env=env_with_repo(), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = virtual_config(Path(tmp), args.devices)
        proc, info = _start_server(config)
        try:
            rss = rss_mib(proc.pid)
            tool = "wrk" if shutil.which("wrk") else "aiohttp"
            for gzip in (False, True):
                label = "gzip" if gzip else "identity"
                for conc in (8, 50):
                    if tool == "wrk":
                        r = _wrk(info["port"], info["token"], conc, args.seconds, gzip)
                    else:
                        r = _client("_http", info["port"], info["token"], conc, args.seconds,
                                    int(gzip))
                    target = ">= 6,500 (HA /api/states: 2,175)" if conc == 8 else "-"
                    rows.append((f"GET /api/devices {label}, {conc} clients ({tool}): req/s",
                                 f"{r['rps']:,.0f}", target))
                    rows.append(("  p50 / p99 ms", f"{r['p50']:.2f} / {r['p99']:.2f}", "-"))
                    if r["errors"]:
                        rows.append((f"  errors ({conc} clients)", str(r["errors"]), "0"))
            sizes = _sizes(info["port"], info["token"])
            rows.append(("response size identity / gzip, bytes",
                         f"{sizes[0]:,} / {sizes[1]:,}", f"{info['devices']} devices"))
            if tool == "wrk":
                r = _wrk(info["port"], info["token"], 8, args.seconds, False, FIELDS)
                rows.append((f"GET /api/devices{FIELDS}, 8 clients (wrk): req/s",
                             f"{r['rps']:,.0f}", "-"))
                rows.append(("  p50 / p99 ms", f"{r['p50']:.2f} / {r['p99']:.2f}", "-"))
            rows.append((f"  its size, bytes ({FIELDS})",
                         f"{_sizes(info['port'], info['token'], FIELDS)[0]:,}", "identity"))
            rows.append(("hub RSS after load, MiB", f"{rss_mib(proc.pid):.1f}",
                         f"(before: {rss:.1f})"))
        finally:
            _stop(proc)
    with tempfile.TemporaryDirectory() as tmp:
        config = virtual_config(Path(tmp), args.devices)
        proc, info = _start_server(config, WS_RATE, args.seconds)
        try:
            expect = int(WS_RATE * args.seconds)
            r = _client("_ws", info["port"], info["token"], WS_CLIENTS, expect)
            assert proc.stdout is not None
            gen = json.loads(proc.stdout.readline())
        finally:
            _stop(proc)
    rows.append((f"websocket: {WS_RATE} changes/s to {WS_CLIENTS} clients, delivered",
                 f"{r['received']:,} of {gen['published'] * WS_CLIENTS:,}",
                 f"dropped {gen['dropped']}, closed {r['closed']}"))
    rows.append(("websocket delivery p50 / p99 ms", f"{r['p50']:.2f} / {r['p99']:.2f}", "-"))
    print(table(f"Uone Hub API benchmark ({args.seconds:g} s per run)", rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        asyncio.run(_serve(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                           int(sys.argv[5])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_http":
        print(json.dumps(asyncio.run(_http_load(int(sys.argv[2]), sys.argv[3],
                                                int(sys.argv[4]), float(sys.argv[5]),
                                                bool(int(sys.argv[6]))))))
    elif len(sys.argv) > 1 and sys.argv[1] == "_ws":
        print(json.dumps(asyncio.run(_ws_load(int(sys.argv[2]), sys.argv[3],
                                              int(sys.argv[4]), int(sys.argv[5])))))
    else:
        main()
