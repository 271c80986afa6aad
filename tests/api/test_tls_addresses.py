"""The self-signed certificate names the addresses the API serves on (issue 18.11), is
renewed when they change, and keeps its key, so a client pinning the public key keeps
working. Real TLS clients (the ssl module, curl) connect by IP inside the suite's private
network namespace."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from hub import tls
from hub.config import LoadedConfig

ROOT = Path(__file__).resolve().parents[2]


def sans(cert: Path) -> tuple[set[str], set[str]]:
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(san.get_values_for_type(x509.DNSName)),
            {str(a) for a in san.get_values_for_type(x509.IPAddress)})


def test_certificate_names_the_addresses_and_keeps_its_key(tmp_path: Path) -> None:
    cert, key = tls.ensure_self_signed(tmp_path, "pi", ["192.168.1.20"])
    dns, ips = sans(cert)
    assert dns == {"pi", "pi.local", "localhost"}
    assert ips == {"127.0.0.1", "::1", "192.168.1.20"}
    first_cert, first_key, pin = cert.read_bytes(), key.read_bytes(), tls.spki_pin(cert)
    assert pin.startswith("sha256//") and len(pin) == 8 + 44

    tls.ensure_self_signed(tmp_path, "pi", ["192.168.1.20"])  # same set: left alone
    assert cert.read_bytes() == first_cert

    tls.ensure_self_signed(tmp_path, "pi", ["192.168.1.20", "fd00::20"])  # a new address
    assert cert.read_bytes() != first_cert
    assert sans(cert)[1] == {"127.0.0.1", "::1", "192.168.1.20", "fd00::20"}
    assert key.read_bytes() == first_key and tls.spki_pin(cert) == pin


def test_serving_addresses_of_a_specific_address_and_a_wildcard() -> None:
    assert tls.serving_addresses("10.1.2.3") == ["10.1.2.3"]
    everything = tls.serving_addresses("0.0.0.0")
    assert "127.0.0.1" in everything
    assert all(ipaddress.ip_address(a).version == 4 for a in everything)


@pytest.fixture
def netns_addresses() -> Iterator[Callable[[str], None]]:
    """Add 10.204.x.y addresses to lo, only inside the suite's private network namespace."""
    if not os.environ.get("UONE_TEST_NETNS") or os.geteuid() != 0:
        print("SKIP reason: needs root inside the private namespace of scripts/test.sh")
        pytest.skip("needs root inside the private network namespace (run scripts/test.sh)")
    added: list[str] = []

    def add(address: str) -> None:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        added.append(address)

    try:
        yield add
    finally:
        for address in added:
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def _handshake(address: str, port: int, cafile: Path) -> str:
    """A verifying TLS client connecting by IP: the peer certificate's subject CN."""
    ctx = ssl.create_default_context(cafile=str(cafile))  # check_hostname: the IP must match
    with socket.create_connection((address, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=address) as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def _curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args, url],
                          capture_output=True, text=True, timeout=30)


async def test_https_by_ip_verifies_and_a_pinned_key_survives_a_new_address(
        tmp_path: Path, config_factory: Callable[..., LoadedConfig],
        netns_addresses: Callable[[str], None]) -> None:
    from hub.api.server import ApiServer
    from hub.hub import Hub

    base = f"10.204.{os.getpid() % 250}"
    first, second = f"{base}.1", f"{base}.2"
    netns_addresses(first)
    loaded = config_factory({"api": {"host": "0.0.0.0", "port": 0}})
    cert = loaded.state_dir / tls.CERT_FILE
    async with Hub(loaded) as hub, ApiServer(hub) as server:
        assert server.scheme == "https"
        port = server.port
        assert port
        assert first in sans(cert)[1]
        key_before, pin = (loaded.state_dir / tls.KEY_FILE).read_bytes(), tls.spki_pin(cert)
        assert await asyncio.to_thread(_handshake, first, port, cert)
        if shutil.which("curl"):
            r = await asyncio.to_thread(_curl, f"https://{first}:{port}/api/health",
                                        "--cacert", str(cert))
            assert r.returncode == 0 and '"status"' in r.stdout, r.stderr

        # a second interface or a new DHCP lease
        await asyncio.to_thread(netns_addresses, second)
        with pytest.raises(ssl.SSLCertVerificationError):  # not named yet
            await asyncio.to_thread(_handshake, second, port, cert)
        old_fingerprint = server.fingerprint
        assert await server.refresh_certificate()
        assert not await server.refresh_certificate()  # nothing changed since
        assert server.fingerprint != old_fingerprint
        assert {first, second} <= sans(cert)[1]
        assert await asyncio.to_thread(_handshake, second, port, cert)
        assert (loaded.state_dir / tls.KEY_FILE).read_bytes() == key_before
        assert tls.spki_pin(cert) == pin
        if shutil.which("curl"):  # a client that pinned the key before the renewal
            r = await asyncio.to_thread(_curl, f"https://{second}:{port}/api/health",
                                        "-k", "--pinnedpubkey", pin)
            assert r.returncode == 0 and '"status"' in r.stdout, r.stderr
            wrong = "sha256//" + "A" * 43 + "="
            r = await asyncio.to_thread(_curl, f"https://{second}:{port}/api/health",
                                        "-k", "--pinnedpubkey", wrong)
            assert r.returncode != 0

    # `uone-hub status` prints the pin
    status = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hub", "status", "-c", str(loaded.path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert status.returncode == 0, status.stderr
    assert f"tls public key:   {pin}" in status.stdout


async def test_the_address_watch_renews_the_certificate_on_the_injected_clock(
        config_factory: Callable[..., LoadedConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ADDRESS_CHECK seconds of the hub's clock the API re-issues the certificate when
    the serving addresses changed (before: a real 60 s asyncio.sleep no test could move)."""
    from hub.api import server as api_server
    from hub.api.server import ApiServer
    from hub.clock import ManualClock
    from hub.hub import Hub

    addresses = ["10.203.0.1"]  # what the interfaces have, as serving_addresses reads them
    monkeypatch.setattr(tls, "serving_addresses", lambda host: list(addresses))
    clock = ManualClock()
    loaded = config_factory({"api": {"host": "0.0.0.0", "port": 0}})
    cert = loaded.state_dir / tls.CERT_FILE
    async with Hub(loaded, clock=clock) as hub, ApiServer(hub) as server:
        assert server.scheme == "https"
        first = server.fingerprint
        assert "10.203.0.1" in sans(cert)[1]
        addresses.append("10.203.0.2")  # a second interface, or a new DHCP lease
        await clock.advance(api_server.ADDRESS_CHECK - 1)
        assert server.fingerprint == first  # not looked at before the check is due
        await clock.advance(1)
        for _ in range(2000):  # the renewal runs in a thread: wait for it (a bound, not speed)
            if server.fingerprint != first:
                break
            await asyncio.sleep(0.01)
        assert server.fingerprint != first
        assert {"10.203.0.1", "10.203.0.2"} <= sans(cert)[1]
