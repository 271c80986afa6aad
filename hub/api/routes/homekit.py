"""The HomeKit bridge: which devices Apple Home sees, the setup code and URI (the dashboard
draws the URI as a QR code in the page).

Owner only: whoever pairs a phone with the setup code controls every device shown.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import json_response
from hub.api.keys import HUB_KEY
from hub.api.spec import BOOL, INT, STR, array, describe, nullable, obj
from hub.auth.principal import Role

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


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/homekit/bridge", get_bridge)
    r.add_put("/api/homekit/bridge/devices/{device_id}", put_device)
    r.add_delete("/api/homekit/bridge/devices/{device_id}", delete_device)
