"""Discovered devices: list, adopt, ignore.

Listing shows what the hub found on the LAN and over BLE (names, addresses, MACs: admin
only). Adopting hands the device to its integration, which registers it.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, BOOL, INT, STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.errors import ValidationError

_FILTERS = {"source": ("mdns", "ble", "mqtt"), "state": ("new", "ignored", "adopted")}
DISCOVERED_SCHEMA = obj(
    ["id", "source", "integration", "name", "state", "present"], extra=True,
    id=STR, source={"enum": ["mdns", "ble", "mqtt"]}, integration=STR, integrations=array(STR),
    name=STR, addresses=array(STR), port=nullable(INT), mac=nullable(STR),
    did=nullable(STR), model=nullable(STR), fw=nullable(STR), rssi=nullable(INT),
    service_type=nullable(STR), host=nullable(STR), txt={"type": "object"},
    data={"type": "object"}, first_seen={"type": "number"}, last_seen={"type": "number"},
    present=BOOL, state={"enum": ["new", "ignored", "adopted"]}, device_id=nullable(STR),
    ble_source=nullable(STR),
)
ADOPT_BODY = obj(name={"type": "string", "minLength": 1, "maxLength": 100},
                 area={"type": "string", "maxLength": 100},
                 credentials={"type": "object", "additionalProperties": STR,
                              "description": "Secrets the device needs (an ESPHome "
                              "encryption key...): kept in the vault, never shown again"})


@requires(Role.ADMIN)
@describe("Devices found on the LAN (mDNS) and over BLE", tags=("discovery",),
          query={"source": {"enum": list(_FILTERS["source"])},
                 "state": {"enum": list(_FILTERS["state"])},
                 "integration": {"type": "string"}},
          response=obj(["discovered"], discovered=array(DISCOVERED_SCHEMA)))
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
@describe("One discovered device", tags=("discovery",), errors=(404,),
          response=DISCOVERED_SCHEMA)
async def get_discovered(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(hub.discovery.registry.get(request.match_info["discovery_id"]).to_json())


@requires(Role.ADMIN)
@describe("Adopt a discovered device: its integration registers it", tags=("discovery",),
          body=ADOPT_BODY, body_required=False, status=201, errors=(404, 409, 503),
          response=obj(["discovered", "device"], discovered=DISCOVERED_SCHEMA, device=ANY))
async def adopt(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    discovery_id = request.match_info["discovery_id"]
    hub.discovery.registry.get(discovery_id)  # 404 before reading the body
    name = area = credentials = None
    if request.can_read_body:
        body = await read_json(request)
        reject_unknown(body, {"name", "area", "credentials"})
        name = field(body, "name", str, required=False)
        area = field(body, "area", str, required=False)
        if area is not None and len(area) > 100:
            raise ValidationError("area", "must be at most 100 characters")
        credentials = field(body, "credentials", dict, required=False)
    device = await hub.discovery.adopt(discovery_id, name=name, area=area,
                                       credentials=credentials)
    item = hub.discovery.registry.get(discovery_id)
    return json_response({"discovered": item.to_json(), "device": device.to_json()}, status=201)


@requires(Role.ADMIN)
@describe("Ignore a discovered device (it is no longer offered for adoption)",
          tags=("discovery",), errors=(404, 409),
          response=obj(["discovered"], discovered=DISCOVERED_SCHEMA))
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
