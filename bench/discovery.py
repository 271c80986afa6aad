"""Discovery benchmarks: BLE advertisement throughput, mDNS publish-to-API latency.

    sudo /work/venv/bin/python -m bench.discovery          (from the repo root)

1. Advertisements per second through the hub's ingest path (dedupe, matcher index,
   BTHome parsing with bthome-ble, state updates of adopted sensors) for 500 simulated
   BTHome devices, in three mixes. bleak/D-Bus decoding is not included (it is bleak's).
2. Seconds from an mDNS service being published (real zeroconf) to its appearing in
   GET /api/discovered. Runs in a fresh network namespace with only `lo` (it re-executes
   itself there; needs root) so nothing multicasts on a real interface.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEVICES = 500
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"


def _config(tmp: Path, mdns: bool) -> Any:
    import yaml

    from hub.config import load_config

    cfg = {
        "data_dir": str(tmp / "data"), "log_level": "warning",
        "api": {"host": "127.0.0.1", "port": 0},
        "discovery": {"mdns": {"enabled": mdns, "interfaces": ["lo"], "advertise": False,
                               "interface_check": 5.0},
                      "ble": {"enabled": False}},
        "integrations": {"bthome": {}, "uone": {}, "improv": {}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _payload(packet: int, i: int) -> bytes:
    temp = round((20 + (i % 50) / 10 + packet / 100) * 100)
    return bytes([0x40, 0x00, packet & 0xFF, 0x01, 80 + i % 20, 0x02]) + temp.to_bytes(
        2, "little", signed=True) + bytes([0x03]) + (4500 + i).to_bytes(2, "little")


async def bench_ble() -> list[tuple[str, int, float]]:
    from hub.hub import Hub

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        async with Hub(_config(Path(tmp), mdns=False)) as hub:
            addresses = [f"A4:C1:38:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X}"
                         for i in range(DEVICES)]
            ingest = hub.discovery.handle_advertisement
            for i, a in enumerate(addresses):  # discover and adopt all of them
                ingest(a, None, -60, (BTHOME,), {BTHOME: _payload(0, i)}, {})
            for a in addresses:
                await hub.discovery.adopt("ble-" + a.replace(":", "").lower())
            import bthome_ble  # noqa: F401 - imported before timing

            mixes = {
                "repeats only (dedupe)": lambda r: 0,
                "realistic: 1 in 10 changed": lambda r: r // 10 + 1,
                "every one changed (parse)": lambda r: r + 1,
            }
            rounds = 40
            for label, packet_of in mixes.items():
                base = 1000 * (len(results) + 1)
                batch = [
                    (a, None, -60 - (r % 3), (BTHOME,),
                     {BTHOME: _payload(base + packet_of(r), i)}, {})
                    for r in range(rounds) for i, a in enumerate(addresses)
                ]
                start = time.perf_counter()
                for args in batch:
                    ingest(*args)
                elapsed = time.perf_counter() - start
                results.append((label, len(batch), len(batch) / elapsed))
                await asyncio.sleep(0)
            await hub.db.flush()
    return results


class _Sniffer(asyncio.DatagramProtocol):
    """Notes when a multicast DNS response naming a label first goes over the wire."""

    def __init__(self) -> None:
        self.first: dict[bytes, float] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > 4 and data[2] & 0x80:  # QR bit: a response (announcement)
            now = time.perf_counter()
            for label in list(self.watch):
                if label in data and label not in self.first:
                    self.first[label] = now

    watch: set[bytes] = set()


async def _sniffer() -> tuple[asyncio.DatagramTransport, _Sniffer]:
    import struct

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", 5353))
    mreq = struct.pack("4s4s", socket.inet_aton("224.0.0.251"), socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        _Sniffer, sock=sock)
    proto.watch = set()
    return transport, proto


async def bench_mdns(runs: int = 5) -> list[tuple[float, float]]:
    from aiohttp.test_utils import TestClient, TestServer
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from hub.api.app import make_app
    from hub.hub import Hub

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        async with Hub(_config(Path(tmp), mdns=True)) as hub:
            headers = {}
            auth = getattr(hub, "auth", None)
            if auth is not None:  # sign in as an owner, as a real client would
                from hub.auth.principal import Role

                user = await auth.create_user("bench", "bench password long enough 1",
                                              Role.OWNER)
                token, _ = await auth.create_token(user.id, "bench")
                headers["Authorization"] = f"Bearer {token}"
            client = TestClient(TestServer(make_app(hub)), headers=headers)
            await client.start_server()
            device = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            for _ in range(500):  # zeroconf opens in the background
                if hub.discovery.mdns is not None and hub.discovery.mdns.state == "running":
                    break
                await asyncio.sleep(0.01)
            via_api = True
            sniff_transport, sniffer = await _sniffer()
            try:
                for n in range(runs):
                    did = f"uone-{n:016x}"
                    info = AsyncServiceInfo(
                        "_uone._tcp.local.", f"Bench {n}._uone._tcp.local.", port=8000 + n,
                        properties={"did": did, "mac": f"24:0a:c4:00:00:{n:02x}",
                                    "model": "bench", "fw": "1.0"},
                        server=f"bench{n}.local.", addresses=[socket.inet_aton("127.0.0.1")])
                    label = f"Bench {n}".encode()
                    sniffer.watch.add(label)
                    t_call = time.perf_counter()
                    task = await device.async_register_service(info)
                    while True:
                        resp = await client.get("/api/discovered?source=mdns")
                        if resp.status in (401, 403):
                            via_api = False
                            found = any(d.did == did for d in hub.discovery.registry)
                        else:
                            body = await resp.json()
                            found = any(d["did"] == did for d in body["discovered"])
                        if found:
                            t_seen = time.perf_counter()
                            break
                        await asyncio.sleep(0.005)
                    await task
                    t_wire = sniffer.first.get(label, t_seen)
                    out.append((t_seen - t_call, t_seen - t_wire))
            finally:
                sniff_transport.close()
                await device.async_close()
                await client.close()
    if not via_api:
        print("(API needs sign-in here: visibility read from the registry behind it)")
    return out


def main() -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    from bench.common import in_private_netns, run_in_private_netns

    if not in_private_netns():
        return run_in_private_netns("bench.discovery", sys.argv[1:])
    ble = asyncio.run(bench_ble())
    mdns = asyncio.run(bench_mdns())
    print(f"\nBLE ingest, {DEVICES} BTHome devices (all adopted), target >= 20,000/s")
    print(f"{'mix':<30} {'adverts':>9} {'adverts/s':>12}")
    for label, count, rate in ble:
        print(f"{label:<30} {count:>9} {rate:>12,.0f}")
    print("\nmDNS publish -> visible in GET /api/discovered (netns, lo), target < 1 s")
    print("(publish call includes zeroconf's ~1 s probing; 'first announcement' is when the")
    print(" service's first mDNS response was on the wire)")
    print(f"{'run':<5} {'from publish call':>18} {'from 1st announcement':>22}")
    for i, (call, announced) in enumerate(mdns):
        print(f"{i:<5} {call:>17.3f}s {announced:>21.3f}s")
    calls = [c for c, _ in mdns]
    anns = [a for _, a in mdns]
    print(f"{'med':<5} {statistics.median(calls):>17.3f}s {statistics.median(anns):>21.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
