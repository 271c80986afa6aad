"""Automation benchmark, measured from outside as a LAN client sees it.

The hub runs as its own process (`python -m hub run -c <generated config>`) with N virtual
switches (A and B halves) and one automation per pair: "when A changes, toggle B". A client
commands A with a `command` message on its websocket (`GET /api/ws`) and times until B's
state change arrives on the same websocket. `--http-row` adds the same measurement with the
command sent over HTTP instead (`POST /api/devices/{id}/commands`, kept-alive).

Reports p50/p99 over triggers sent one at a time, and completed triggers per second with a
bounded number in flight. Run from the repository root:

    python -m bench.automation [--devices 1000 --automations 500 --sequential 1000 \
        --total 10000 --inflight 256] [--netns] [--both] [--http-row] [--echo-row]

`--netns` runs hub and client in a fresh network namespace (needs root and iproute2); the
default is loopback. Nothing leaves the machine either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-0123456789"
WARM_UP = 200  # triggers before each phase is timed


def write_config(workdir: Path, port: int, pairs: int, devices: int) -> Path:
    extra = max(0, devices - 2 * pairs)
    virtual = [{"id": f"a{i:04d}", "kind": "switch"} for i in range(pairs)]
    virtual += [{"id": f"b{i:04d}", "kind": "switch"} for i in range(pairs)]
    virtual += [{"id": f"s{i:04d}", "kind": "sensor"} for i in range(extra)]
    automations = [
        {"id": f"pair{i:04d}", "mode": "parallel", "max": 100,
         "triggers": [{"type": "state", "device": f"virtual.a{i:04d}", "attribute": "on"}],
         "actions": [{"type": "command", "device": f"virtual.b{i:04d}", "command": "toggle"}]}
        for i in range(pairs)
    ]
    cfg = {
        "data_dir": str(workdir / "data"),
        "log_level": "warning",
        # the load comes from one address over up to 512 connections
        "api": {"host": "127.0.0.1", "port": port, "max_connections_per_address": 1024},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": virtual}},
        "automations": automations,
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Client:
    """One LAN client: a websocket for state changes and (`via="ws"`) for commands, or
    HTTP for the commands (`via="raw"`: a minimal HTTP/1.1 client; `"aiohttp"`)."""

    def __init__(self, base: str, token: str, pairs: int, via: str = "ws",
                 coalesce: bool = True) -> None:
        self.base = base
        self.coalesce = coalesce
        self.headers = {"Authorization": f"Bearer {token}"}
        self.pairs = pairs
        self.via = via
        # one id per (pair, direct): at most one trigger per pair is in flight
        self.ws_commands = {
            (i, direct): json.dumps({
                "type": "command", "id": 2 * i + direct,
                "device_id": f"virtual.{'b' if direct else 'a'}{i:04d}",
                "command": "toggle"}, separators=(",", ":"))
            for i in range(pairs) for direct in (False, True)}
        self.errors: list[dict[str, Any]] = []
        self.lanes: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.requests: dict[tuple[int, bool], bytes] = {}
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.addr = (host, int(port))
        body = b'{"command":"toggle"}'
        for i in range(pairs):
            for direct in (False, True):
                self.requests[(i, direct)] = (
                    f"POST /api/devices/virtual.{'b' if direct else 'a'}{i:04d}/commands "
                    f"HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.bodies = [json.dumps({"command": "toggle"}).encode()]

    async def open(self) -> None:
        conn = aiohttp.TCPConnector(limit=512)
        self.session = aiohttp.ClientSession(connector=conn, headers=self.headers)
        self.ws = await self.session.ws_connect(f"{self.base}/api/ws", max_msg_size=1 << 20)
        ready = await self.ws.receive_json()
        assert ready["type"] == "ready", ready
        if self.coalesce:  # several messages per frame when the hub has more than one ready
            await self.ws.send_json({"type": "features", "coalesce": True})
            ack = await self.ws.receive_json()
            assert ack == {"type": "features", "coalesce": True}, ack
        b_ids = [f"virtual.b{i:04d}" for i in range(self.pairs)]
        await self.ws.send_json({"type": "subscribe", "devices": b_ids,
                                 "events": ["state_changed"]})
        ack = await self.ws.receive_json()
        assert ack["type"] == "subscribed", ack
        self.reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        for _, writer in self.lanes:
            writer.close()
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def _read(self) -> None:
        assert self.ws is not None
        loads = json.loads
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            body = loads(msg.data)
            for one in body if isinstance(body, list) else (body,):
                if one["type"] == "error":
                    self.errors.append(one)
                    for fut in self.waiting.values():
                        if not fut.done():
                            fut.set_exception(RuntimeError(f"command failed: {one}"))
                    continue
                event = one.get("event") or {}
                fut = self.waiting.pop(event.get("device_id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(now)

    async def trigger(self, pair: int, direct: bool = False) -> float:
        """Command A of `pair` (or B itself, `direct`: the transport floor without the
        automation); seconds until B's change arrived on the websocket."""
        assert self.session is not None
        b = f"virtual.b{pair:04d}"
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[b] = fut
        if self.via == "ws":
            assert self.ws is not None
            t0 = time.perf_counter()
            await self.ws.send_str(self.ws_commands[(pair, direct)])
            return await asyncio.wait_for(fut, 10.0) - t0
        if self.via == "raw":
            return await self._raw_trigger(pair, direct, fut)
        t0 = time.perf_counter()
        post = asyncio.ensure_future(self.session.post(
            f"{self.base}/api/devices/virtual.{'b' if direct else 'a'}{pair:04d}/commands",
            data=self.bodies[0],
            headers={"Content-Type": "application/json"}))
        arrived = await asyncio.wait_for(fut, 10.0)
        resp = await post
        if resp.status != 200:
            raise RuntimeError(f"command failed: {resp.status} {await resp.text()}")
        resp.release()
        return arrived - t0


    async def _raw_trigger(self, pair: int, direct: bool, fut: asyncio.Future[float]) -> float:
        """The same request over a kept-alive connection with a minimal HTTP/1.1 client, so
        that the client's own cost disturbs the measurement less than aiohttp's would."""
        if self.lanes:
            reader, writer = self.lanes.pop()
        else:
            reader, writer = await asyncio.open_connection(*self.addr)
        t0 = time.perf_counter()
        writer.write(self.requests[(pair, direct)])
        arrived = await asyncio.wait_for(fut, 10.0)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"command failed: {head[:40]!r} {body[:200]!r}")
        self.lanes.append((reader, writer))
        return arrived - t0


async def onboard(base: str, state_dir: Path, timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"{base}/api/health") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("hub did not start")
            await asyncio.sleep(0.1)
        code = (state_dir / "onboarding-code").read_text().strip()
        async with s.post(f"{base}/api/onboarding", json={
                "code": code, "username": "bench", "password": PASSWORD}) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"onboarding failed: {body}")
            return body["access_token"]


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (from /proc), to see which side is the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shares(total: int, workers: int) -> list[int]:
    """`total` split as evenly as can be over `workers` concurrent loops."""
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


def latency_ms(lat: list[float]) -> dict[str, float]:
    """p50 and p99 (the 99th of 100: a lower index than rounding) of sorted seconds, in ms."""
    return {"p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000}


async def settle(pid: int, quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Wait until the hub has used (almost) no CPU for `quiet` seconds: the one-at-a-time
    figures are for a hub at rest, not one still committing the previous burst's history
    on a core the client needs (2 cores: hub loop, writer thread and client share them).
    Not longer: a VM that sat idle for seconds hands pages back to its host and is slow to
    fault them in again. A batch that waits for the commit interval (5 s) may still land
    in a later phase; the first phase is the one reported at the top."""
    end = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < end:
        await asyncio.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last <= 0.02 * quiet:
            return
        last = now


async def measure(base: str, token: str, pairs: int, sequential: int, total: int,
                  inflight: int, pid: int, direct: bool = False, via: str = "ws",
                  coalesce: bool = True) -> dict[str, Any]:
    client = Client(base, token, pairs, via, coalesce)
    await client.open()
    try:
        await settle(pid)
        for i in range(WARM_UP):  # allocator, caches, sockets, the heap traces will need
            await client.trigger(i % pairs, direct)
        lat = [await client.trigger(i % pairs, direct) for i in range(sequential)]
        lat.sort()
        free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(pairs):
            free.put_nowait(i)
        done = 0

        async def worker(n: int) -> None:
            nonlocal done
            for _ in range(n):
                pair = await free.get()
                await client.trigger(pair, direct)
                free.put_nowait(pair)
                done += 1

        workers = min(inflight, pairs)
        t0 = time.perf_counter()
        hub_cpu0, own_cpu0 = cpu_seconds(pid), time.process_time()
        await asyncio.gather(*(worker(n) for n in shares(total, workers)))
        elapsed = time.perf_counter() - t0
        hub_cpu, own_cpu = cpu_seconds(pid) - hub_cpu0, time.process_time() - own_cpu0
    finally:
        await client.close()
    return {
        **latency_ms(lat),
        "max_ms": lat[-1] * 1000,
        "triggers_per_s": done / elapsed,
        "inflight": workers,
        "completed": done,
        "hub_cpu_share": hub_cpu / elapsed,
        "client_cpu_share": own_cpu / elapsed,
    }


async def measure_echo(sequential: int, total: int, inflight: int) -> dict[str, Any]:
    """The same counts against a bare aiohttp websocket echo server in its own process
    (bench/echo.py): one frame out, the same frame back, for each 'trigger'."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.echo", str(port),
                                                  cwd=ROOT)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise RuntimeError("echo server did not start")
            waiting: dict[str, asyncio.Future[float]] = {}

            async def read() -> None:
                async for msg in ws:
                    fut = waiting.pop(msg.data, None)
                    if fut is not None:
                        fut.set_result(time.perf_counter())

            reader = asyncio.create_task(read())
            loop = asyncio.get_running_loop()

            async def one(key: str) -> float:
                fut = waiting[key] = loop.create_future()
                t0 = time.perf_counter()
                await ws.send_str(key)
                return await asyncio.wait_for(fut, 10.0) - t0

            await settle(server.pid)
            for i in range(WARM_UP):
                await one(f'{{"id":{i}}}')
            lat = sorted([await one(f'{{"id":{i}}}') for i in range(sequential)])

            async def worker(w: int, n: int) -> None:
                for i in range(n):
                    await one(f'{{"w":{w},"i":{i}}}')

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w, n)
                                   for w, n in enumerate(shares(total, max(1, inflight)))))
            elapsed = time.perf_counter() - t0
            reader.cancel()
            await ws.close()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
    return {**latency_ms(lat), "triggers_per_s": total / elapsed}


def hub_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def run(args: argparse.Namespace, base: str, state_dir: Path, started: float,
              pid: int) -> dict[str, Any]:
    token = await onboard(base, state_dir)
    ready = time.perf_counter() - started
    keys = ("p50_ms", "p99_ms", "triggers_per_s")
    coalesce = not args.no_coalesce
    result = await measure(base, token, args.automations, args.sequential, args.total,
                           args.inflight, pid, via="ws", coalesce=coalesce)
    if args.both:
        other = await measure(base, token, args.automations, args.sequential, args.total,
                              args.inflight, pid, via="ws", coalesce=not coalesce)
        result["other"] = {k: other[k] for k in keys}
    if not args.no_floor:
        floor = await measure(base, token, args.automations, args.sequential, args.total,
                              args.inflight, pid, direct=True, via="ws", coalesce=coalesce)
        result["floor"] = {k: floor[k] for k in keys}
    if args.http_row:
        http = await measure(base, token, args.automations, args.sequential, args.total,
                             args.inflight, pid, via=args.client)
        result["http"] = {k: http[k] for k in keys}
    result["hub_ready_s"] = ready
    result["hub_rss_mib"] = (hub_rss_kib(pid) or 0) / 1024
    if args.echo_row:
        result["echo"] = await measure_echo(args.sequential, args.total, args.inflight)
    return result


def run_with_hub(args: argparse.Namespace) -> dict[str, Any]:
    """Start the hub as its own process, measure against it, stop it (SIGTERM)."""
    workdir = Path(tempfile.mkdtemp(prefix="uone-bench-auto-"))
    port = free_port()
    cfg = write_config(workdir, port, args.automations, args.devices)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("STATE_DIRECTORY", None)
    env.pop("NOTIFY_SOCKET", None)
    log = (workdir / "hub.log").open("w")
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "hub", "run", "-c", str(cfg)]
    if args.loop:
        cmd += ["--loop", args.loop]
    if args.profile:
        cmd[1:1] = ["-m", "cProfile", "-o", args.profile]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return asyncio.run(run(args, f"http://127.0.0.1:{port}", workdir / "data", started,
                               proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def in_process(pairs: int, devices: int, rounds: int = 20) -> dict[str, float]:
    """The hub's own cost without HTTP: command A in-process, count B's changes on the bus.
    Reported apart from the LAN figures; it shows what the transport costs."""
    import logging

    from hub.bus import StateChanged
    from hub.config import load_config
    from hub.hub import Hub

    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="uone-bench-auto-"))
    try:
        loaded = load_config(write_config(workdir, 0, pairs, devices))
        out: dict[str, float] = {}
        async with Hub(loaded) as hub:
            seen = 0
            target = 0
            reached = asyncio.Event()

            def count(_ev: Any) -> None:
                nonlocal seen
                seen += 1
                if seen >= target:
                    reached.set()

            unsubs = [hub.bus.subscribe(StateChanged, count, key=f"virtual.b{i:04d}")
                      for i in range(pairs)]
            for label, prefix in (("automation", "a"), ("direct", "b")):
                seen = 0
                t0, c0 = time.perf_counter(), time.process_time()
                for r in range(rounds):
                    target = (r + 1) * pairs
                    reached.clear()
                    for i in range(pairs):
                        await hub.integrations.command(f"virtual.{prefix}{i:04d}", "toggle", {})
                    if seen < target:
                        await reached.wait()
                n = rounds * pairs
                out[f"{label}_per_s"] = n / (time.perf_counter() - t0)
                out[f"{label}_cpu_us"] = (time.process_time() - c0) / n * 1e6
            for unsub in unsubs:
                unsub()
        return out
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--automations", type=int, default=500)
    p.add_argument("--sequential", type=int, default=1000)
    p.add_argument("--total", type=int, default=10_000)
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--netns", action="store_true", help="run inside a fresh network namespace")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"),
                   help="the hub's event loop (hub run --loop; default: the hub's own)")
    p.add_argument("--http-row", action="store_true",
                   help="also measure with the command to A sent over HTTP")
    p.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                   help="HTTP client for --http-row: a minimal keep-alive HTTP/1.1 client "
                        "(default) or aiohttp's")
    p.add_argument("--in-process", action="store_true",
                   help="only measure the hub's own cost in this process (no HTTP, no socket)")
    p.add_argument("--no-coalesce", action="store_true",
                   help="one websocket frame per message (the client does not ask the hub to "
                        "coalesce messages)")
    p.add_argument("--both", action="store_true",
                   help="also measure with the other websocket framing (coalesced or not)")
    p.add_argument("--echo-row", action="store_true",
                   help="also measure a bare aiohttp websocket echo server (bench/echo.py) "
                        "the same way: this machine's floor and its jitter")
    p.add_argument("--no-floor", action="store_true",
                   help="skip the floor: the same client commanding B directly, no automation")
    p.add_argument("--profile", metavar="FILE", help="run the hub under cProfile, stats to FILE")
    args = p.parse_args(argv)
    if args.netns and not os.environ.get("UONE_BENCH_NETNS"):
        return _in_netns(argv if argv is not None else sys.argv[1:])
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    if args.in_process:
        got = asyncio.run(in_process(args.automations, args.devices))
        if args.json:
            print(json.dumps(got))
            return 0
        print("in-process (no HTTP): A -> automation -> B "
              f"{got['automation_per_s']:.0f} /s, {got['automation_cpu_us']:.1f} us CPU each; "
              f"B directly {got['direct_per_s']:.0f} /s, {got['direct_cpu_us']:.1f} us each")
        return 0
    result = run_with_hub(args)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("devices / automations", f"{args.devices} / {args.automations}"),
        ("hub ready (process start -> onboarded)", f"{result['hub_ready_s']:.2f} s"),
        (f"one at a time, p50 ({args.sequential} triggers)", f"{result['p50_ms']:.3f} ms"),
        (f"one at a time, p99 ({args.sequential} triggers)", f"{result['p99_ms']:.3f} ms"),
        ("one at a time, max", f"{result['max_ms']:.3f} ms"),
        (f"throughput ({result['completed']} triggers, {result['inflight']} in flight)",
         f"{result['triggers_per_s']:.0f} /s"),
        *([(f"{'without' if not args.no_coalesce else 'with'} coalesced frames: "
            "one at a time p50 / p99",
            f"{result['other']['p50_ms']:.3f} / {result['other']['p99_ms']:.3f} ms"),
           (f"{'without' if not args.no_coalesce else 'with'} coalesced frames: throughput",
            f"{result['other']['triggers_per_s']:.0f} /s")]
          if "other" in result else []),
        ("throughput: hub / client CPU busy",
         f"{result['hub_cpu_share']:.0%} / {result['client_cpu_share']:.0%}"),
        ("throughput: hub CPU per trigger (all threads)",
         f"{result['hub_cpu_share'] / result['triggers_per_s'] * 1e6:.0f} us"),
        *([("floor (command B directly, no automation) p50 / p99",
            f"{result['floor']['p50_ms']:.3f} / {result['floor']['p99_ms']:.3f} ms"),
           ("floor throughput", f"{result['floor']['triggers_per_s']:.0f} /s")]
          if "floor" in result else []),
        *([(f"command to A over HTTP ({args.client}) p50 / p99",
            f"{result['http']['p50_ms']:.3f} / {result['http']['p99_ms']:.3f} ms"),
           ("command to A over HTTP, throughput",
            f"{result['http']['triggers_per_s']:.0f} /s")]
          if "http" in result else []),
        *([("bare aiohttp websocket echo, one at a time p50 / p99",
            f"{result['echo']['p50_ms']:.3f} / {result['echo']['p99_ms']:.3f} ms"),
           ("bare aiohttp websocket echo, messages/s",
            f"{result['echo']['triggers_per_s']:.0f} /s")]
          if "echo" in result else []),
        ("hub RSS after the run", f"{result['hub_rss_mib']:.1f} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    framing = "one frame per message" if args.no_coalesce else "coalesced frames"
    print("automation benchmark (client: command to A on the websocket, B's change on the "
          f"same websocket; {framing})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>12}")
    return 0


def _in_netns(argv: list[str]) -> int:
    ns = f"uone-bench-auto-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, UONE_BENCH_NETNS=ns)
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m",
                               "bench.automation", *argv], cwd=ROOT, env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
