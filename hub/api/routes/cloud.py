"""Cloud sync: status and pairing codes. Owner-only: cloud settings are the owner's."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.auth.principal import Role


@requires(Role.OWNER)
async def get_status(request: web.Request) -> web.Response:
    """Connected or not, outbox depth, last delivery, last error (no keys, no password)."""
    return json_response(request.app[HUB_KEY].cloud.status())


@requires(Role.OWNER)
async def post_pairing(request: web.Request) -> web.Response:
    """A pairing code for another device of the owner's: it carries the sync key (and, for a
    remote client, its command key), so it is shown once and never logged."""
    body = await read_json(request)
    reject_unknown(body, {"client"})
    client = field(body, "client", str, required=False)
    code = await request.app[HUB_KEY].cloud.pairing_code(client)
    return json_response({"pairing_code": code, "client": client})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/cloud/status", get_status)
    app.router.add_post("/api/cloud/pairing", post_pairing)
