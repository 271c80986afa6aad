"""Fixtures for the Matter integration: python-matter-server (pinned, own venv) in the test's
namespace on loopback, matter.js devices (pinned, npm) in a device namespace joined by a
veth, and a hub whose `matter` integration is a client of that server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config
from tests.discovery import netns
from tests.doubles import matter
from tests.mqtt.conftest import wait_until

_ports = itertools.count(5540)
_discriminators = itertools.count(3000)


@pytest.fixture(scope="session")
def matter_parts() -> tuple[Path, Path]:
    """(server venv, npm dir with matter.js), built once and cached (pinned versions)."""
    reason = netns.unavailable() or matter.unavailable()
    if reason:
        pytest.skip(f"Matter tests: {reason}")
    return matter.server_venv(), matter.npm_dir()


@pytest.fixture
async def lan(matter_parts: tuple[Path, Path]) -> AsyncIterator[netns.Lan]:
    async with netns.veth_lan(prefix="mtr", net=80) as lan:
        yield lan


@pytest.fixture
def paa_dir(matter_parts: tuple[Path, Path], tmp_path: Path) -> Path:
    directory = tmp_path / "paa"
    matter.write_test_paa(matter_parts[1], directory)
    return directory


@pytest.fixture
async def server(matter_parts: tuple[Path, Path], tmp_path: Path, paa_dir: Path,
                 lan: netns.Lan) -> AsyncIterator[matter.MatterServer]:
    srv = matter.MatterServer(matter_parts[0], tmp_path / "server", paa_dir)
    async with matter.running(srv):
        yield srv


@pytest.fixture
def make_device(matter_parts: tuple[Path, Path], lan: netns.Lan, tmp_path: Path
                ) -> Callable[[str], matter.MatterDevice]:
    def make(kind: str) -> matter.MatterDevice:
        port = next(_ports)
        return matter.MatterDevice(matter_parts[1], lan.dev_ns, kind, port,
                                   next(_discriminators), tmp_path / f"device-{kind}-{port}")
    return make


def matter_section(url: str, **over: Any) -> dict[str, Any]:
    return {"server_url": url, "backoff_initial": 0.1, "backoff_max": 0.5, **over}


@pytest.fixture
async def hub(server: matter.MatterServer, tmp_path: Path) -> AsyncIterator[Hub]:
    cfg = {"integrations": {"matter": matter_section(server.url, server_log=str(server.log))}}
    async with Hub(load_config(write_config(tmp_path, cfg))) as h:
        await wait_until(lambda: detail(h).get("server") == "connected", 30)
        yield h


def detail(hub: Hub) -> dict[str, Any]:
    return hub.integrations.status().get("matter", {}).get("detail", {})


@contextlib.asynccontextmanager
async def added(api_client: Any, device: matter.MatterDevice) -> AsyncIterator[str]:
    """Start a matter.js device and commission it through the API: its hub device id. The
    device stops on the way out."""
    await device.start()
    try:
        job = await commission(api_client, device.manual_code)
        assert job["state"] == "succeeded", job
        yield str(job["device_id"])
    finally:
        await device.stop()


async def commission(api_client: Any, code: str, within: float = 60, **body: Any
                     ) -> dict[str, Any]:
    """POST /api/matter/commission (`body`: more fields, `ssid`) and follow the job to its
    end; the final job."""
    resp = await api_client.post("/api/matter/commission", json={"code": code, **body})
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while job["state"] not in ("succeeded", "failed"):
        assert loop.time() < deadline, f"commissioning still {job['state']}"
        await asyncio.sleep(0.1)
        job = await (await api_client.get(f"/api/matter/commission/{job['id']}")).json()
    return job


def certificate(name: str, *, ca: bool, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
          = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An X.509 certificate (self-signed unless `issuer` is given) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key
