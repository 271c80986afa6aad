"""mDNS between a real zeroconf "device" in its own namespace and the hub, across a veth.

Add (with decoded TXT), update (TXT change), remove (goodbye) as seen through the API and
on the bus; and the hub's own `_uone-hub._tcp` advertisement as the device sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.discovery.models import (
    DeviceDiscovered,
    DiscoveryChanged,
    DiscoveryEvent,
    DiscoveryLost,
)
from hub.hub import Hub
from tests.discovery import netns
from tests.discovery.util import discovered, wait_for

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"mDNS namespace tests: {netns.unavailable()}")

DID = "uone-0011223344556677"
TXT = {"did": DID, "mac": "24:0A:C4:12:34:56", "model": "plug-eu-1", "fw": "1.4.2"}


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    async with netns.veth_lan() as lan:
        yield lan


@pytest.fixture
def hub_config(lan: netns.Lan) -> dict[str, Any]:
    return {
        "api": {"host": "0.0.0.0"},
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if], "advertise": True,
                               "hub_name": "Test Hub", "interface_check": 0.2}},
        "integrations": {"virtual": {"devices": []}, "uone": {}},
    }


async def test_device_added_updated_removed_over_a_veth(api_client, hub: Hub,
                                                        lan: netns.Lan) -> None:
    events: list[DiscoveryEvent] = []
    for etype in (DeviceDiscovered, DiscoveryChanged, DiscoveryLost):
        hub.bus.subscribe(etype, events.append)
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        reply = await device.send(op="register", name="Kitchen plug", type="_uone._tcp.local.",
                                  port=8080, txt=TXT)
        assert reply["ok"]

        async def found() -> dict[str, Any] | None:
            body = await (await api_client.get("/api/discovered?source=mdns")).json()
            return body["discovered"][0] if body["discovered"] else None

        item = await wait_for(found, within=10)
        assert item["integration"] == "uone" and item["name"] == "Kitchen plug"
        assert item["addresses"] == [lan.dev_ip] and item["port"] == 8080
        assert (item["did"], item["mac"], item["model"], item["fw"]) == (
            DID, "24:0a:c4:12:34:56", "plug-eu-1", "1.4.2")
        assert item["txt"]["did"] == DID and item["service_type"] == "_uone._tcp.local."
        assert item["present"] is True and item["state"] == "new"

        await device.send(op="update", txt={**TXT, "fw": "1.5.0"})

        async def updated() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and got["fw"] == "1.5.0"

        await wait_for(updated, within=10)
        # the device moves to another address
        moved = lan.dev_ip.rsplit(".", 1)[0] + ".3"
        await netns.run("ip", "-n", lan.dev_ns, "addr", "add", f"{moved}/24", "dev", "vdev")
        await device.send(op="update", addresses=[moved])

        async def readdressed() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and moved in got["addresses"]

        await wait_for(readdressed, within=10)
        await device.send(op="unregister")

        async def gone() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and got["present"] is False

        await wait_for(gone, within=10)
    kinds = [e.kind for e in events if e.id == item["id"]]
    assert kinds[0] == "discovery_new" and "discovery_changed" in kinds
    assert kinds[-1] == "discovery_lost"
    health = await (await api_client.get("/api/health")).json()
    assert health["discovery"]["mdns"]["state"] == "running"
    assert health["discovery"]["mdns"]["interfaces"] == [lan.hub_if]
    assert hub.discovery.stats.mdns_removed >= 1


async def test_device_that_vanishes_without_goodbye_is_lost_when_its_records_expire(
        api_client, hub: Hub, lan: netns.Lan) -> None:
    """A device that loses power sends no goodbye. With 3 s TTLs: while it answers the hub's
    re-queries it stays present across several TTLs; once dead, its SRV record expires and
    it is lost (zeroconf alone would wait for the PTR record: at least 1,125 s)."""
    import asyncio

    lost: list[DiscoveryEvent] = []
    hub.bus.subscribe(DiscoveryLost, lost.append)
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        reply = await device.send(op="register", name="Cellar plug", type="_uone._tcp.local.",
                                  port=8080, txt={**TXT, "did": "uone-00aa00bb00cc00dd"},
                                  ttl=3)
        assert reply["ok"]

        async def found() -> dict[str, Any] | None:
            body = await (await api_client.get("/api/discovered?source=mdns")).json()
            return body["discovered"][0] if body["discovered"] else None

        item = await wait_for(found, within=10)
        assert item["present"] is True
        await asyncio.sleep(12)  # four TTLs and a cache sweep: alive, so still present
        assert (await discovered(api_client, item["id"]))["present"] is True
        assert lost == []
        device.proc.kill()  # a power cut: no goodbye packets
        await device.proc.wait()

        async def gone() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and got["present"] is False

        # the 3 s TTL and a re-query, not zeroconf's 1,125 s PTR floor; how soon: bench.discovery
        await wait_for(gone, within=60)
    assert [e.id for e in lost] == [item["id"]]


async def test_hub_advertises_itself_with_port_version_and_fingerprint(
    hub: Hub, lan: netns.Lan,
) -> None:
    hub.discovery.api_ready(8443, "https", "AB:CD:EF:01")
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        reply = await device.send(op="browse", type="_uone-hub._tcp.local.", timeout=8)
    assert reply["services"], "the device did not see the hub"
    svc = reply["services"][0]
    assert svc["name"] == "Test Hub._uone-hub._tcp.local."
    assert svc["port"] == 8443 and svc["addresses"] == [lan.hub_ip]
    assert svc["txt"] == {"version": hub.version, "scheme": "https", "fp": "abcdef01"}


async def test_malformed_txt_is_counted_not_listed(api_client, hub: Hub,
                                                   lan: netns.Lan) -> None:
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        await device.send(op="register", name="Broken", type="_uone._tcp.local.", port=1,
                          txt={"did": "not-a-did", "mac": "zz"})

        async def counted() -> bool:
            return hub.discovery.stats.malformed >= 1

        await wait_for(counted, within=10)
    body = await (await api_client.get("/api/discovered")).json()
    assert body["discovered"] == []


class TestInterfaces:
    """Default interfaces (every non-loopback IPv4 one that is up), one of two flapping."""

    @pytest.fixture
    async def lans(self) -> AsyncIterator[tuple[netns.Lan, netns.Lan]]:
        async with netns.veth_lan() as a, netns.veth_lan() as b:
            yield a, b

    @pytest.fixture
    def hub_config(self, lans: tuple[netns.Lan, netns.Lan]) -> dict[str, Any]:
        return {
            "discovery": {"mdns": {"enabled": True, "interfaces": None, "advertise": False,
                                   "interface_check": 0.2}},
            "integrations": {"virtual": {"devices": []}, "uone": {}},
        }

    async def test_one_interface_going_away_and_back_does_not_stop_discovery(
        self, hub: Hub, lans: tuple[netns.Lan, netns.Lan],
    ) -> None:
        a, b = lans

        async def interfaces(expected: list[str]) -> bool:
            mdns = hub.discovery.mdns
            return mdns is not None and mdns.state == "running" and sorted(
                mdns.interfaces) == sorted(expected)

        await wait_for(lambda: interfaces([a.hub_if, b.hub_if]))
        await netns.run("ip", "link", "set", a.hub_if, "down")
        await wait_for(lambda: interfaces([b.hub_if]))
        async with netns.mdns_device(b.dev_ns, b.dev_ip) as device:
            await device.send(op="register", name="On B", type="_uone._tcp.local.", port=81,
                              txt={**TXT, "did": "uone-000000000000000b"})
            await wait_for(lambda: _did_seen(hub, "uone-000000000000000b"), within=10)
        await netns.run("ip", "link", "set", a.hub_if, "up")
        await wait_for(lambda: interfaces([a.hub_if, b.hub_if]))
        async with netns.mdns_device(a.dev_ns, a.dev_ip) as device:
            await device.send(op="register", name="On A", type="_uone._tcp.local.", port=82,
                              txt={**TXT, "did": "uone-000000000000000a"})
            await wait_for(lambda: _did_seen(hub, "uone-000000000000000a"), within=10)
        item = next(d for d in hub.discovery.registry if d.did == "uone-000000000000000a")
        assert item.addresses == (a.dev_ip,)


async def _did_seen(hub: Hub, did: str) -> bool:
    return any(d.did == did and d.present for d in hub.discovery.registry)


async def test_daemon_advertises_its_https_api_with_the_certificate_fingerprint(
    tmp_path, lan: netns.Lan,
) -> None:
    """The real daemon (subprocess) on the veth address: HTTPS, and `_uone-hub._tcp` with
    the port it got and the SHA-256 fingerprint of the certificate it made."""
    import asyncio
    import os
    import sys

    from hub import tls
    from tests.conftest import write_config

    config = write_config(tmp_path, {
        "log_level": "info",
        "api": {"host": lan.hub_ip, "port": 0},
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if], "advertise": True,
                               "hub_name": "Daemon Hub"}},
        "integrations": {"virtual": {"devices": []}, "uone": {}},
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "run", "-c", str(config), cwd=netns.ROOT,
        env={**os.environ, "PYTHONPATH": str(netns.ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
            reply = await device.send(op="browse", type="_uone-hub._tcp.local.", timeout=15)
        assert reply["services"], "the daemon did not advertise itself"
        svc = reply["services"][0]
        cert = tmp_path / "data" / tls.CERT_FILE
        expected = tls.fingerprint(cert).replace(":", "").lower()
        assert svc["name"] == "Daemon Hub._uone-hub._tcp.local."
        assert svc["addresses"] == [lan.hub_ip] and svc["port"] > 0
        assert svc["txt"]["fp"] == expected and svc["txt"]["scheme"] == "https"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def test_junk_mdns_packets_do_not_break_discovery(api_client, hub: Hub,
                                                        lan: netns.Lan) -> None:
    """Random bytes and corrupted real responses on the wire, then a real device: found."""
    import random
    import socket

    from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText
    from zeroconf.const import (
        _CLASS_IN,
        _FLAGS_AA,
        _FLAGS_QR_RESPONSE,
        _TYPE_A,
        _TYPE_PTR,
        _TYPE_SRV,
        _TYPE_TXT,
    )

    name = "Junk._uone._tcp.local."
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    out.add_answer_at_time(DNSPointer("_uone._tcp.local.", _TYPE_PTR, _CLASS_IN, 120, name), 0)
    out.add_answer_at_time(DNSService(name, _TYPE_SRV, _CLASS_IN, 120, 0, 0, 80, "j.local."),
                           0)
    out.add_answer_at_time(DNSText(name, _TYPE_TXT, _CLASS_IN, 120, b"\x07did=\xff\xfe\x00"), 0)
    out.add_answer_at_time(DNSAddress("j.local.", _TYPE_A, _CLASS_IN, 120,
                                      socket.inet_aton(lan.dev_ip)), 0)
    valid = out.packets()[0]  # well-formed DNS, but its TXT is not text: counted
    rng = random.Random(4)
    packets = [valid] + [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
               for _ in range(150)]
    for _ in range(150):
        p = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            p[rng.randrange(len(p))] = rng.getrandbits(8)
        packets.append(bytes(p[: rng.randrange(1, len(p) + 1)]))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(lan.hub_ip))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    try:
        for packet in packets:
            sock.sendto(packet, ("224.0.0.251", 5353))
    finally:
        sock.close()

    async def counted() -> bool:
        return hub.discovery.stats.mdns_malformed + hub.discovery.stats.malformed >= 1

    await wait_for(counted, within=5)  # the packets did reach the hub's zeroconf
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        await device.send(op="register", name="After junk", type="_uone._tcp.local.",
                          port=8081, txt={**TXT, "did": "uone-00000000000000ff"})

        async def found() -> bool:
            return any(d.did == "uone-00000000000000ff" for d in hub.discovery.registry)

        await wait_for(found, within=10)
    listed = (await (await api_client.get("/api/discovered")).json())["discovered"]
    assert all(d["did"] and d["did"].startswith("uone-") for d in listed)
    assert hub.discovery.mdns.state == "running"
