"""HomeKit fixtures: a veth LAN, HAP-python accessories in the device namespace, a hub with
the HomeKit controller browsing the hub's side of the veth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.dashboard.conftest import browser  # noqa: F401 - fixture of test_dashboard.py
from tests.discovery import netns
from tests.discovery.conftest import hub  # noqa: F401 - a Hub built from our hub_config
from tests.discovery.netns import ROOT

PIN = "031-45-154"


class Accessory(netns.MdnsDevice):
    """A HAP-python accessory process (tests/homekit/hap_accessory.py): JSON lines both ways."""

    def __init__(self, proc: asyncio.subprocess.Process, hap_id: str) -> None:
        super().__init__(proc)
        self.hap_id = hap_id.lower()


@contextlib.asynccontextmanager
async def accessory(ns: str | None, address: str, kind: str, port: int, *flags: str,
                    statedir: str | None = None) -> AsyncIterator[Accessory]:
    """The accessory process, in namespace `ns` (or ours: then on loopback only)."""
    with contextlib.ExitStack() as stack:
        if statedir is None:
            statedir = stack.enter_context(tempfile.TemporaryDirectory())
        argv = [sys.executable, "-m", "tests.homekit.hap_accessory",
                kind, address, str(port), PIN, statedir, *flags]
        if ns is not None:
            argv = ["ip", "netns", "exec", ns, *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), 30)
            if not ready:
                raise RuntimeError("accessory process did not start")
            yield Accessory(proc, json.loads(ready)["id"])
        finally:
            if proc.returncode is None:
                with contextlib.suppress(Exception):
                    await Accessory(proc, "").send(op="exit")
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    async with netns.veth_lan() as lan:
        yield lan


@pytest.fixture
def hub_config(lan: netns.Lan) -> dict[str, Any]:
    return {
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if],
                               "interface_check": 0.2}},
        "integrations": {"virtual": {"devices": []}, "homekit_controller": {}},
    }


@contextlib.asynccontextmanager
async def phone(address: str) -> AsyncIterator[Any]:
    """aiohomekit as the phone's home app, with its own zeroconf on the hub's LAN."""
    from aiohomekit import Controller
    from aiohomekit.zeroconf import HAP_TYPE_TCP, HAP_TYPE_UDP
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    azc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    browsers = [AsyncServiceBrowser(azc.zeroconf, [t], handlers=[lambda **kw: None])
                for t in (HAP_TYPE_TCP, HAP_TYPE_UDP)]
    controller = Controller(async_zeroconf_instance=azc)
    await controller.async_start()
    try:
        yield controller
    finally:
        await controller.async_stop()
        for b in browsers:
            await b.async_cancel()
        await azc.async_close()
