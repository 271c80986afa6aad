"""`make_app(hub)`: the aiohttp application, built the same way by the daemon and the tests."""

from __future__ import annotations

import importlib

from aiohttp import web

from hub.api import authn, middlewares
from hub.api.keys import HUB_KEY
from hub.hub import Hub

# Route modules under hub.api.routes, each with setup(app). Order only matters for reading.
ROUTE_MODULES: tuple[str, ...] = (
    "health",
    "devices",
    "auth",
    "onboarding",
    "users",
    "tokens",
    "audit",
    "websocket",
    "openapi",
    "wifi",
    "provisioning",
    "matter",
    "discovery",
    "dashboard",
    "automations",
    "privacy",
    "backups",
    "cloud",
    "secrets",
    "homekit",
)


def make_app(hub: Hub) -> web.Application:
    app = web.Application(
        client_max_size=hub.config.api.max_body_bytes,
        middlewares=[middlewares.errors, authn.authenticate],
        handler_args={"max_field_size": 16 * 1024, "max_line_size": 16 * 1024},
    )
    app[HUB_KEY] = hub
    app.on_response_prepare.append(middlewares.add_security_headers)
    for name in ROUTE_MODULES:
        importlib.import_module(f"hub.api.routes.{name}").setup(app)
    return app
