"""No egress unasked: the policy, its three doors, and a whole running hub watched socket by
socket (every connect/sendto/bind/lookup of the process, and its open sockets in /proc)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from hub import egress
from hub.errors import EgressDenied
from hub.hub import Hub
from tests.conftest import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("address,local", [
    ("127.0.0.1", True), ("::1", True), ("10.1.2.3", True), ("192.168.1.20", True),
    ("172.16.5.4", True), ("169.254.10.1", True), ("fe80::1%eth0", True), ("fd00::5", True),
    ("224.0.0.251", True), ("ff02::fb", True), ("100.64.1.1", False), ("0.0.0.0", True),
    ("::ffff:192.168.1.1", True),
    ("8.8.8.8", False), ("1.1.1.1", False), ("2606:4700::1111", False),
    ("::ffff:8.8.8.8", False), ("not an address", False), ("203.0.113.9", False),
    ("198.51.100.1", False), ("2001:db8::1", False),
])
def test_is_local(address: str, local: bool) -> None:
    assert egress.is_local(address) is local


async def test_policy_follows_consent(hub: Hub) -> None:
    guard = hub.privacy.egress
    with pytest.raises(EgressDenied, match=r"8\.8\.4\.4"):
        guard.check_address("8.8.4.4", "cloud_sync")
    with pytest.raises(EgressDenied):
        await guard.check_destination("9.9.9.9")
    assert await guard.check_destination("127.0.0.1") == ["127.0.0.1"]
    assert await guard.check_destination("localhost")
    await hub.privacy.set_consent("cloud_sync", True, "owner")
    guard.check_address("8.8.4.4", "cloud_sync")  # allowed now, for that purpose only
    with pytest.raises(EgressDenied):
        guard.check_address("8.8.4.4", "diagnostics")
    with pytest.raises(EgressDenied):
        guard.check_address("8.8.4.4", None)
    await hub.privacy.set_consent("cloud_sync", False, "owner")
    with pytest.raises(EgressDenied):
        guard.check_address("8.8.4.4", "cloud_sync")


async def test_a_refusal_names_the_consent_it_needs(hub: Hub) -> None:
    guard = hub.privacy.egress
    with pytest.raises(EgressDenied, match="has not given the external_broker consent"):
        await guard.check_destination("203.0.113.7", "external_broker")
    with pytest.raises(EgressDenied, match="has not given the cloud_sync consent"):
        guard.check_address("8.8.4.4", "cloud_sync")
    with pytest.raises(EgressDenied, match="no consent covers it"):
        guard.check_address("8.8.4.4", "diagnostics")  # not a purpose that opens the way
    await hub.privacy.set_consent("cloud_sync", True, "owner")
    with pytest.raises(EgressDenied, match="has not given the external_broker consent"):
        await guard.check_destination("203.0.113.7", "external_broker")  # not another's


async def test_process_backstop_refuses_raw_sockets_and_logs(hub: Hub, caplog) -> None:
    before = hub.privacy.egress.denied
    caplog.set_level(logging.WARNING, logger="hub.egress")
    with socket.socket() as s, pytest.raises(EgressDenied):
        s.connect(("203.0.113.77", 9))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(EgressDenied):
        s.sendto(b"x", ("203.0.113.78", 9))
    with pytest.raises(EgressDenied):
        await asyncio.open_connection("203.0.113.79", 9)
    assert hub.privacy.egress.denied == before + 3
    assert "203.0.113.77" in caplog.text and "refused" in caplog.text
    # loopback still works through every door
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await egress.open_connection(hub.privacy.egress, "127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    # with consent, code working for that purpose passes (the hook's verdict is asked
    # directly: an allowed connect would send a packet, and tests stay on the machine)
    await hub.privacy.set_consent("remote_access", True, "owner")
    with egress.remote_purpose("remote_access"), socket.socket() as s:
        egress._audit_hook("socket.connect", (s, ("203.0.113.80", 9)))
    with socket.socket() as s, pytest.raises(EgressDenied):  # outside that purpose: refused
        s.connect(("203.0.113.81", 9))


async def test_guarded_http_client(hub: Hub) -> None:
    async with aiohttp.ClientSession(connector=egress.guarded_connector(hub.privacy.egress)) as s:
        with pytest.raises(EgressDenied):
            await s.get("http://203.0.113.5/")


def _netns_prefix(name: str) -> list[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return []
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return ["ip", "netns", "exec", name]


def _proc_sockets(pid: int) -> list[tuple[str, str]]:
    """(local, remote) of every inet socket the process holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                out.append((_addr(cols[1]), _addr(cols[2])))
    return out


def _addr(hexaddr: str) -> str:
    ip_hex, _port = hexaddr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def test_running_hub_opens_nothing_outside_the_lan(tmp_path: Path) -> None:
    """A real hub process under a workload: every socket operation is local, and the public
    destinations it was made to try were refused, logged and (with an audit log) audited."""
    port = free_port()
    cfg = write_config(tmp_path, {
        "api": {"port": port},
        "location": {"latitude": 52.5, "longitude": 13.4},
        "cloud": {"broker_url": "mqtts://203.0.113.50:8883"},  # configured, but no consent
    })
    record, ready = tmp_path / "sockets.jsonl", tmp_path / "ready.json"
    ns = f"uone-privacy-{os.getpid()}"
    prefix = _netns_prefix(ns)
    proc = subprocess.Popen(
        [*prefix, sys.executable, str(ROOT / "tests/privacy/egress_probe.py"), str(cfg),
         str(record), str(ready)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), f"probe did not come up: {proc.poll()}"
        time.sleep(0.1)
        results = json.loads(ready.read_text())
        open_sockets = _proc_sockets(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        finally:
            if prefix:
                subprocess.run(["ip", "netns", "del", ns], check=False)
    assert proc.returncode == 0, output
    assert results["http_public"] == "refused"
    assert results["raw_public"] == "refused"
    assert results["denied"] >= 2
    assert results["exported_rows"] > 0  # the workload exported, backed up and erased too
    assert "refused a connection to 198.51.100.20" in output
    if "audited" in results:
        assert {"203.0.113.10", "198.51.100.20"} <= set(results["audited"])

    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert any(e["event"] == "socket.connect" for e in entries), "the recorder saw nothing"
    outside = []
    for e in entries:
        if e["event"] == "socket.getaddrinfo":
            if not (e["host"] in ("localhost", "None", "") or egress.is_local(e["host"])):
                outside.append(e)
        elif e["family"] in (socket.AF_INET, socket.AF_INET6):
            if not egress.is_local(str(e["address"][0])):
                outside.append(e)
    # the only public destinations ever attempted are the two refused on purpose
    attempted = {str(e.get("address", [e.get("host")])[0]) for e in outside}
    assert attempted <= {"203.0.113.10", "198.51.100.20"}, outside
    assert open_sockets, "no sockets seen in /proc"
    for local, remote in open_sockets:
        assert egress.is_local(remote), (local, remote)


async def test_checked_destination_passes_the_backstop_only_while_consent_holds(
        hub: Hub) -> None:
    guard = hub.privacy.egress
    await hub.privacy.set_consent("cloud_sync", True, "owner")
    assert await guard.check_destination("203.0.113.90", "cloud_sync") == ["203.0.113.90"]

    def connect_from_a_thread() -> None:  # as paho-mqtt does, without our context
        with socket.socket() as s:  # the backstop's verdict, without sending a packet
            egress._audit_hook("socket.connect", (s, ("203.0.113.90", 9)))

    await asyncio.to_thread(connect_from_a_thread)  # allowed: no EgressDenied
    with socket.socket() as s, pytest.raises(EgressDenied):  # another address: refused
        s.connect(("203.0.113.91", 9))
    await hub.privacy.set_consent("cloud_sync", False, "owner")
    with pytest.raises(EgressDenied):
        await asyncio.to_thread(connect_from_a_thread)


async def test_name_lookups_through_a_public_resolver_need_consent(hub: Hub) -> None:
    guard = hub.privacy.egress
    saved = guard.resolvers
    try:
        guard.resolvers = ("8.8.8.8",)  # the home router hands out a public resolver
        with pytest.raises(EgressDenied, match=r"name lookup of example\.org"):
            socket.getaddrinfo("example.org", 443)
        for local in ("localhost", "printer.local", "127.0.0.1", "fe80::1"):
            guard.check_lookup(local)  # answered without asking a DNS server
        guard.resolvers = ("192.168.1.1",)  # the router itself answers: stays on the LAN
        guard.check_lookup("example.org")
        guard.resolvers = ("8.8.8.8",)
        await hub.privacy.set_consent("cloud_sync", True, "owner")
        guard.check_lookup("broker.example.org")
    finally:
        guard.resolvers = saved
