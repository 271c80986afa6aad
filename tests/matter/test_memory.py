"""The Matter server's memory beside the hub's in /api/health: the server unit's cgroup under
systemd, else the process listening on the websocket's loopback port, else why unknown."""

from __future__ import annotations

import os
from pathlib import Path

from integrations.matter import memory
from tests.matter.conftest import detail, wait_until


def test_cgroup_file_first(tmp_path: Path) -> None:
    cgroup = tmp_path / "uone-matter.service" / "memory.current"
    cgroup.parent.mkdir()
    cgroup.write_text("123456789\n")
    found = memory.server_memory("ws://127.0.0.1:1/ws", cgroup)
    assert found["bytes"] == 123456789 and "cgroup uone-matter.service" in found["source"]


def test_unknown_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "uone-matter.service" / "memory.current"
    remote = memory.server_memory("ws://192.168.1.5:5580/ws", missing)
    assert remote["bytes"] is None and "not on this machine" in remote["unknown"]
    port = _unused_port()
    nobody = memory.server_memory(f"ws://127.0.0.1:{port}/ws", missing)
    assert nobody["bytes"] is None and f"port {port}" in nobody["unknown"]
    broken = tmp_path / "broken" / "memory.current"
    broken.parent.mkdir()
    broken.write_text("not a number")
    assert "not readable" in memory.server_memory("ws://127.0.0.1:1/ws", broken)["unknown"]


def test_own_rss_is_this_process() -> None:
    rss = memory.own_rss()
    assert rss is not None and rss > 1024 * 1024
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    assert abs(rss - pages * os.sysconf("SC_PAGE_SIZE")) < 64 * 1024 * 1024


async def test_health_shows_the_server_process_rss_beside_the_hubs(hub, server, api_client
                                                                   ) -> None:
    assert memory.listening_pid(server.port) == server.pid()
    await wait_until(lambda: detail(hub)["memory"]["server"]["bytes"])
    health = await (await api_client.get("/api/health")).json()
    mem = health["integration_details"]["matter"]["memory"]
    assert mem["server"]["source"] == f"process {server.pid()} (VmRSS)"
    assert mem["server"]["bytes"] > 20 * 1024 * 1024  # the CHIP SDK alone is more
    assert mem["hub"]["bytes"] > 1024 * 1024


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
