"""Declaring who may call a route: `@requires(Role.ADMIN)` on the handler.

The auth middleware reads the declaration; a route without one is owner-only, so a
forgotten declaration fails closed. `PUBLIC` marks the few routes that need no token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from hub.auth.principal import Principal, Role

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])

# request[PRINCIPAL_KEY] -> the Principal, set by the auth middleware
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
_ATTR = "__uone_min_role__"
PUBLIC = "public"


def requires(role: Role | str) -> Callable[[Handler], Handler]:
    """Mark the least role that may call this handler (or PUBLIC)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ATTR, role)
        return handler

    return mark


def required_role(handler: object) -> Role | str:
    return getattr(handler, _ATTR, Role.OWNER)


def principal(request: web.Request) -> Principal:
    """The authenticated principal of this request (set by the auth middleware)."""
    return request[PRINCIPAL_KEY]
