"""Serving the API: HTTPS on the LAN by default, plain HTTP only on loopback or when asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

from aiohttp import web

from hub import tls
from hub.api.app import make_app
from hub.api.connections import AddressLimit, ProtocolLog
from hub.hub import Hub

_LOG = logging.getLogger(__name__)

# Seconds between checks that the self-signed certificate still names every address the API
# serves on (a DHCP lease or a new interface adds one).
ADDRESS_CHECK = 60.0


class ApiServer:
    """The API listener as an async context manager; stops accepting, then drains."""

    def __init__(self, hub: Hub, shutdown_timeout: float = 5.0) -> None:
        self.hub = hub
        self.app = make_app(hub)
        self.shutdown_timeout = shutdown_timeout
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.scheme = "http"
        self.fingerprint: str | None = None
        self._ssl: ssl.SSLContext | None = None  # the current one, for new handshakes
        self._watch: asyncio.Task[None] | None = None
        self.address_limit: AddressLimit | None = None
        self._listener: asyncio.Server | None = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.hub.config.api
        ssl_ctx = await asyncio.to_thread(self._ssl_context)
        self.runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.shutdown_timeout,
            handle_signals=False, keepalive_timeout=cfg.idle_timeout,
            logger=ProtocolLog(logging.getLogger("aiohttp.server")),
        )
        await self.runner.setup()
        assert self.runner.server is not None
        # our own listener rather than web.TCPSite: its protocol factory counts connections
        # per address before aiohttp's handler sees them
        self.address_limit = AddressLimit(self.runner.server, cfg.max_connections_per_address)
        # (a TLS handshake that never finishes holds a descriptor too: the idle timeout)
        self._listener = await asyncio.get_running_loop().create_server(
            self.address_limit, cfg.host, cfg.port, ssl=ssl_ctx, reuse_address=True,
            ssl_handshake_timeout=cfg.idle_timeout if ssl_ctx else None)
        sockets = self._listener.sockets
        self.port = sockets[0].getsockname()[1] if sockets else cfg.port
        _LOG.info("API listening on %s://%s:%s", self.scheme, cfg.host, self.port)
        if self._ssl is not None and not cfg.tls_cert:
            self._watch = asyncio.create_task(self._watch_addresses(), name="tls-addresses")

    async def refresh_certificate(self) -> bool:
        """Re-issue the self-signed certificate if the serving addresses changed (same key);
        new connections get it at once, open ones keep theirs. True if it changed."""
        if self._ssl is None or self.hub.config.api.tls_cert:
            return False
        fresh = await asyncio.to_thread(self._self_signed)
        if fresh is None:
            return False
        self._ssl, self.fingerprint = fresh
        self.hub.discovery.api_ready(self.port or 0, self.scheme, self.fingerprint)
        return True

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._listener is not None:  # stop accepting first; the runner then drains
            self._listener.close()
            self._listener = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        cfg = self.hub.config.api
        if tls.is_loopback(cfg.host) and not cfg.tls_cert:
            return None
        if cfg.insecure_http:
            _LOG.warning(
                "insecure_http is on: the API on %s serves plain HTTP; passwords and tokens "
                "cross the LAN readable by anyone on it", cfg.host,
            )
            return None
        self.scheme = "https"
        if cfg.tls_cert and cfg.tls_key:
            cert = Path(cfg.tls_cert)
            self._ssl = tls.server_context(cert, Path(cfg.tls_key))
            self.fingerprint = tls.fingerprint(cert)
            _LOG.info("TLS certificate SHA-256 fingerprint: %s", self.fingerprint)
            return self._ssl
        fresh = self._self_signed()
        assert fresh is not None
        self._ssl, self.fingerprint = fresh
        # The listener's context hands each handshake the current one (SNI callback), so
        # a renewed certificate is served without restarting the listener.
        state = self.hub.state_dir
        front = tls.server_context(state / tls.CERT_FILE, state / tls.KEY_FILE)
        front.sni_callback = self._pick_context
        return front

    def _pick_context(self, sock: ssl.SSLObject, _name: str | None,
                      _ctx: ssl.SSLContext) -> None:
        if self._ssl is not None:
            sock.context = self._ssl

    def _self_signed(self) -> tuple[ssl.SSLContext, str] | None:
        """A context for the self-signed certificate naming today's serving addresses, or
        None when the current one already does. Blocking."""
        host = self.hub.config.api.host
        cert, key = tls.ensure_self_signed(self.hub.state_dir,
                                           addresses=tls.serving_addresses(host))
        fingerprint = tls.fingerprint(cert)
        if fingerprint == self.fingerprint:
            return None
        _LOG.info("TLS certificate for %s: SHA-256 fingerprint %s, public key %s",
                  ", ".join(tls.serving_addresses(host)) or host, fingerprint,
                  tls.spki_pin(cert))
        return tls.server_context(cert, key), fingerprint

    async def _watch_addresses(self) -> None:
        while True:
            await self.hub.clock.sleep(ADDRESS_CHECK)  # the injected clock: tests move it
            try:
                await self.refresh_certificate()
            except (OSError, ValueError, ssl.SSLError) as exc:
                _LOG.warning("TLS certificate renewal failed: %s", exc)
