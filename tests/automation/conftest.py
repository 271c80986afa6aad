"""Fixtures for the automation engine: hubs on a ManualClock, built from config snippets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.clock import ManualClock
from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config

# 2026-03-10 12:00:00 UTC, a Tuesday
START = 1773144000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_hub(tmp_path: Path, clock: ManualClock) -> Callable[..., Any]:
    """`async with make_hub(automations=[...], extra={...}) as hub:` on the manual clock."""

    @contextlib.asynccontextmanager
    async def make(automations: list[dict[str, Any]] | None = None,
                   extra: dict[str, Any] | None = None, *, use_clock: ManualClock | None = None
                   ) -> AsyncIterator[Hub]:
        cfg = dict(extra or {})
        if automations is not None:
            cfg["automations"] = automations
        loaded = load_config(write_config(tmp_path, cfg))
        async with Hub(loaded, clock=use_clock or clock) as hub:
            await settle()
            yield hub

    return make


async def settle(turns: int = 30) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def traces(hub: Hub, automation_id: str) -> list[dict[str, Any]]:
    """Finished runs, newest first (running ones are listed too: see `running`)."""
    return [t for t in hub.automations.traces(automation_id) if t["state"] != "running"]


def running(hub: Hub, automation_id: str) -> list[dict[str, Any]]:
    return [t for t in hub.automations.traces(automation_id) if t["state"] == "running"]


async def wait_for(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Real-time wait for work done on the loop or the writer thread (not for clock time)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def command(hub: Hub, device: str, cmd: str, **params: Any) -> None:
    await hub.integrations.command(device, cmd, params)
    await settle()
