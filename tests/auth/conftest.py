"""Auth tests run the hub on a manual clock: lockouts and TOTP steps without sleeping."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from hub.auth import totp
from hub.config import LoadedConfig
from hub.hub import Hub


class ManualClock:
    """Real time at the start, then moved only by `advance`."""

    def __init__(self) -> None:
        self._time = time.time()
        self._mono = 1000.0

    def time(self) -> float:
        return self._time

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._time, UTC)

    def advance(self, seconds: float) -> None:
        self._time += seconds
        self._mono += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig],
              clock: ManualClock) -> AsyncIterator[Hub]:
    async with Hub(config_factory(), clock=clock) as h:
        yield h


def secret_of(uri: str) -> bytes:
    query = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    return totp.decode_secret(query["secret"][0])
