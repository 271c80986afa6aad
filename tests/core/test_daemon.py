"""The process as systemd and a LAN client see it: sd_notify, SIGTERM, kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEFAULT_VIRTUAL, free_port

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **storage: float) -> tuple[Path, int]:
    port = free_port()
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "api": {"host": "127.0.0.1", "port": port},
        "storage": {"commit_interval": 0.05, **storage},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port


def auth_headers(config: Path) -> dict[str, str]:
    """Headers a script would send: an owner and a long-lived token made with the CLI."""
    cached = _TOKENS.get(config)
    if cached is None:
        run = dict(cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
        subprocess.run([sys.executable, "-m", "hub", "user", "add", "scripter", "--role",
                        "owner", "--password-stdin", "-c", str(config)],
                       input="a long test password\n", **run)
        out = subprocess.run([sys.executable, "-m", "hub", "token", "create", "--user",
                              "scripter", "--name", "test", "-c", str(config)], **run)
        cached = _TOKENS[config] = out.stdout.strip()
    return {"Authorization": f"Bearer {cached}"}


_TOKENS: dict[Path, str] = {}


def _start(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "-c", str(config)], cwd=ROOT,
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=open(config.parent / "hub.log", "ab"),
    )


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Whatever a test did, no hub process it started outlives it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _request(port: int, path: str, body: dict | None = None, headers=None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "hub exited early"
        try:
            _request(port, "/api/health")
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("hub did not answer")


def test_ready_watchdog_stopping_over_a_real_notify_socket(tmp_path: Path) -> None:
    config, port = _config(tmp_path)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    proc = _start(config, {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000",
                           "WATCHDOG_PID": ""})
    try:
        first = sock.recv(4096).decode()
        assert first.splitlines()[0] == "READY=1"
        # READY means storage and the API are up: the API answers at once.
        health = _request(port, "/api/health")
        assert health["status"] == "ok"
        pings = [sock.recv(4096).decode() for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
        proc.send_signal(signal.SIGTERM)
        messages = []
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
        assert proc.wait(timeout=10) == 0  # before the unit's TimeoutStopSec=15 kills it
    finally:
        _end(proc)
        sock.close()


def test_sigterm_flushes_everything_acknowledged(tmp_path: Path) -> None:
    # A long commit interval: only the shutdown flush can save these writes.
    config, port = _config(tmp_path, commit_interval=60.0)
    proc = _start(config)
    try:
        _wait_http(port, proc)
        headers = auth_headers(config)
        for i in range(50):
            _request(port, "/api/devices/virtual.temp/commands",
                     {"command": "set", "params": {"value": i + 0.5}}, headers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        _end(proc)
    with sqlite3.connect(tmp_path / "data" / "hub.db") as conn:
        values = [json.loads(v) for (v,) in conn.execute(
            "SELECT value FROM history WHERE device_id = 'virtual.temp' ORDER BY id")]
        current = conn.execute("SELECT value FROM states WHERE device_id = 'virtual.temp'"
                               ).fetchone()
    assert values == [20.0] + [i + 0.5 for i in range(50)]
    assert json.loads(current[0]) == 49.5


# history rows, merged or still staged (hub/state.py: history_recent)
ALL_HISTORY = "SELECT (SELECT count(*) FROM history) + (SELECT count(*) FROM history_recent)"


@pytest.mark.parametrize("round_", range(2))
def test_kill_9_during_writes_keeps_every_committed_row(tmp_path: Path, round_: int) -> None:
    config, port = _config(tmp_path, commit_interval=0.02)
    proc = _start(config)
    db = tmp_path / "data" / "hub.db"
    try:
        _wait_http(port, proc)
        headers = auth_headers(config)
        committed = 0
        for i in range(300):
            _request(port, "/api/devices/virtual.temp/commands",
                     {"command": "set", "params": {"value": float(i)}}, headers)
            if i % 50 == 0:
                with sqlite3.connect(db) as conn:  # what is committed is visible to others
                    committed = conn.execute(ALL_HISTORY).fetchone()[0]
        proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is busy with batches
        proc.wait(timeout=10)
    finally:
        _end(proc)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after = conn.execute(ALL_HISTORY).fetchone()[0]
    assert committed > 0 and after >= committed
    # and the hub opens the same database again and carries on
    proc = _start(config)
    try:
        _wait_http(port, proc)
        state = _request(port, "/api/devices/virtual.temp/state", headers=auth_headers(config))
        assert isinstance(state["attributes"]["value"]["value"], float)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        _end(proc)
