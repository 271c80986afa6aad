"""The listener against real sockets: idle and slow clients are closed, one address cannot
hold more than its share, malformed HTTP is not an ERROR traceback (issue 18, points 13-14).

Waits are bounded only so that a regression fails instead of hanging; nothing here asserts
how fast anything happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.api.server import ApiServer
from hub.hub import Hub

HANG_GUARD = 20.0  # seconds: only so that a regression fails instead of hanging


@contextlib.asynccontextmanager
async def serving(config_factory, **api) -> AsyncIterator[ApiServer]:
    async with Hub(config_factory({"api": api})) as hub, ApiServer(hub) as server:
        yield server


async def connect(server: ApiServer, source: str = "127.0.0.1"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, drip: asyncio.StreamWriter | None = None
                           ) -> bytes:
    """Everything the server sends until it closes (optionally dripping a header line now
    and then, like a slow client)."""
    got = b""
    async with asyncio.timeout(HANG_GUARD):
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                if drip is not None:
                    drip.write(b"X-Slow: 1\r\n")
                    with contextlib.suppress(ConnectionError):
                        await drip.drain()
                continue
            except ConnectionError:
                return got
            if not chunk:
                return got
            got += chunk


async def health(server: ApiServer, source: str) -> bytes:
    reader, writer = await connect(server, source)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(HANG_GUARD):
        answer = await reader.read()
    writer.close()
    return answer


async def test_idle_and_slow_connections_are_closed(config_factory) -> None:
    async with serving(config_factory, idle_timeout=1.0, body_timeout=1.0) as server:
        # a connection that never sends anything
        idle_r, idle_w = await connect(server)
        # one that sends its headers a line at a time, forever
        slow_r, slow_w = await connect(server)
        slow_w.write(b"GET /api/health HTTP/1.1\r\nHost: hub\r\n")
        # one that sends its headers but only part of the body it announced
        body_r, body_w = await connect(server)
        body_w.write(b"POST /api/auth/login HTTP/1.1\r\nHost: hub\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        # and one kept alive after a request
        kept_r, kept_w = await connect(server)
        kept_w.write(b"GET /api/health HTTP/1.1\r\nHost: hub\r\n\r\n")

        assert await closed_by_server(idle_r) == b""
        assert await closed_by_server(slow_r, drip=slow_w) == b""
        answer = await closed_by_server(body_r)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b"api.body_timeout" in answer
        answer = await closed_by_server(kept_r)
        assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
        for w in (idle_w, slow_w, body_w, kept_w):
            w.close()


async def test_a_tls_handshake_that_never_finishes_is_closed(config_factory,
                                                              tmp_path: Path) -> None:
    from hub import tls

    cert, key = await asyncio.to_thread(tls.ensure_self_signed, tmp_path / "tls")
    async with serving(config_factory, idle_timeout=1.0, tls_cert=str(cert),
                       tls_key=str(key)) as server:
        assert server.scheme == "https"
        silent_r, silent_w = await connect(server)  # TCP only, no ClientHello
        assert await closed_by_server(silent_r) == b""
        silent_w.close()


async def test_one_address_cannot_take_every_connection(config_factory, caplog) -> None:
    async with serving(config_factory, max_connections_per_address=3) as server:
        held = [await connect(server, "127.0.0.1") for _ in range(3)]
        await asyncio.sleep(0)  # (connects complete before the server has counted them)
        for reader, writer in held:  # each one works: the limit is not below 3
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: hub\r\n\r\n")
            async with asyncio.timeout(HANG_GUARD):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        # the fourth from the same address is refused, twice
        for _ in range(2):
            answer = await health(server, "127.0.0.1")
            assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
            assert b"too_many_connections" in answer
        # another address still gets through
        assert (await health(server, "127.0.0.2")).startswith(b"HTTP/1.1 200")
        # one closed (by the server, after a last request) makes room again
        reader, writer = held[0]
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        await closed_by_server(reader)
        writer.close()
        assert (await health(server, "127.0.0.1")).startswith(b"HTTP/1.1 200")
        for _, writer in held[1:]:
            writer.close()
    warnings = [r for r in caplog.records if "max_connections_per_address" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once per flood


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/health HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS on a plain port\r\n\r\n",
])
async def test_malformed_http_is_a_400_logged_once_without_traceback(
        config_factory, caplog, request_bytes: bytes) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    async with serving(config_factory) as server:
        for _ in range(3):
            reader, writer = await connect(server)
            writer.write(request_bytes)
            await writer.drain()
            async with asyncio.timeout(HANG_GUARD):
                answer = await reader.read()
            writer.close()
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:100]
    from_aiohttp = [r for r in caplog.records if r.name.startswith("aiohttp")]
    # (aiohttp itself logs a non-HTTP first request, e.g. TLS, at debug with its traceback)
    assert not [r for r in from_aiohttp
                if r.levelno >= logging.WARNING or (r.exc_info and r.levelno > logging.DEBUG)]
    assert len([r for r in from_aiohttp if r.levelno == logging.INFO]) <= 1
    assert len([r for r in from_aiohttp if "Error handling request" in r.getMessage()]) == 3


def test_the_unit_raises_the_open_file_limit() -> None:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "uone-hub.service"
    limits = [line.split("=", 1)[1] for line in unit.read_text().splitlines()
              if line.startswith("LimitNOFILE=")]
    assert limits and int(limits[0].split(":")[0]) >= 4096, limits


def test_loopback_has_a_second_address() -> None:
    """The per-address test needs 127.0.0.2 as a source (Linux routes all of 127/8 to lo)."""
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        assert s.getsockname()[0] == "127.0.0.2"


def test_a_flood_from_one_address_does_not_lock_others_out(tmp_path: Path) -> None:
    """The issue's case: a hub process with few file descriptors, one address opening
    hundreds of connections and holding them; another address still gets its answer."""
    import resource
    import subprocess
    import sys
    import time

    import yaml

    from tests.conftest import DEFAULT_VIRTUAL, free_port

    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "api": {"host": "127.0.0.1", "port": port, "max_connections_per_address": 16},
        "discovery": {"mdns": {"enabled": False, "advertise": False},
                      "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}},
    }))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "-c", str(config)],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "hub.log").open("ab"),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard)))
    held: list[socket.socket] = []

    def ask(source: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD,
                                      source_address=(source, 0)) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    try:
        deadline = time.monotonic() + HANG_GUARD
        while True:  # up
            assert proc.poll() is None, (tmp_path / "hub.log").read_text()[-2000:]
            try:
                ask("127.0.0.3")
                break
            except OSError:
                assert time.monotonic() < deadline, "hub did not answer"
                time.sleep(0.05)
        for _ in range(300):  # the flood: connections opened and kept, never used
            s = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD,
                                         source_address=("127.0.0.1", 0))
            held.append(s)
        answer = ask("127.0.0.2")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert proc.poll() is None
    finally:
        for s in held:
            s.close()
        proc.terminate()
        try:
            proc.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
