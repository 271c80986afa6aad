"""Fixtures for provisioning: a factory PKI, a hub that trusts it, simulated Uone devices."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ifaddr
import pytest

from hub.hub import Hub
from integrations.uone.factory import FactoryPKI
from integrations.uone.simulator import Simulator, make_identity
from tests.doubles.bluez import fake_bluez  # noqa: F401


def only_loopback() -> bool:
    """True inside a private namespace with only `lo` (mDNS must never reach a real LAN)."""
    return all(not a.is_IPv4 or str(a.ip).startswith("127.")
               for ad in ifaddr.get_adapters() for a in ad.ips)


needs_netns = pytest.mark.skipif(
    not only_loopback(),
    reason="mDNS tests run only inside a private network namespace (scripts/test.sh as root)")


@pytest.fixture(scope="session")
def pki() -> FactoryPKI:
    return FactoryPKI.create()


def uone_settings(anchor: Path, **provisioning: Any) -> dict[str, Any]:
    """Config: the factory root trusted, BLE (fake BlueZ) and mDNS (netns lo) discovery on,
    the uone integration loaded."""
    return {
        "provisioning": {"trust_anchors": [str(anchor)], "ble_timeout": 10.0,
                         "lan_timeout": 10.0, **provisioning},
        "discovery": {"ble": {"enabled": True, "unavailable_after": 5.0},
                      "mdns": {"enabled": True, "interfaces": ["lo"], "advertise": False}},
        "integrations": {"virtual": {"devices": []}, "uone": {}},
    }


@pytest.fixture
def anchor(tmp_path: Path, pki: FactoryPKI) -> Path:
    path = tmp_path / "factory-root.pem"
    path.write_bytes(pki.root_pem())
    return path


@pytest.fixture
def hub_config() -> dict[str, Any]:
    """Overridden by test modules that need another hub (merged into the test config)."""
    return {}


@pytest.fixture
async def hub(config_factory: Callable[..., Any], hub_config: dict[str, Any]
              ) -> AsyncIterator[Hub]:
    async with Hub(config_factory(hub_config)) as h:
        yield h


@pytest.fixture
async def simulators(fake_bluez: Any, pki: FactoryPKI  # noqa: F811
                     ) -> AsyncIterator[Callable[..., Any]]:
    """`await simulators(did, mac, faults=...)`: a started simulated Uone device."""
    started: list[Simulator] = []

    async def make(did: str, mac: str, faults: set[str] | frozenset[str] = frozenset(),
                   **kw: Any) -> Simulator:
        sim = Simulator(make_identity(pki, did, mac, set(faults)), set(faults),
                        lan_host="127.0.0.1", join_delay=0.05, **kw)
        await sim.start_ble()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        with contextlib.suppress(Exception):
            await sim.stop()
