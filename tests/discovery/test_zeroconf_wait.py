"""`ctx.zeroconf(within)` (the hub's one AsyncZeroconf for aiohomekit and aioesphomeapi)
waits for mDNS to start: woken the moment it opens its sockets, and giving up after `within`
seconds of the hub's injected clock (before: a 0.1 s poll on the loop's real time)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hub.clock import ManualClock
from hub.config import LoadedConfig
from hub.hub import Hub
from tests.discovery import netns

HANG_GUARD = 30.0  # seconds: only so that a regression fails instead of hanging


async def test_no_mdns_within_the_wait_gives_none_on_the_injected_clock(
        config_factory: Callable[..., LoadedConfig]) -> None:
    clock = ManualClock()
    config = config_factory({"discovery": {
        "mdns": {"enabled": True, "advertise": False, "interfaces": ["uone-none0"]},
        "ble": {"enabled": False}}})
    async with Hub(config, clock=clock) as hub:
        waiting = asyncio.create_task(hub.discovery.zeroconf(within=5.0))
        await clock.advance(4.9)
        assert not waiting.done()  # no interface, so no zeroconf yet: still waiting
        await clock.advance(0.2)
        assert waiting.done()  # before: still polling, 5 s of real time to go
        assert waiting.result() is None


@pytest.mark.skipif(netns.unavailable() is not None,
                    reason=f"mDNS namespace tests: {netns.unavailable()}")
async def test_the_wait_ends_when_mdns_opens_without_the_clock_moving(
        config_factory: Callable[..., LoadedConfig]) -> None:
    clock = ManualClock()
    async with netns.veth_lan() as lan:
        config = config_factory({"discovery": {
            "mdns": {"enabled": True, "advertise": False, "interfaces": [lan.hub_if]},
            "ble": {"enabled": False}}})
        async with Hub(config, clock=clock) as hub:
            zc = await asyncio.wait_for(hub.discovery.zeroconf(within=120.0), HANG_GUARD)
            assert zc is not None and zc is hub.discovery.mdns.zc
