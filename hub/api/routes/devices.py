"""Devices: list, read, rename/move/scope, remove, state, commands, history."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.auth.principal import Role
from hub.devices import Device, PrivacyScope
from hub.errors import ValidationError
from hub.hub import Hub


def device_json(hub: Hub, device: Device) -> dict[str, Any]:
    out = device.to_json()
    out["available"] = hub.states.available(device.id)
    out["connectivity"] = hub.discovery.connectivity.to_json(device.id)
    return out


@requires(Role.GUEST)
async def list_devices(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    area = request.query.get("area")
    devices = [d for d in hub.devices.all() if area is None or d.area == area]
    return json_response({"devices": [device_json(hub, d) for d in devices]})


@requires(Role.GUEST)
async def get_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(device_json(hub, hub.devices.get(request.match_info["device_id"])))


@requires(Role.ADMIN)
async def patch_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = hub.devices.get(request.match_info["device_id"])
    body = await read_json(request)
    reject_unknown(body, {"name", "area", "scope"})
    changes: dict[str, Any] = {}
    if "name" in body:
        name = field(body, "name", str)
        if not name.strip() or len(name) > 100:
            raise ValidationError("name", "must be 1-100 characters")
        changes["name"] = name.strip()
    if "area" in body:
        area = body["area"]
        if area is not None and (not isinstance(area, str) or len(area) > 100):
            raise ValidationError("area", "expected a string of at most 100 characters or null")
        changes["area"] = area
    if "scope" in body:
        changes["scope"] = PrivacyScope.from_json(body["scope"])
    if changes:
        device = await hub.devices.update(device.id, **changes)
    return json_response(device_json(hub, device))


@requires(Role.ADMIN)
async def delete_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = await hub.devices.remove(request.match_info["device_id"])
    hub.states.forget(device.id)
    await hub.db.flush()
    return web.Response(status=204)


@requires(Role.GUEST)
async def get_state(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = hub.devices.get(request.match_info["device_id"])
    state = {k: v.to_json() for k, v in hub.states.get(device.id).items()}
    return json_response({"device_id": device.id, "available": hub.states.available(device.id),
                          "attributes": state})


@requires(Role.GUEST)
async def post_command(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = hub.devices.get(request.match_info["device_id"])
    body = await read_json(request)
    reject_unknown(body, {"command", "params"})
    command = field(body, "command", str)
    params = field(body, "params", dict, required=False, default={})
    result = await hub.integrations.command(device.id, command, params)
    return json_response({"device_id": device.id, "command": command, "result": result})


@requires(Role.GUEST)
async def get_history(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = hub.devices.get(request.match_info["device_id"])
    since = _query_float(request, "since")
    until = _query_float(request, "until")
    limit = _query_float(request, "limit")
    await hub.db.flush()  # what was recorded before the request is visible in its answer
    rows = await hub.states.history(device.id, since, until,
                                    int(limit) if limit is not None else 10_000)
    return json_response({"device_id": device.id, "history": rows})


def _query_float(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, "expected a number (seconds since the epoch)") from None
    if not math.isfinite(value) or value < 0:
        raise ValidationError(name, "expected a finite, non-negative number")
    return value


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/devices", list_devices)
    r.add_get("/api/devices/{device_id}", get_device)
    r.add_patch("/api/devices/{device_id}", patch_device)
    r.add_delete("/api/devices/{device_id}", delete_device)
    r.add_get("/api/devices/{device_id}/state", get_state)
    r.add_post("/api/devices/{device_id}/commands", post_command)
    r.add_get("/api/devices/{device_id}/history", get_history)
