"""Shared fixtures: a config factory, a running Hub, and an API client on the real app.

tests/hygiene.py checks every test (blocking calls on the loop, lingering tasks and timers,
loop errors, hubs and integrations left running).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from hub.config import LoadedConfig, load_config
from hub.hub import Hub

pytest_plugins = ["tests.hygiene"]

os.environ.pop("STATE_DIRECTORY", None)
os.environ.pop("NOTIFY_SOCKET", None)

DEFAULT_VIRTUAL = [
    {"id": "lamp", "name": "Lamp", "kind": "switch", "area": "living"},
    {"id": "button", "name": "Button", "kind": "button", "area": "hall"},
    {"id": "temp", "name": "Temperature", "kind": "sensor", "area": "living", "initial": 20.0},
    {"id": "motion", "name": "Motion", "kind": "binary_sensor", "area": "hall"},
]


def write_config(tmp_path: Path, extra: dict[str, Any] | None = None, text: str | None = None,
                 name: str = "config.yaml") -> Path:
    """Write a config for a test hub: loopback API on a free port, BLE and mDNS off."""
    path = tmp_path / name
    if text is not None:
        path.write_text(textwrap.dedent(text))
        return path
    cfg: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "log_level": "debug",
        "api": {"host": "127.0.0.1", "port": 0},
        "storage": {"commit_interval": 0.05},
        "discovery": {"mdns": {"enabled": False, "advertise": False},
                      "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}},
    }
    _merge(cfg, extra or {})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., LoadedConfig]:
    def make(extra: dict[str, Any] | None = None, **kw: Any) -> LoadedConfig:
        return load_config(write_config(tmp_path, extra, **kw))

    return make


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig]) -> AsyncIterator[Hub]:
    """A started core Hub with the default virtual devices."""
    async with Hub(config_factory()) as h:
        yield h


OWNER_USERNAME = "owner"
TEST_PASSWORD = "correct horse battery"


@pytest.fixture
async def api_server(hub: Hub) -> AsyncIterator[TestServer]:
    """The real app (make_app) served in-process on loopback."""
    from hub.api.app import make_app

    server = TestServer(make_app(hub))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def client_for(hub: Hub, api_server: TestServer) -> AsyncIterator[Callable[..., Any]]:
    """`await client_for(Role.MEMBER, **user_fields)`: a client signed in as a new user.

    `client_for(None)` gives a client without a token. Each signed-in client carries
    `client.user` (the User) and `client.token` (its raw bearer token); the user's password
    is TEST_PASSWORD. Extra keywords go to `hub.auth.create_user` (granted_devices=...,
    granted_areas=..., is_minor=...; username= to choose the name).
    """
    from hub.auth.principal import Role

    clients: list[TestClient] = []
    counter = iter(range(1, 1_000_000))

    async def make(role: Role | None, *, username: str | None = None,
                   **fields: Any) -> TestClient:
        headers: dict[str, str] = {}
        user = token = None
        if role is not None:
            name = username or f"{role.label}{next(counter)}"
            user = hub.auth.find_user(name)
            if user is None:
                user = await hub.auth.create_user(name, TEST_PASSWORD, role, **fields)
            token, _ = await hub.auth.create_token(user.id, "test client")
            headers["Authorization"] = f"Bearer {token}"
        client = TestClient(api_server, headers=headers)
        await client.start_server()
        client.user = user  # type: ignore[attr-defined]
        client.token = token  # type: ignore[attr-defined]
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for c in clients:
            await c.session.close()


@pytest.fixture
async def api_client(client_for: Callable[..., Any]) -> TestClient:
    """An aiohttp client on the real app, in-process on loopback, signed in as the owner
    (username OWNER_USERNAME, password TEST_PASSWORD; `api_client.user`, `.token`)."""
    from hub.auth.principal import Role

    return await client_for(Role.OWNER, username=OWNER_USERNAME)


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so that a hub restarted on the same
    port cannot find it taken by some client's outgoing connection in the meantime."""
    import random
    import socket

    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
