"""Fixtures for the MQTT integration: a real mosquitto, a hub connected to it, and a plain
aiomqtt client standing in for whatever else publishes on the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.clock import Clock
from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config
from tests.doubles import mosquitto
from tests.doubles.mosquitto import broker, mosquitto_pki  # noqa: F401 - shared fixtures

USERS = {"hub": "hub-pass-1", "device": "device-pass-2"}


@pytest.fixture
def mosquitto_users() -> dict[str, str]:
    return USERS


def mqtt_section(b: mosquitto.Mosquitto, **over: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"broker_url": f"mqtt://127.0.0.1:{b.plain_port}",
                               "backoff_initial": 0.05, "backoff_max": 0.5, "keepalive": 5}
    section.update(over)
    return section


@pytest.fixture
def make_hub(tmp_path: Path) -> Callable[..., Hub]:
    """`make_hub(section, extra, clock=None)`: a hub (not started) with `section` as
    integrations.mqtt; `clock` (a ManualClock) for tests that move time."""
    def make(section: dict[str, Any], extra: dict[str, Any] | None = None, *,
             clock: Clock | None = None) -> Hub:
        cfg = {"integrations": {"mqtt": section}, **(extra or {})}
        return Hub(load_config(write_config(tmp_path, cfg)), clock=clock)
    return make


@pytest.fixture
async def hub(broker: mosquitto.Mosquitto,  # noqa: F811 - the fixture imported above
              make_hub: Callable[..., Hub]) -> AsyncIterator[Hub]:
    """A hub with the MQTT integration connected to `broker` (api_client talks to it)."""
    async with make_hub(mqtt_section(broker)) as hub:
        await wait_until(lambda: status(hub)["state"] == "connected")
        yield hub


@contextlib.asynccontextmanager
async def device_client(b: mosquitto.Mosquitto, **kw: Any) -> AsyncIterator[aiomqtt.Client]:
    """A client on the broker's plain listener (what a device or Zigbee2MQTT would be)."""
    async with aiomqtt.Client("127.0.0.1", b.plain_port, **kw) as client:
        yield client


def status(hub: Hub) -> dict[str, Any]:
    instance = hub.integrations.instance("mqtt")
    if instance is None:
        return {"state": "not loaded"}
    return instance.status()  # type: ignore[attr-defined]


async def wait_until(predicate: Callable[[], Any], within: float = 30.0) -> Any:
    """Poll until `predicate()` is truthy (an upper bound for a loaded CI machine, not a
    timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


async def publish_json(client: aiomqtt.Client, topic: str, body: Any, retain: bool = True
                       ) -> None:
    await client.publish(topic, json.dumps(body), qos=1, retain=retain)


def subscribed(hub: Hub, *topics: str) -> bool:
    """The broker acknowledged the hub's subscription to every one of `topics`."""
    instance = hub.integrations.instance("mqtt")
    return instance is not None and set(topics) <= instance.connection.subscribed


async def get_health(hub: Hub) -> dict[str, Any]:
    """GET /api/health on the hub's real app (public: no sign-in needed)."""
    from aiohttp.test_utils import TestClient, TestServer

    from hub.api.app import make_app

    async with TestClient(TestServer(make_app(hub))) as client:
        r = await client.get("/api/health")
        assert r.status == 200, await r.text()
        return await r.json()


def mqtt_discovered(hub: Hub) -> list[Any]:
    return [d for d in hub.discovery.registry if d.source == "mqtt"]


class Recorder:
    """Collects what is published on some topics (the hub's outgoing commands)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def on(self, topic: str) -> list[str]:
        return [p for t, p in self.messages if t == topic]


@contextlib.asynccontextmanager
async def recording(b: mosquitto.Mosquitto, *topics: str) -> AsyncIterator[Recorder]:
    rec = Recorder()
    async with device_client(b) as client:
        for t in topics:
            await client.subscribe(t, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                payload = m.payload
                text = payload.decode() if isinstance(payload, (bytes, bytearray)) else \
                    str(payload)
                rec.messages.append((str(m.topic), text))

        task = asyncio.create_task(collect())
        try:
            yield rec
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
