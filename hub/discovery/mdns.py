"""mDNS: one AsyncZeroconf for the hub, browsing what integrations declare, advertising the hub.

Interfaces are names (eth0, wlan0); by default every non-loopback IPv4 interface that is up.
A background check follows interfaces going away and coming back and re-binds zeroconf
(`async_update_interfaces`), so one interface flapping never stops discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from typing import TYPE_CHECKING, Any

from hub.discovery.models import MdnsService
from hub.tasks import BackgroundTasks

if TYPE_CHECKING:
    from hub.discovery.host import DiscoveryHost

_LOG = logging.getLogger(__name__)

HUB_SERVICE_TYPE = "_uone-hub._tcp.local."
MAX_TXT_ENTRIES = 64
IFF_UP = 0x1
IFF_LOOPBACK = 0x8


def interface_addresses(names: list[str] | None) -> dict[str, list[str]]:
    """IPv4 addresses of the named interfaces (or of every non-loopback one that is up).

    Blocking (reads /sys and netlink): call it through asyncio.to_thread."""
    import ifaddr

    out: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        name = adapter.nice_name
        if names is not None and name not in names:
            continue
        flags = _flags(name)
        if flags is not None and not flags & IFF_UP:
            continue
        ips = [str(ip.ip) for ip in adapter.ips if ip.is_IPv4]
        if names is None:
            if flags is not None and flags & IFF_LOOPBACK:
                continue
            ips = [ip for ip in ips if not ip.startswith("127.")]
        if ips:
            out[name] = ips
    return out


def decode_txt(properties: dict[Any, Any]) -> tuple[dict[str, str], int]:
    """TXT entries as lower-case text keys and text values; returns (txt, bad entries)."""
    txt: dict[str, str] = {}
    bad = 0
    for raw_key, raw_value in list(properties.items())[:MAX_TXT_ENTRIES]:
        try:
            key = raw_key.decode("utf-8") if isinstance(raw_key, bytes) else str(raw_key)
            if raw_value is None:
                value = ""
            elif isinstance(raw_value, bytes):
                value = raw_value.decode("utf-8")
            else:
                value = str(raw_value)
        except UnicodeDecodeError:
            bad += 1
            continue
        key = key.strip().lower()
        if not key or not key.isprintable() or not value.isprintable():
            bad += 1
            continue
        txt[key] = value
    bad += max(0, len(properties) - MAX_TXT_ENTRIES)
    return txt, bad


class MdnsDiscovery:
    """The shared AsyncZeroconf, its browser and the hub's own advertisement."""

    def __init__(self, service: DiscoveryHost) -> None:
        self.service = service
        self.config = service.config.mdns
        self.state = "starting"  # starting | running | waiting (no interface) | stopped
        self.reason: str | None = None
        self.interfaces: dict[str, list[str]] = {}
        self.zc: Any = None
        self._browser: Any = None
        self._liveness: Any = None  # SrvLiveness while open
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._tasks = BackgroundTasks(_LOG, logging.WARNING)
        self._hub_info: Any = None
        self._hub_params: tuple[int, str, str | None] | None = None
        self.advertised: str | None = None
        self.opened = 0  # AsyncZeroconf instances opened: after the first, a replacement

    async def start(self) -> None:
        self._tasks.spawn(self._keep_interfaces(), "mdns-interfaces")

    async def stop(self) -> None:
        await self._tasks.stop()
        for task in self._resolving.values():
            task.cancel()
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)
        self._resolving.clear()
        await self._close()
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason,
                "interfaces": sorted(self.interfaces),
                "browsing": self.service.index.mdns_types,
                "advertised": self.advertised}

    def advertise_hub(self, port: int, scheme: str, fingerprint: str | None) -> None:
        if not self.config.advertise:
            return
        self._hub_params = (port, scheme, fingerprint)
        if self.zc is not None:
            self._tasks.spawn(self._register_hub(), "mdns-advertise")

    # internals

    async def _keep_interfaces(self) -> None:
        """Open zeroconf once an interface is there; follow interface changes."""
        while True:
            try:
                current = await asyncio.to_thread(interface_addresses, self.config.interfaces)
            except Exception as exc:
                _LOG.debug("listing interfaces failed: %s", exc)
                current = self.interfaces
            if current != self.interfaces or self.zc is None:
                await self._apply(current)
            await self.service.clock.sleep(self.config.interface_check)

    async def _apply(self, current: dict[str, list[str]]) -> None:
        addresses = sorted({ip for ips in current.values() for ip in ips})
        previous = self.interfaces
        self.interfaces = current
        if not addresses:
            if self.state != "waiting":
                _LOG.warning("mDNS: no usable network interface (%s); waiting for one",
                             ", ".join(self.config.interfaces or ["any non-loopback IPv4"]))
            self.state, self.reason = "waiting", "no usable interface"
            return
        if self.zc is None:
            await self._open(addresses)
            return
        gone = sorted(set(previous) - set(current))
        back = sorted(set(current) - set(previous))
        _LOG.info("mDNS interfaces changed (gone: %s, new: %s)", gone or "-", back or "-")
        try:
            await self.zc.async_update_interfaces(addresses)
        except Exception as exc:
            _LOG.warning("mDNS: re-binding interfaces failed (%s); reopening", exc)
            await self._close()
            await self._open(addresses)
            return
        self.state, self.reason = "running", None
        self.service.addresses_changed()
        if self._hub_info is not None:
            self._tasks.spawn(self._register_hub(), "mdns-advertise")

    async def _open(self, addresses: list[str]) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

        try:
            self.zc = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
        except OSError as exc:
            self.state, self.reason = "waiting", f"cannot open mDNS sockets: {exc}"
            _LOG.warning("mDNS: %s", self.reason)
            self.zc = None
            return
        types = self.service.index.mdns_types
        if types:
            from hub.discovery.mdns_liveness import SrvLiveness

            self._liveness = SrvLiveness(self.zc.zeroconf, self._vanished)
            self.zc.zeroconf.async_add_listener(self._liveness, None)
            self._browser = AsyncServiceBrowser(self.zc.zeroconf, types,
                                                handlers=[self._on_change])
        self.state, self.reason = "running", None
        self.service.zeroconf_opened()
        _LOG.info("mDNS on %s: browsing %s", ", ".join(sorted(self.interfaces)),
                  ", ".join(types) or "nothing")
        self.opened += 1
        if self.opened > 1:  # whoever holds the closed one must take this one
            self.service.zeroconf_replaced()
        if self._hub_params is not None:
            self._tasks.spawn(self._register_hub(), "mdns-advertise")

    async def _close(self) -> None:
        zc, self.zc = self.zc, None
        browser, self._browser = self._browser, None
        liveness, self._liveness = self._liveness, None
        self._hub_info = None
        if liveness is not None and zc is not None:
            liveness.close()
            zc.zeroconf.async_remove_listener(liveness)
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.async_cancel()
        if zc is not None:
            with contextlib.suppress(Exception):
                await zc.async_close()

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any
                   ) -> None:
        from zeroconf import ServiceStateChange

        pending = self._resolving.pop(name, None)
        if pending is not None:
            pending.cancel()
        if state_change is ServiceStateChange.Removed:
            if self._liveness is not None:
                self._liveness.forget(name)
            self.service.handle_mdns(MdnsService(service_type, name, None, (), None, {}),
                                     removed=True)
            return
        task = asyncio.get_running_loop().create_task(
            self._resolve(service_type, name), name=f"mdns-resolve-{name}")
        self._resolving[name] = task
        task.add_done_callback(functools.partial(self._resolved, name))

    def _resolved(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]
        if not task.cancelled() and task.exception() is not None:
            self.service.stats.mdns_malformed += 1
            _LOG.debug("resolving %s failed", name, exc_info=task.exception())

    async def _resolve(self, service_type: str, name: str) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo

        zc = self.zc
        if zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        ok = await info.async_request(zc.zeroconf, int(self.config.resolve_timeout * 1000))
        if not ok:
            self.service.stats.mdns_malformed += 1
            _LOG.debug("mDNS service %s did not resolve", name)
            return
        txt, bad = decode_txt(info.properties or {})
        if bad:
            self.service.stats.mdns_malformed += 1
            _LOG.debug("mDNS service %s: %d malformed TXT entries ignored", name, bad)
        addresses = tuple(sorted(info.parsed_addresses(IPVersion.V4Only)))
        self.service.handle_mdns(MdnsService(
            type=service_type, name=name, host=info.server, addresses=addresses,
            port=info.port, txt=txt))
        if self._liveness is not None:
            self._liveness.track(service_type, name)

    def _vanished(self, service_type: str, name: str) -> None:
        """Its SRV record expired unanswered: gone without a goodbye (hub/discovery/
        mdns_liveness.py)."""
        _LOG.info("mDNS service %s stopped answering: lost", name)
        self.service.handle_mdns(MdnsService(service_type, name, None, (), None, {}),
                                 removed=True)

    async def _register_hub(self) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        from hub import tls

        zc = self.zc
        if zc is None or self._hub_params is None:
            return
        if tls.is_loopback(self.service.api_host):
            if self.advertised != "loopback":
                _LOG.info("not advertising the hub on mDNS: the API listens on loopback only")
            self.advertised = "loopback"
            return
        port, scheme, fingerprint = self._hub_params
        host = socket.gethostname() or "uone-hub"
        name = self.config.hub_name or f"Uone Hub {host}"
        properties = {"version": self.service.version, "scheme": scheme}
        if fingerprint:
            properties["fp"] = fingerprint.replace(":", "").lower()
        addresses = sorted({ip for ips in self.interfaces.values() for ip in ips})
        info = AsyncServiceInfo(
            HUB_SERVICE_TYPE, f"{name}.{HUB_SERVICE_TYPE}", port=port,
            properties=properties, server=f"{_label(host)}.local.",
            addresses=[socket.inet_aton(a) for a in addresses])
        if self._hub_info is not None:
            await (await zc.async_update_service(info))
        else:
            await (await zc.async_register_service(info, allow_name_change=True))
        self._hub_info = info
        self.advertised = info.name
        _LOG.info("advertising the hub as %r on mDNS (port %d)", info.name, port)


def _flags(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/flags") as f:
            return int(f.read().strip(), 16)
    except (OSError, ValueError):
        return None


def _label(host: str) -> str:
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in host.split(".")[0])
    return label.strip("-")[:63] or "uone-hub"

