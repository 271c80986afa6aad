"""Fixtures for provisioning: a factory PKI, a hub that trusts it, simulated Uone devices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ifaddr
import pytest

from hub.config import load_config
from hub.hub import Hub
from integrations.uone.factory import FactoryPKI
from integrations.uone.simulator import Simulator, make_identity
from tests.conftest import hygiene as _core_hygiene
from tests.conftest import write_config
from tests.doubles.bluez import fake_bluez  # noqa: F401


def only_loopback() -> bool:
    """True inside a private namespace with only `lo` (mDNS must never reach a real LAN)."""
    return all(not a.is_IPv4 or str(a.ip).startswith("127.")
               for ad in ifaddr.get_adapters() for a in ad.ips)


needs_netns = pytest.mark.skipif(
    not only_loopback(),
    reason="mDNS tests run only inside a private network namespace (scripts/test.sh as root)")


@contextlib.asynccontextmanager
async def hygiene() -> AsyncIterator[None]:
    """The suite's loop hygiene, except for bleak's BlueZ manager: bleak keeps one per event
    loop by design (its bus monitor task lives as long as the loop or the bus)."""
    before = set(asyncio.all_tasks())
    async with _core_hygiene():
        try:
            yield
        finally:
            for task in asyncio.all_tasks() - before:
                if "BlueZManager" in getattr(task.get_coro(), "__qualname__", ""):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


@pytest.fixture(scope="session")
def pki() -> FactoryPKI:
    return FactoryPKI.create()


@pytest.fixture
def uone_config(tmp_path: Path, pki: FactoryPKI) -> Callable[..., Any]:
    """Config with the factory root as trust anchor and the uone integration loaded."""

    def make(extra: dict[str, Any] | None = None) -> Any:
        anchor = tmp_path / "factory-root.pem"
        anchor.write_bytes(pki.root_pem())
        base: dict[str, Any] = {
            "provisioning": {"trust_anchors": [str(anchor)], "ble_timeout": 10.0,
                             "lan_timeout": 10.0},
            "integrations": {"uone": {}},
        }
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k] = {**base[k], **v}
            else:
                base[k] = v
        return load_config(write_config(tmp_path, base))

    return make


@pytest.fixture
async def uone_hub(uone_config: Callable[..., Any]) -> AsyncIterator[Hub]:
    async with hygiene():
        async with Hub(uone_config()) as h:
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
