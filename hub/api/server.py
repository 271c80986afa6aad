"""Serving the API: HTTPS on the LAN by default, plain HTTP only on loopback or when asked."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from hub import tls
from hub.api.app import make_app
from hub.hub import Hub

_LOG = logging.getLogger(__name__)


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
            handle_signals=False,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.host, cfg.port, ssl_context=ssl_ctx,
                           reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.port
        _LOG.info("API listening on %s://%s:%s", self.scheme, cfg.host, self.port)

    async def stop(self) -> None:
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
        if cfg.tls_cert and cfg.tls_key:
            cert, key = Path(cfg.tls_cert), Path(cfg.tls_key)
        else:
            cert, key = tls.ensure_self_signed(self.hub.state_dir)
        self.scheme = "https"
        self.fingerprint = tls.fingerprint(cert)
        _LOG.info("TLS certificate SHA-256 fingerprint: %s", self.fingerprint)
        return tls.server_context(cert, key)
