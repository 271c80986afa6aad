"""What one client may hold open, and what aiohttp logs about clients that speak badly.

aiohttp keeps an idle keep-alive connection for an hour by default and has no limit per
client: a few dozen idle or slow connections from one address can use up the process's file
descriptors and lock everyone else out. The listener therefore closes idle connections after
`api.idle_timeout` (aiohttp's keep-alive timer also runs before the first request, so a
client that never finishes its headers is closed too), bounds the body read
(`api.body_timeout`, in hub.api.jsonio), and refuses connections beyond
`api.max_connections_per_address` from one address while other addresses get through.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

_LOG = logging.getLogger(__name__)

_REFUSED_BODY = (b'{"error":{"code":"too_many_connections",'
                 b'"message":"too many connections from this address"}}')
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_REFUSED_BODY)
           + _REFUSED_BODY)
REFUSED_LINGER = 2.0  # seconds a refused client has to read its 503 before the close
MAX_LINGERING = 16  # refused connections waiting so at once; beyond, they are reset at once
_REMEMBERED = 256  # addresses whose refusal was logged (keys come from the network: bounded)


class AddressLimit:
    """At most `limit` open connections per peer address. The listener's protocol factory:
    each accepted connection is handed to aiohttp's request handler, or, beyond the limit,
    answered 503 and closed without aiohttp seeing it."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.open: dict[str, int] = {}
        self.lingering = 0  # refused connections still open to let the 503 be read
        self._logged: OrderedDict[str, None] = OrderedDict()

    def __call__(self) -> asyncio.Protocol:
        return _Gate(self)

    def admit(self, address: str) -> bool:
        count = self.open.get(address, 0)
        if count >= self.limit:
            if address not in self._logged:
                self._logged[address] = None
                if len(self._logged) > _REMEMBERED:
                    self._logged.popitem(last=False)
                _LOG.warning("%s holds %d connections, the most one address may; refusing "
                             "more until some close (api.max_connections_per_address)",
                             address, self.limit)
            return False
        self.open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        left = self.open[address] - 1
        if left:
            self.open[address] = left
        else:
            del self.open[address]
            self._logged.pop(address, None)  # a later flood is news again


class _Gate(asyncio.Protocol):
    """One connection: passes everything to aiohttp's handler once admitted; a refused one
    gets the 503, its data is discarded (closing with unread data would reset the
    connection and lose the answer) and it is closed after its end or REFUSED_LINGER. In a
    flood (MAX_LINGERING refused ones already waiting) a refused one is reset at once."""

    __slots__ = ("_address", "_handler", "_limit", "_linger", "_transport")

    def __init__(self, limit: AddressLimit) -> None:
        self._limit = limit
        self._handler: asyncio.Protocol | None = None
        self._address: str | None = None
        self._transport: Any = None
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # (uvloop's are not asyncio's)
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        if address is None or self._limit.admit(address):
            self._address = address
            self._handler = self._limit.server()
            self._handler.connection_made(transport)
            return
        if self._limit.lingering >= MAX_LINGERING:  # a flood: no descriptor is kept for it
            transport.abort()
            return
        self._limit.lingering += 1
        self._transport = transport
        transport.write(REFUSED)
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = asyncio.get_running_loop().call_later(REFUSED_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            return self._handler.eof_received()
        if self._transport is not None:
            self._transport.close()
        return None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:  # closed before its linger ran out
            self._linger.cancel()
            self._linger = None
        if self._transport is not None:
            self._transport = None
            self._limit.lingering -= 1
        if self._handler is not None:
            if self._address is not None:
                self._limit.release(self._address)
            self._handler.connection_lost(exc)
            self._handler = None


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, minus the tracebacks for clients that send malformed HTTP.

    aiohttp logs every unparsable request (bad request line, header, chunk...) with
    `logger.exception`, an ERROR with a traceback, though it is the client's fault and
    answered with a 400. Here each kind is logged once at INFO without a traceback, later
    ones at DEBUG; anything else passes through unchanged.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._seen: set[str] = set()  # error class names: a small, fixed set

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            kind = type(exc_info).__name__
            level = logging.DEBUG if kind in self._seen else logging.INFO
            self._seen.add(kind)
            self.log(level, f"{msg} (%s: %s; later ones of this kind at debug level)",
                     *args, kind, _short(exc_info))
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _address(transport: asyncio.Transport) -> str | None:
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) and peer else None


def _short(exc: HttpProcessingError) -> str:
    text = str(getattr(exc, "message", "") or exc).splitlines()
    return text[0][:200] if text else ""
