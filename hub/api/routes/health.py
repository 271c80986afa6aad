"""GET /api/health: the one route without auth; status, version, uptime, no personal data."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import PUBLIC, requires
from hub.api.jsonio import json_response
from hub.api.keys import HUB_KEY
from hub.api.spec import describe


@requires(PUBLIC)
@describe("Status, version and uptime (no personal data)", tags=("meta",),
          response={"type": "object", "required": ["status", "version", "uptime"],
                    "properties": {
                        "status": {"enum": ["ok", "degraded"]},
                        "problems": {"type": "array", "items": {"type": "string"},
                                     "description": "Why it is degraded (only then): an "
                                     "integration not loaded, 'disk full: ...'"}}})
async def health(request: web.Request) -> web.Response:
    return json_response(await request.app[HUB_KEY].health())


def setup(app: web.Application) -> None:
    app.router.add_get("/api/health", health, name="health")
