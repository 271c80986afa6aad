"""A LAN client's view: a real hub process serving HTTPS on a non-loopback address, used
with a real aiohttp client - onboarding, lockout, TOTP, refresh, revocation, websocket.

The address is a 10.x address on lo inside the private network namespace
that scripts/test.sh runs the suite in; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from hub import tls
from hub.auth import totp
from tests.auth.conftest import secret_of
from tests.conftest import DEFAULT_VIRTUAL

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = aiohttp.ClientTimeout(total=20)


@pytest.fixture
def lan_address() -> Iterator[str]:
    """A 10.x address, only inside the suite's private network namespace."""
    if not os.environ.get("UONE_TEST_NETNS") or os.geteuid() != 0:
        print("SKIP reason: needs root inside the private namespace of scripts/test.sh")
        pytest.skip("needs root inside the private network namespace (run scripts/test.sh)")
    address = f"10.203.{os.getpid() % 250}.1"
    # On lo of the private namespace: a non-loopback address (so the hub serves HTTPS)
    # that exists only inside this namespace.
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, host: str, **api: Any) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "api": {"host": host, "port": _free_port(host), **api},
        "storage": {"commit_interval": 0.05},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class HubProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        cfg = yaml.safe_load(config.read_text())
        self.host, self.port = cfg["api"]["host"], cfg["api"]["port"]
        self.state = Path(cfg["data_dir"])
        self.log = config.parent / "hub.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "-c", str(config)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))

    def url(self, path: str, scheme: str = "https") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub", *args, "-c", str(self.config)],
                              cwd=ROOT, input=stdin, capture_output=True, text=True,
                              timeout=60)


async def _wait_up(hub: HubProcess, session: aiohttp.ClientSession, ssl_arg: Any) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert hub.proc.poll() is None, hub.log.read_text()
        try:
            async with session.get(hub.url("/api/health"), ssl=ssl_arg) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("hub did not come up:\n" + hub.log.read_text())
        await asyncio.sleep(0.1)


@pytest.fixture
async def lan_hub(tmp_path: Path, lan_address: str) -> AsyncIterator[HubProcess]:
    hub = HubProcess(_config(tmp_path, lan_address))
    try:
        yield hub
    finally:
        hub.stop()


async def test_lan_client_over_https(lan_hub: HubProcess) -> None:
    hub = lan_hub
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        await _wait_up(hub, s, insecure)
        cert = hub.state / tls.CERT_FILE
        fingerprint = tls.fingerprint(cert)
        # the fingerprint is in the log and in `uone-hub status` (while running)
        assert fingerprint in hub.log.read_text()
        status = hub.cli("status")
        assert status.returncode == 0 and fingerprint in status.stdout, status
        assert "users:            0" in status.stdout and "onboarding" in status.stdout
        # a client pins the fingerprint; a wrong pin is refused; plain HTTP is not served
        pin = aiohttp.Fingerprint(bytes.fromhex(fingerprint.replace(":", "")))
        wrong = aiohttp.Fingerprint(hashlib.sha256(b"someone else").digest())
        with pytest.raises(aiohttp.ServerFingerprintMismatch):
            await s.get(hub.url("/api/health"), ssl=wrong)
        with pytest.raises(aiohttp.ClientError):
            await s.get(hub.url("/api/health", "http"))
        # or trusts the certificate file (curl --cacert), checking the chain
        trust = ssl.create_default_context(cafile=str(cert))
        async with s.get(hub.url("/api/health"), ssl=trust,
                         server_hostname="localhost") as r:
            assert r.status == 200
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
            assert r.headers["X-Frame-Options"] == "DENY"
        async with s.get(hub.url("/api/devices"), ssl=pin) as r:
            assert r.status == 401

        # onboarding with the code from the state directory
        code_file = hub.state / "onboarding-code"
        assert (code_file.stat().st_mode & 0o777) == 0o600
        code = code_file.read_text().strip()
        assert code in hub.log.read_text()
        async with s.post(hub.url("/api/onboarding"), ssl=pin, json={
                "code": code, "username": "olga", "password": "owner password"}) as r:
            assert r.status == 201, await r.text()
            owner = await r.json()
        auth = {"Authorization": f"Bearer {owner['access_token']}"}

        async def call(method: str, path: str, headers=None, **kw: Any) -> tuple[int, Any]:
            async with s.request(method, hub.url(path), ssl=pin, headers=headers or auth,
                                 **kw) as r:
                body = await r.json() if r.content_type == "application/json" else None
                return r.status, (body, r.headers)

        status_code, (body, _) = await call("GET", "/api/devices")
        assert status_code == 200 and len(body["devices"]) == 4

        # lockout: 5 failures for a username from this address, then 429 with Retry-After
        status_code, _ = await call("POST", "/api/users", json={
            "username": "mia", "password": "member password", "role": "member"})
        assert status_code == 201
        for _ in range(5):
            status_code, _ = await call("POST", "/api/auth/login", headers={}, json={
                "username": "mia", "password": "guessing"})
            assert status_code == 401
        status_code, (body, headers) = await call("POST", "/api/auth/login", headers={}, json={
            "username": "mia", "password": "member password"})
        assert status_code == 429 and int(headers["Retry-After"]) >= 1
        # ...which does not lock the owner out
        status_code, (body, _) = await call("POST", "/api/auth/login", headers={}, json={
            "username": "olga", "password": "owner password"})
        assert status_code == 200

        # two-step verification: enrol, confirm, then the password alone is not enough
        status_code, (body, _) = await call("POST", "/api/users/me/totp")
        secret = secret_of(body["otpauth_uri"])
        now = time.time()
        status_code, (body, _) = await call("PUT", "/api/users/me/totp",
                                            json={"code": totp.code_at(secret, now - 30)})
        assert status_code == 200, body
        recovery = body["recovery_codes"]
        status_code, (body, _) = await call("POST", "/api/auth/login", headers={}, json={
            "username": "olga", "password": "owner password"})
        assert status_code == 401 and body["error"]["code"] == "totp_required"
        status_code, (session, _) = await call("POST", "/api/auth/login", headers={}, json={
            "username": "olga", "password": "owner password",
            "totp": totp.code_at(secret, time.time())})
        assert status_code == 200, session
        status_code, (body, _) = await call("POST", "/api/auth/login", headers={}, json={
            "username": "olga", "password": "owner password", "totp": recovery[3]})
        assert status_code == 200

        # refresh rotates
        status_code, (fresh, _) = await call("POST", "/api/auth/refresh", headers={},
                                             json={"refresh_token": session["refresh_token"]})
        assert status_code == 200 and fresh["access_token"] != session["access_token"]
        status_code, _ = await call(
            "GET", "/api/users/me",
            headers={"Authorization": f"Bearer {session['access_token']}"})
        assert status_code == 401

        # a script token, a websocket over TLS, and revocation closing it
        status_code, (made, _) = await call("POST", "/api/tokens", json={"name": "wall panel"})
        assert status_code == 201
        script = {"Authorization": f"Bearer {made['token']}"}
        async with s.ws_connect(hub.url("/api/ws", "wss"), ssl=pin, headers=script) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "ready"
            await ws.send_json({"type": "subscribe", "devices": ["virtual.lamp"]})
            assert (await ws.receive_json(timeout=10))["type"] == "subscribed"
            status_code, _ = await call("POST", "/api/devices/virtual.lamp/commands",
                                        json={"command": "turn_on"})
            assert status_code == 200
            event = (await ws.receive_json(timeout=10))["event"]
            assert event["device_id"] == "virtual.lamp" and event["new"] is True
            status_code, _ = await call("DELETE", f"/api/tokens/{made['id']}")
            assert status_code == 204
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
        status_code, _ = await call("GET", "/api/devices", headers=script)
        assert status_code == 401

        # the owner's audit trail saw all of it
        status_code, (body, _) = await call("GET", "/api/audit?limit=200")
        actions = {e["action"] for e in body["entries"]}
        assert {"onboarding.owner_created", "login.failed", "login.ok", "totp.enable",
                "token.create", "token.revoke", "user.create"} <= actions
        assert "owner password" not in str(body) and made["token"] not in str(body)


async def test_insecure_http_is_explicit_and_warned(tmp_path: Path, lan_address: str) -> None:
    hub = HubProcess(_config(tmp_path, lan_address, insecure_http=True))
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with s.get(hub.url("/api/health", "http")) as r:
                        assert r.status == 200
                        assert "Strict-Transport-Security" not in r.headers
                        break
                except aiohttp.ClientError:
                    assert time.monotonic() < deadline, hub.log.read_text()
                    await asyncio.sleep(0.1)
        assert re.search(r"WARNING.*insecure_http is on", hub.log.read_text())
    finally:
        hub.stop()


async def test_configured_certificate_on_loopback(tmp_path: Path, config_factory) -> None:
    """A user-provided certificate is served as is (here on loopback, which would
    otherwise be plain HTTP)."""
    from hub.api.server import ApiServer
    from hub.auth.principal import Role
    from hub.hub import Hub

    mine = tmp_path / "mine"
    cert, key = await asyncio.to_thread(tls.ensure_self_signed, mine, "hub.example")
    loaded = config_factory({"api": {"tls_cert": str(cert), "tls_key": str(key)}})
    async with Hub(loaded) as hub, ApiServer(hub) as server:
        assert server.scheme == "https" and server.fingerprint == tls.fingerprint(cert)
        user = await hub.auth.create_user("olga", "owner password", Role.OWNER)
        token, _ = await hub.auth.create_token(user.id, "t")
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            async with s.get(f"https://127.0.0.1:{server.port}/api/devices", ssl=trust,
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200 and len((await r.json())["devices"]) == 4
        assert not (hub.state_dir / tls.CERT_FILE).exists()  # no self-signed one made
