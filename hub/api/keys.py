"""Typed application keys (no string keys into the app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from hub.hub import Hub

HUB_KEY: web.AppKey[Hub] = web.AppKey("hub")
