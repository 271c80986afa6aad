"""MQTT integration benchmark: `python -m bench.mqtt` (loopback only; run it in a network
namespace like the other benchmarks).

A real mosquitto on loopback; the hub runs in its own process (so its CPU and RSS are its
own) with the API and the MQTT integration; this process plays the devices (aiomqtt) and a
dashboard (a websocket subscribed to state changes). While the latency is measured, the
devices' messages come from a process of their own, so that publishing never delays the
moment the dashboard reads an event (both stamp with the system-wide monotonic clock):
1. N devices (a switch and a sensor each) announce at once -> all listed in /api/discovered;
2. after adopting them, state messages at a steady rate -> hub state -> websocket event:
   p50/p99 from publish to the websocket, and the hub's CPU time per message;
3. RSS growth of a fresh hub for M devices announced, adopted and reporting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bench.common import env_with_repo, free_port, percentile, repo_root, table
from bench.hubproc import HubProcess, serve
from tests.doubles import mosquitto


async def _serve(config: str, breakdown: bool) -> None:
    """The hub (bench.hubproc): answers `cpu` and `status`."""
    if breakdown:
        _time_parts()

    def answer(hub: Any, cmd: dict[str, Any]) -> Any:
        if cmd["op"] == "cpu":
            return _cpu(breakdown)
        if cmd["op"] == "inside":  # (--breakdown) latencies since the last `inside`
            lat = [(_OUT[v] - t) * 1000 for v, t in _IN.items() if v in _OUT]
            _IN.clear()
            _OUT.clear()
            return [percentile(lat, 50), percentile(lat, 99), len(lat)]
        if cmd["op"] == "status":
            return hub.integrations.instance("mqtt").status()
        return None

    await serve(config, answer, freeze=True)


_PARTS: dict[str, float] = {}  # part -> CPU seconds (--breakdown)
_IN: dict[float, float] = {}  # streamed value -> when the bridge got it (--breakdown)
_OUT: dict[float, float] = {}  # streamed value -> when its websocket frame was written
_ORDER = ("mqtt read (paho, bridge, state)", "  bridge (integration, state)",
          "    state set (history row, bus)", "websocket: batch (encode, frames, write)",
          "  encode", "websocket: lagging client (aiohttp send)")


def _cpu(breakdown: bool) -> dict[str, float]:
    """CPU seconds of the hub process: all, in the kernel, its event loop's thread, the
    time that thread was ready to run but waited for a CPU (the machine's load), and the
    timed parts (--breakdown)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    loop_thread = resource.getrusage(resource.RUSAGE_THREAD)  # asked on the loop's thread
    out = {"cpu": usage.ru_utime + usage.ru_stime, "kernel": usage.ru_stime,
           "loop": loop_thread.ru_utime + loop_thread.ru_stime}
    with contextlib.suppress(OSError, ValueError, IndexError):  # Linux schedstat: ns
        out["waited"] = int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    if breakdown:
        out.update(_PARTS)
    return out


def _time_parts() -> None:
    """Wrap the stages of a message's way in a thread-CPU clock (adds ~1 µs each), and
    stamp each streamed value as the bridge gets it and as its frame is written (~3 µs)."""
    from hub.api.routes import websocket
    from hub.state import StateStore
    from integrations.mqtt import thirdparty as paho_parts
    from integrations.mqtt.bridge import Bridge

    def timed(cls: Any, name: str, part: str) -> None:
        orig = getattr(cls, name)
        clock = time.thread_time
        if asyncio.iscoroutinefunction(orig):
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                t0 = clock()
                try:
                    return await orig(*args, **kwargs)
                finally:
                    _PARTS[part] = _PARTS.get(part, 0.0) + clock() - t0
        else:
            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                t0 = clock()
                try:
                    return orig(*args, **kwargs)
                finally:
                    _PARTS[part] = _PARTS.get(part, 0.0) + clock() - t0
        setattr(cls, name, wrapper)

    make_reader = paho_parts.packet_reader

    class Reader:  # times the loop_read that tune_paho sets on paho's client
        def __init__(self, *args: Any) -> None:
            self.read = make_reader(*args)

        def loop_read(self, max_packets: int = 1) -> Any:
            return self.read(max_packets)

    timed(Reader, "loop_read", "mqtt read (paho, bridge, state)")
    paho_parts.packet_reader = lambda *args: Reader(*args).loop_read  # type: ignore[assignment]
    timed(Bridge, "on_message", "  bridge (integration, state)")
    timed(StateStore, "set", "    state set (history row, bus)")
    timed(websocket.Connection, "_flush", "websocket: batch (encode, frames, write)")
    timed(websocket.EncodedEvents, "text", "  encode")
    timed(websocket.Connection, "_write", "websocket: lagging client (aiohttp send)")
    on_message, write_now, clock = Bridge.on_message, websocket.Connection._write_now, \
        time.monotonic

    def stamp_in(self: Any, topic: str, payload: bytes) -> None:
        if topic.startswith("bench/"):
            _IN[json.loads(payload)["w"]] = clock()
        on_message(self, topic, payload)

    def stamp_out(self: Any, texts: list[str]) -> None:
        write_now(self, texts)
        now = clock()
        for text in texts:
            new = json.loads(text).get("event", {}).get("new")
            if isinstance(new, float):
                _OUT[new] = now

    Bridge.on_message = stamp_in  # type: ignore[method-assign]
    websocket.Connection._write_now = stamp_out  # type: ignore[method-assign]


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


async def _stream(session: Any, hub: HubProcess, broker_port: int, n_devices: int,
                  rate: float, seconds: float, warmup: float, profile: str | None = None,
                  breakdown: bool = False) -> dict[str, Any]:
    """Sensor readings at `rate`/s; publish -> websocket event latency and hub CPU.

    A warm-up of `warmup` seconds at the same rate goes first and is not counted (caches,
    first history batches, the websocket's buffers). A publisher process (`_publish`)
    stamps each message right before its publish; this process stamps each event as it
    reads it from the websocket; the hub's CPU is read over the measured messages only."""
    got: dict[float, float] = {}
    warm = asyncio.Event()
    ws = await session.ws_connect(f"ws://127.0.0.1:{hub.port}/api/ws", headers=hub.headers,
                                  max_msg_size=1 << 22)
    await ws.receive_json()
    await ws.send_json({"type": "subscribe", "events": ["state_changed"]})
    await ws.receive_json()
    first, total = int(rate * warmup), int(rate * warmup) + int(rate * seconds)

    async def reader() -> None:
        clock = time.monotonic
        while len(got) < total:
            try:
                msg = await ws.receive(timeout=5)
            except TimeoutError:
                return
            now = clock()
            if msg.type.name != "TEXT":
                return
            data = json.loads(msg.data)
            for item in data if isinstance(data, list) else [data]:  # coalesced frames
                value = item["event"].get("new")
                if isinstance(value, float) and value >= _BASE:
                    got.setdefault(value, now)
            if len(got) >= first:
                warm.set()

    task = asyncio.create_task(reader())
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.mqtt", "_publish", str(broker_port), str(n_devices),
        str(rate), str(first), str(total), cwd=repo_root(), env=env_with_repo(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, limit=1 << 24)  # stamps: one line
    assert publisher.stdin is not None and publisher.stdout is not None
    await publisher.stdout.readline()  # warm-up sent
    await asyncio.wait_for(warm.wait(), 30)
    spy = None
    if profile:
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "--gil", "-p",
            str(hub.proc.pid), "-r", "500", "-f", "raw", "-o", profile,
            "-d", str(int(seconds) + 1), stdout=subprocess.DEVNULL)
        await asyncio.sleep(0.5)
    cpu0 = hub.ask(op="cpu")
    if breakdown:
        hub.ask(op="inside")  # (clears the warm-up's)
    publisher.stdin.write(b"go\n")
    await publisher.stdin.drain()
    result = json.loads(await publisher.stdout.readline())
    await publisher.wait()
    await asyncio.wait_for(task, 30)
    cpu1 = hub.ask(op="cpu")
    inside = hub.ask(op="inside") if breakdown else None
    await ws.close()
    if spy is not None:
        await spy.wait()
    sent = dict(zip(result["values"], result["stamps"], strict=True))
    lat = [(got[v] - sent[v]) * 1000 for v in sent if v in got]
    n = max(1, len(lat))
    out = {"sent": len(sent), "received": len(lat), "kept": result["kept"],
           "p50": percentile(lat, 50), "p99": percentile(lat, 99)}
    for key in cpu1:
        out[key] = (cpu1[key] - cpu0.get(key, 0.0)) / n * 1e6
    if inside is not None:
        out["inside"] = inside
    return out


_BASE = 100_000.0  # streamed values: _BASE + k + 0.5, unique so that each one is a change


async def _publish(broker_port: int, n_devices: int, rate: float, first: int,
                   total: int) -> None:
    """The devices' side of `_stream`, in a process of its own: the warm-up messages,
    then (after a `go` line on stdin) the measured ones, each stamped right before its
    publish; prints the measured values, their stamps and the rate kept."""
    import aiomqtt

    loop = asyncio.get_running_loop()
    clock = time.monotonic
    async with aiomqtt.Client("127.0.0.1", broker_port,
                              max_queued_outgoing_messages=0) as client:

        async def publish(k0: int, k1: int, stamps: list[float]) -> float:
            """Messages k0..k1-1 at `rate`; the rate actually kept."""
            start = clock()
            for k in range(k0, k1):
                topic = f"bench/{k % n_devices}/power"
                body = json.dumps({"w": _BASE + k + 0.5})
                stamps.append(clock())
                await client.publish(topic, body, qos=0)
                delay = start + (k - k0 + 1) / rate - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            return (k1 - k0) / (clock() - start)

        await publish(0, first, [])
        print("warm", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        stamps: list[float] = []
        kept = await publish(first, total, stamps)
    print(json.dumps({"values": [_BASE + k + 0.5 for k in range(first, total)],
                      "stamps": stamps, "kept": kept}), flush=True)


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
            hub = HubProcess("bench.mqtt", _config(tmp, "a", broker, args.commit_interval),
                             "breakdown" if args.breakdown else "-")
            try:
                await asyncio.sleep(0.5)
                seconds = await _announce_and_adopt(session, hub, client, args.devices)
                rows.append((f"{args.devices} devices announce at once -> all in "
                             "/api/discovered", f"{seconds:.2f} s", "<= 2 s"))
                await asyncio.sleep(1.0)
                r = await _stream(session, hub, broker.plain_port, args.devices, args.rate,
                                  args.seconds, args.warmup, args.profile, args.breakdown)
                rows.append((f"{args.rate:.0f} state msgs/s: publish -> websocket p50 / p99",
                             f"{r['p50']:.2f} / {r['p99']:.2f} ms", "p99 <= 5 ms"))
                if "inside" in r:  # --breakdown
                    rows.append(("    of which inside the hub (bridge -> frame written)",
                                 "{:.2f} / {:.2f} ms".format(*r.pop("inside")), "-"))
                rows.append(("  delivered (after a warm-up)",
                             f"{r['received']} / {r['sent']}", "all"))
                rows.append(("  rate the publisher kept", f"{r['kept']:.0f} /s",
                             f"{args.rate:.0f} /s"))
                rows.append(("  hub CPU per message", f"{r.pop('cpu'):.0f} µs", "-"))
                rows.append(("    in the kernel", f"{r.pop('kernel'):.0f} µs", "-"))
                rows.append(("    on the event loop's thread", f"{r.pop('loop'):.0f} µs", "-"))
                if "waited" in r:
                    rows.append(("  time the loop's thread waited for a CPU, per message",
                                 f"{r.pop('waited'):.0f} µs", "the machine's load"))
                for part in _ORDER:  # --breakdown
                    if part in r:
                        rows.append((f"    {part}", f"{r[part]:.0f} µs", "-"))
                stats = hub.ask(op="status")["stats"]
                rows.append(("  refused / dropped by the hub",
                             f"{stats['refused_state'] + stats['flood_dropped']}", "0"))
            finally:
                hub.stop()
            # RSS growth: a fresh hub (and broker state) for M devices
            for i in range(args.devices):
                for topic, _ in _announcements(i):
                    await client.publish(topic, b"", qos=1, retain=True)
            hub = HubProcess("bench.mqtt", _config(tmp, "b", broker), "-")
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
        asyncio.run(_serve(sys.argv[2], sys.argv[3:] == ["breakdown"]))
        return 0
    if len(sys.argv) == 7 and sys.argv[1] == "_publish":
        port, n, rate, first, total = sys.argv[2:]
        asyncio.run(_publish(int(port), int(n), float(rate), int(first), int(total)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="state messages per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rss-devices", type=int, default=500)
    parser.add_argument("--commit-interval", type=float, default=1.0,
                        help="storage.commit_interval of the hub (history batches)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds at the same rate before measuring (not counted)")
    parser.add_argument("--breakdown", action="store_true",
                        help="the hub's CPU per message by stage (thread-CPU clocks)")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy samples of the hub while streaming (collapsed stacks)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
