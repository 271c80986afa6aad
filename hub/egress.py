"""No egress unasked: the one place that decides whether the hub may connect somewhere.

Without the consent of a remote purpose (`cloud_sync`, `remote_access`, `external_broker`), only
loopback, link-local, private (RFC 1918, IPv6 ULA), multicast and unspecified addresses may be
reached; a refusal names the consent that would allow it. Three
doors lead through here:
- `EgressGuard.check_destination(host, purpose)`: resolve and check before connecting;
- `guarded_connector(guard, purpose)` / `open_connection(guard, ...)`: aiohttp and raw asyncio;
- a process audit hook (`install_process_hook`) on `socket.connect`/`socket.sendto`, so a code
  path that forgot the first two (a library, an integration) is refused all the same.
Every refusal is logged (once per destination) and reported to `on_denied` (which audits it).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import logging
import socket
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub.errors import EgressDenied

if TYPE_CHECKING:
    import aiohttp

_LOG = logging.getLogger(__name__)

#: purposes whose consent opens the way to the internet
REMOTE_PURPOSES = frozenset({"cloud_sync", "remote_access", "external_broker"})

# The home network, explicitly (ipaddress' is_private also counts documentation and
# benchmark ranges, which are not the LAN).
_LOCAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "224.0.0.0/4", "0.0.0.0/32", "255.255.255.255/32",
    "::1/128", "::/128", "fc00::/7", "fe80::/10", "ff00::/8",
))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
DeniedHook = Callable[[str, str | None, str], None]  # (address, purpose, where)


def is_local(address: str | Address) -> bool:
    """True for addresses that never leave the home: loopback, link-local, private, multicast."""
    try:
        ip = address if not isinstance(address, str) else ipaddress.ip_address(
            address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _LOCAL_NETS if net.version == ip.version)


def system_resolvers(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    """The name servers glibc will ask (a name lookup is a packet to one of them)."""
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return ()
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return tuple(out)


class EgressGuard:
    """The hub's egress policy; `allowed(purpose)` is the consent ledger's answer."""

    def __init__(self, allowed: Callable[[str], bool], on_denied: DeniedHook | None = None,
                 resolvers: tuple[str, ...] = ()):
        self._allowed = allowed
        self.on_denied = on_denied
        self.resolvers = resolvers  # the owner sets the system's (`system_resolvers`) at start
        self.denied = 0
        self._logged: set[str] = set()
        self._granted: dict[str, str] = {}  # public address -> the purpose it was checked for
        self.active = True

    def remote_allowed(self, purpose: str | None) -> bool:
        """May `purpose` reach the internet? Only a remote purpose with consent may."""
        if purpose is not None:
            return purpose in REMOTE_PURPOSES and self._allowed(purpose)
        return False

    def check_lookup(self, name: str) -> None:
        """A name lookup goes to the system's resolvers: refused when one of them is outside
        the LAN and neither remote purpose has consent (local names never leave)."""
        if not self.active or _local_name(name):
            return
        public = [r for r in self.resolvers if not is_local(r)]
        if not public or any(self.remote_allowed(p) for p in REMOTE_PURPOSES):
            return
        self._deny(public[0], None, f"name lookup of {name}",
                   needs=" or ".join(sorted(REMOTE_PURPOSES)))

    def check_address(self, address: str, purpose: str | None = None, where: str = "") -> None:
        """Raise EgressDenied unless `address` (an IP literal) may be reached for `purpose`."""
        if not self.active or is_local(address) or self.remote_allowed(purpose):
            return
        granted = self._granted.get(address.split("%", 1)[0])
        if granted is not None and self.remote_allowed(granted):
            return  # announced by check_destination for a purpose that still has consent
        self._deny(address, purpose, where)

    async def check_destination(self, host: str, purpose: str | None = None) -> list[str]:
        """Resolve `host` and check every address; return the addresses (all allowed).

        Addresses allowed for a consented remote purpose are remembered for it, so a library
        that connects from its own thread (paho-mqtt, say) passes the process backstop too,
        for as long as that consent holds."""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            addresses = sorted({str(info[4][0]) for info in infos})
        for address in addresses:
            self.check_address(address, purpose, where=host)
        if purpose is not None and self.remote_allowed(purpose):
            for address in addresses:
                if not is_local(address) and len(self._granted) < 256:
                    self._granted[address.split("%", 1)[0]] = purpose
        return addresses

    def _deny(self, address: str, purpose: str | None, where: str,
              needs: str | None = None) -> None:
        """Count, log (once per address), report and raise; the message names the consent
        that would let it through (`needs`, else the purpose's own when it has one)."""
        self.denied += 1
        if needs is None and purpose in REMOTE_PURPOSES:
            needs = purpose
        why = (f"the owner has not given the {needs} consent" if needs else
               "no consent covers it (it was not made for a purpose the owner can consent to)")
        if address not in self._logged and len(self._logged) < 1024:
            self._logged.add(address)
            _LOG.warning(
                "refused a connection to %s%s (purpose %s): %s, only the local network may "
                "be reached", address, f" ({where})" if where and where != address else "",
                purpose or "none", why,
            )
        if self.on_denied is not None:
            try:
                self.on_denied(address, purpose, where)
            except Exception:  # reporting must never turn a refusal into something else
                _LOG.exception("egress refusal hook failed")
        context = f" ({where})" if where and where != address else ""
        raise EgressDenied(
            f"connection to {address}{context} refused: it is outside the local network and "
            f"{why}"
        )


def _local_name(name: str) -> bool:
    """IP literals and names that are answered without asking a DNS server."""
    n = name.rstrip(".").lower()
    if n in ("", "localhost") or n.endswith((".local", ".localhost")):
        return True
    try:
        ipaddress.ip_address(n.split("%", 1)[0])
        return True
    except ValueError:
        return n in _hosts_file_names()


@functools.lru_cache(maxsize=1)
def _hosts_file_names() -> frozenset[str]:
    try:
        text = open("/etc/hosts", encoding="utf-8", errors="replace").read()
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        names.update(p.lower() for p in parts[1:])
    return frozenset(names)


# -- aiohttp and raw asyncio ----------------------------------------------------------------


def guarded_connector(guard: EgressGuard, purpose: str | None = None,
                      **kwargs: Any) -> aiohttp.TCPConnector:
    """An aiohttp TCPConnector whose resolver refuses destinations the policy forbids."""
    import aiohttp
    from aiohttp.abc import ResolveResult
    from aiohttp.resolver import ThreadedResolver

    class _GuardedResolver(ThreadedResolver):  # getaddrinfo, aiohttp's default without aiodns
        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET
                          ) -> list[ResolveResult]:
            # check the literal first: a public IP is refused without any lookup
            try:
                ipaddress.ip_address(host)
                guard.check_address(host, purpose, where=host)
            except ValueError:
                pass
            infos = await super().resolve(host, port, family)
            for info in infos:
                guard.check_address(info["host"], purpose, where=host)
            return infos

    return aiohttp.TCPConnector(resolver=_GuardedResolver(), **kwargs)


async def open_connection(guard: EgressGuard, host: str, port: int, *,
                          purpose: str | None = None, **kwargs: Any):
    """`asyncio.open_connection` to the first allowed address of `host`."""
    addresses = await guard.check_destination(host, purpose)
    return await asyncio.open_connection(addresses[0], port, **kwargs)


# -- the process-wide backstop -------------------------------------------------------------

_GUARDS: weakref.WeakSet[EgressGuard] = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()
_HOOK_INSTALLED = False
_AUDITED = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg",
                      "socket.getaddrinfo"})
_PURPOSE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "uone_egress_purpose", default=None
)


def install_process_hook(guard: EgressGuard) -> Callable[[], None]:
    """Make `guard` also refuse raw socket connects in this process; returns its removal.

    Audit hooks cannot be removed, so one hook serves every registered guard (a test process
    may run several hubs); a connect is refused when any active guard refuses it.
    """
    global _HOOK_INSTALLED
    with _HOOK_LOCK:
        if not _HOOK_INSTALLED:
            sys.addaudithook(_audit_hook)
            _HOOK_INSTALLED = True
        _GUARDS.add(guard)
    return lambda: _GUARDS.discard(guard)


class remote_purpose:
    """`with remote_purpose("cloud_sync"):` the code (and tasks it starts) works for that
    purpose, so its raw connects may use that purpose's consent (and only while it is given)."""

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose
        self._token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = _PURPOSE.set(self.purpose)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _PURPOSE.reset(self._token)


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _AUDITED or not _GUARDS:
        return
    if event == "socket.getaddrinfo":
        name = args[0]
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        if isinstance(name, str) and name:
            for guard in list(_GUARDS):
                guard.check_lookup(name)
        return
    sock, address = args[0], args[1]
    try:
        family = sock.family
    except Exception:
        return
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return
    host = str(address[0])
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        hosts = [host]
    except ValueError:
        # a name: CPython would resolve it inside connect(), unseen; resolve it here instead
        try:
            hosts = sorted({str(i[4][0]) for i in socket.getaddrinfo(host, address[1])})
        except OSError:
            return  # it cannot be resolved, so it cannot be connected to either
    purpose = _PURPOSE.get()
    for guard in list(_GUARDS):
        for ip in hosts:
            guard.check_address(ip, purpose, where=f"{event} {host}")
