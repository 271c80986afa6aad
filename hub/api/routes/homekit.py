"""The HomeKit bridge: which devices Apple Home sees, the setup code and its QR code.

Owner only: whoever pairs a phone with the setup code controls every device shown.
"""

from __future__ import annotations

import asyncio
import io

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import json_response
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, BOOL, INT, STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.errors import Conflict

EXPOSED_SCHEMA = obj(
    ["device_id", "aid", "source", "shown"], device_id=STR, name=nullable(STR), aid=INT,
    source={"enum": ["config", "api"]}, shown=BOOL, problem=nullable(STR),
    characteristics=array(STR))
BRIDGE_SCHEMA = obj(
    ["enabled", "state", "devices"], extra=True, enabled=BOOL, state=STR, error=nullable(STR),
    name=STR, port=INT, paired=BOOL, accessory_id=nullable(STR), setup_code=nullable(STR),
    setup_uri=nullable(STR), devices=array(EXPOSED_SCHEMA), phone_writes=INT)


@requires(Role.OWNER)
@describe("The HomeKit bridge: state, setup code and URI, devices shown", tags=("homekit",),
          response=BRIDGE_SCHEMA)
async def get_bridge(request: web.Request) -> web.Response:
    return json_response(request.app[HUB_KEY].homekit.status())


@requires(Role.OWNER)
@describe("The setup QR code (SVG) a phone scans to add the bridge", tags=("homekit",),
          errors=(409,), response=ANY,
          description="image/svg+xml; 409 while the bridge is off (no identity yet).")
async def get_qr(request: web.Request) -> web.Response:
    uri = request.app[HUB_KEY].homekit.setup_uri()
    if uri is None:
        raise Conflict("the HomeKit bridge is off or not started yet")
    svg = await asyncio.to_thread(_qr_svg, uri)
    return web.Response(body=svg, content_type="image/svg+xml")


@requires(Role.OWNER)
@describe("Show a device in Apple Home", tags=("homekit",), errors=(404, 409),
          response=EXPOSED_SCHEMA)
async def put_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device_id = request.match_info["device_id"]
    shown = await hub.homekit.expose(device_id)
    await hub.audit.record(principal(request).user_id, "homekit.expose", device_id)
    return json_response(shown)


@requires(Role.OWNER)
@describe("Stop showing a device in Apple Home (its accessory is removed)",
          tags=("homekit",), status=204, errors=(404, 409))
async def delete_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device_id = request.match_info["device_id"]
    await hub.homekit.unexpose(device_id)
    await hub.audit.record(principal(request).user_id, "homekit.unexpose", device_id)
    return web.Response(status=204)


def _qr_svg(uri: str) -> bytes:
    import segno  # pure Python, imported only when the QR code is asked for

    buf = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buf, kind="svg", scale=6, border=2,
                                                  xmldecl=False, svgns=True)
    return buf.getvalue()


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/homekit/bridge", get_bridge)
    r.add_get("/api/homekit/bridge/qr.svg", get_qr)
    r.add_put("/api/homekit/bridge/devices/{device_id}", put_device)
    r.add_delete("/api/homekit/bridge/devices/{device_id}", delete_device)
