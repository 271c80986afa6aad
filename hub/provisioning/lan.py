"""Waiting for a freshly provisioned device to show up on the LAN (mDNS).

The hub's shared mDNS browser (discovery) lists it; the job waits for that entry. Only when
mDNS discovery is switched off does the job browse by itself, for the one service type, for
as long as it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from hub.errors import HubError

MDNS_TYPE = "_uone._tcp.local."


class LanTimeout(HubError):
    code = "lan_timeout"


@dataclass(frozen=True, slots=True)
class LanEndpoint:
    """Where a device's local API is, and what it says in its TXT record."""

    host: str
    port: int
    txt: dict[str, str] = field(default_factory=dict)

    @property
    def did(self) -> str | None:
        return self.txt.get("did")

    @property
    def mac(self) -> str | None:
        return self.txt.get("mac")


def interface_addresses(names: list[str] | None) -> list[str]:
    """IPv4 addresses to browse on: those of `names`, else every non-loopback one, else lo."""
    import ifaddr

    found: list[str] = []
    loopback: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            addr = str(ip.ip)
            if names is not None:
                if adapter.nice_name in names or adapter.name in names:
                    found.append(addr)
            elif addr.startswith("127."):
                loopback.append(addr)
            else:
                found.append(addr)
    return found or loopback


async def wait_for_lan(discovery: Any, bus: Any, did: str, timeout: float) -> LanEndpoint:
    """The local API of `did` once `discovery` (the DiscoveryService) sees it on mDNS;
    LanTimeout otherwise."""
    from hub.discovery.models import DeviceDiscovered, DiscoveryChanged

    cfg = discovery.config.mdns
    if not cfg.enabled:
        return await wait_for_device(did, timeout, cfg.interfaces)

    def endpoint() -> LanEndpoint | None:
        for item in discovery.registry:
            if (item.source == "mdns" and item.did == did and item.present and item.addresses
                    and item.port):
                return LanEndpoint(item.addresses[0], item.port, dict(item.txt))
        return None

    sub = bus.listen([DeviceDiscovered, DiscoveryChanged], maxsize=256,
                         name=f"provisioning-wait-{did}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while (found := endpoint()) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LanTimeout(f"the device did not appear on the LAN (mDNS {MDNS_TYPE}) "
                                 f"within {timeout:.0f} s; is the Wi-Fi network reachable "
                                 "from the hub?")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.get(), remaining)
        return found
    finally:
        sub.close()


async def wait_for_device(did: str, timeout: float, interfaces: list[str] | None = None
                          ) -> LanEndpoint:
    """The local API of the Uone device `did`, once it is announced; LanTimeout otherwise."""
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    loop = asyncio.get_running_loop()
    found: asyncio.Future[LanEndpoint] = loop.create_future()
    zc = AsyncZeroconf(ip_version=IPVersion.V4Only,
                       interfaces=interface_addresses(interfaces))
    tasks: set[asyncio.Task[Any]] = set()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(MDNS_TYPE, name)
        if not await info.async_request(zc.zeroconf, 3000):
            return
        txt = {_text(k): _text(v) for k, v in (info.properties or {}).items() if k}
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if txt.get("did") == did and addresses and info.port and not found.done():
            found.set_result(LanEndpoint(addresses[0], info.port, txt))

    def on_change(zeroconf: Any, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = loop.create_task(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(zc.zeroconf, [MDNS_TYPE], handlers=[on_change])
    try:
        return await asyncio.wait_for(asyncio.shield(found), timeout)
    except TimeoutError:
        raise LanTimeout(f"the device did not appear on the LAN (mDNS {MDNS_TYPE}) within "
                         f"{timeout:.0f} s; is the Wi-Fi network reachable from the hub?"
                         ) from None
    finally:
        await browser.async_cancel()
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await zc.async_close()
        if not found.done():
            found.cancel()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
