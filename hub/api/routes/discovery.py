"""Discovered devices: list, adopt, ignore.

Listing shows what the hub found on the LAN and over BLE (names, addresses, MACs: admin
only). Adopting hands the device to its integration, which registers it.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.auth.principal import Role
from hub.errors import ValidationError

_FILTERS = {"source": ("mdns", "ble"), "state": ("new", "ignored", "adopted")}


@requires(Role.ADMIN)
async def list_discovered(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    wanted: dict[str, str] = {}
    for name, allowed in _FILTERS.items():
        value = request.query.get(name)
        if value is not None:
            if value not in allowed:
                raise ValidationError(name, f"expected one of: {', '.join(allowed)}")
            wanted[name] = value
    integration = request.query.get("integration")
    items = [
        d for d in hub.discovery.registry
        if all(getattr(d, k) == v for k, v in wanted.items())
        and (integration is None or d.integration == integration)
    ]
    items.sort(key=lambda d: (d.integration, d.name, d.id))
    return json_response({"discovered": [d.to_json() for d in items]})


@requires(Role.ADMIN)
async def get_discovered(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(hub.discovery.registry.get(request.match_info["discovery_id"]).to_json())


@requires(Role.ADMIN)
async def adopt(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    discovery_id = request.match_info["discovery_id"]
    hub.discovery.registry.get(discovery_id)  # 404 before reading the body
    name = area = None
    if request.can_read_body:
        body = await read_json(request)
        reject_unknown(body, {"name", "area"})
        name = field(body, "name", str, required=False)
        area = field(body, "area", str, required=False)
        if area is not None and len(area) > 100:
            raise ValidationError("area", "must be at most 100 characters")
    device = await hub.discovery.adopt(discovery_id, name=name, area=area)
    item = hub.discovery.registry.get(discovery_id)
    return json_response({"discovered": item.to_json(), "device": device.to_json()}, status=201)


@requires(Role.ADMIN)
async def ignore(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    item = await hub.discovery.ignore(request.match_info["discovery_id"])
    return json_response({"discovered": item.to_json()})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/discovered", list_discovered)
    r.add_get("/api/discovered/{discovery_id}", get_discovered)
    r.add_post("/api/discovered/{discovery_id}/adopt", adopt)
    r.add_post("/api/discovered/{discovery_id}/ignore", ignore)
