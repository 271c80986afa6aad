"""Small helpers for discovery tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(predicate: Callable[[], Awaitable[Any]], within: float = 5.0,
                   every: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


async def discovered(client: Any, discovery_id: str) -> dict[str, Any] | None:
    """The discovered device `discovery_id` as GET /api/discovered lists it, or None."""
    body = await (await client.get("/api/discovered")).json()
    return next((d for d in body["discovered"] if d["id"] == discovery_id), None)
