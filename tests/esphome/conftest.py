"""ESPHome fixtures: `hub` / `api_client` built from a module's `hub_config`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.config import LoadedConfig
from hub.hub import Hub


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"integrations": {"virtual": {"devices": []}, "esphome": {}}}


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig],
              hub_config: dict[str, Any]) -> AsyncIterator[Hub]:
    async with Hub(config_factory(hub_config)) as h:
        yield h
