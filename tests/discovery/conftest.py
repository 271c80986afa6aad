"""Discovery fixtures: fake BlueZ, and `hub` / `api_client` built from a `hub_config`.

A test module overrides `hub_config` (a dict merged into the test config); the root
`api_client` fixture then serves that hub (and signs in the way the root fixture does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.config import LoadedConfig
from hub.hub import Hub
from tests.doubles.bluez import fake_bluez  # noqa: F401

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
ENCRYPTED_MAC = "54:48:E6:8F:80:A5"


def ble_config(**ble: Any) -> dict[str, Any]:
    """Config with BLE on (fast recovery for tests) and bthome loaded with one bind key."""
    return {
        "discovery": {"ble": {"enabled": True, "unavailable_after": 2.0, "stall_after": 30.0,
                              "restart_min": 0.1, "restart_max": 0.5, **ble}},
        "integrations": {"virtual": {"devices": []},
                         "bthome": {"bind_keys": {ENCRYPTED_MAC: KEY.hex()}}},
    }


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {}


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig],
              hub_config: dict[str, Any]) -> AsyncIterator[Hub]:
    async with Hub(config_factory(hub_config)) as h:
        yield h
