"""Devices: list, read, rename/move/scope, remove, state, commands, history.

Guests see and command only the devices or areas they were granted; to them any other
device does not exist (404). The device list is served from pre-serialized JSON that is
invalidated per device by registry and availability events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import dumps, field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes._query import query_int, query_time
from hub.api.spec import ANY, BOOL, NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.bus import AvailabilityChanged, DeviceRegistryChanged
from hub.commands import COMMAND_FIELDS, COMMAND_ROLE, command_fields
from hub.devices import Device, PrivacyScope
from hub.errors import ValidationError
from hub.fastjson import dumpb
from hub.hub import Hub

NAMES_OR_NULL = {"type": ["array", "null"], "items": STR}
SCOPE_SCHEMA = {"type": ["object", "null"],
                "properties": {"attributes": NAMES_OR_NULL, "events": NAMES_OR_NULL},
                "additionalProperties": False}
ATTRIBUTE_META_SCHEMA = {
    "type": "object", "description": "Per attribute, what its values mean (only what is "
    "known; absent fields are left out)",
    "additionalProperties": obj(unit=STR, device_class=STR, min=NUM, max=NUM, step=NUM,
                                state_class=STR, options=array(STR)),
}
DEVICE_SCHEMA = obj(
    ["id", "name", "integration"], extra=True,
    id=STR, name=STR, integration=STR, area=nullable(STR), available=nullable(BOOL),
    scope=SCOPE_SCHEMA, commands=array(ANY), attributes=array(STR), events=array(STR),
    attribute_meta=ATTRIBUTE_META_SCHEMA,
    problems={"type": "object", "additionalProperties": STR,
              "description": "parts of the device failing, and why (absent when none)"},
)
ID_ERRORS = (404,)


def device_json(hub: Hub, device: Device, *, reception: bool = True) -> dict[str, Any]:
    """A device as the API shows it. `reception`: for a device heard over BLE, which source
    hears it best and how well (`connectivity.ble_source`, `connectivity.rssi`); it moves
    with every advertisement, so the (cached) list leaves it out."""
    out = device.to_json()
    out["available"] = hub.states.available(device.id)
    out["connectivity"] = hub.discovery.connectivity.to_json(device.id)
    heard = hub.discovery.ble_reception(device.id) if reception else None
    if heard is not None:
        out["connectivity"] = {**(out["connectivity"] or {}), **heard}
    questions = hub.integrations.confirmations.of(device.id)
    if questions:  # open questions to the owner (e.g. a BTHome counter that went back)
        out["confirmations"] = [q.to_json() for q in questions]
    problems = hub.integrations.problems.get(device.id)
    if problems:  # parts failing and why (e.g. an MQTT entity whose template was refused)
        out["problems"] = problems
    return out


def lean(full: dict[str, Any]) -> dict[str, Any]:
    """A device as the list gives it: what is unknown (null), empty or the default is left
    out (a missing `restricted` is false, missing `scope` is no limit, a command without
    `params` takes none). About a third of the bytes of 1,000 devices (bench.api)."""
    out = {k: v for k, v in full.items()
           if v is not None and v != [] and v != {} and not (v is False and k in _FALSE_DEFAULT)}
    if out.get("scope") == _NO_SCOPE:
        del out["scope"]
    if "commands" in out:
        out["commands"] = [{k: v for k, v in c.items() if v != {} and v != []}
                           for c in out["commands"]]
    return out


_FALSE_DEFAULT = frozenset({"restricted"})
_NO_SCOPE = {"attributes": None, "events": None}
# the fields `?fields=` may name, in the order they are given: a device's own, and those
# the hub adds
FIELD_ORDER = (*Device.__dataclass_fields__, "available", "connectivity", "confirmations",
               "problems")
LIST_FIELDS = frozenset(FIELD_ORDER)
# fields whose JSON is the attribute itself (a tuple as a list): read without building the
# whole record (`Device.to_json` converts every command, a tenth of a millisecond a device)
_PLAIN_FIELDS = frozenset({"id", "name", "integration", "did", "mac", "model", "manufacturer",
                           "fw_version", "transport", "area", "attributes", "events",
                           "restricted", "created_at", "updated_at", "available"})


def fields_param(request: web.Request) -> frozenset[str] | None:
    """`?fields=id,name,area`: only these fields of each device (unknown names are a 400)."""
    raw = request.query.get("fields")
    if raw is None:
        return None
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = sorted(names - LIST_FIELDS)
    if unknown or not names:
        raise ValidationError("fields", f"unknown field {unknown[0]!r}" if unknown else
                              "name at least one field")
    return names


class DeviceJsonCache:
    """Each device's JSON, serialized once; the whole list's body kept until something
    changes. The hot path of GET /api/devices is then a bytes lookup."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._parts: dict[str, str] = {}
        self._body: bytes | None = None
        self._gzip: bytes | None = None
        self._selections: dict[frozenset[str], bytes] = {}  # ?fields= of the whole list
        self._undo: list[Callable[[], None]] = []

    def start(self) -> None:
        bus = self.hub.bus
        self._undo = [bus.subscribe(DeviceRegistryChanged, self._invalidate),
                      bus.subscribe(AvailabilityChanged, self._invalidate)]

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []

    def part(self, device: Device) -> str:
        text = self._parts.get(device.id)
        if text is None:
            text = self._parts[device.id] = dumps(lean(device_json(self.hub, device,
                                                                   reception=False)))
        return text

    def selected(self, devices: list[Device] | None, names: frozenset[str]) -> bytes:
        """The list with only the fields in `names`; for all devices (None) kept until
        something changes, like the whole list (a few selections: clients ask the same)."""
        if devices is None:
            body = self._selections.get(names)
            if body is None:
                if len(self._selections) >= 8:
                    self._selections.clear()
                body = self._selections[names] = self.selected(list(self.hub.devices.all()),
                                                               names)
            return body
        if names <= _PLAIN_FIELDS:
            order = [n for n in FIELD_ORDER if n in names]
            rows = [lean({n: self._plain(d, n) for n in order}) for d in devices]
        else:
            rows = [lean({k: v for k, v in device_json(self.hub, d, reception=False).items()
                          if k in names}) for d in devices]
        return dumpb({"devices": rows})

    def _plain(self, device: Device, name: str) -> Any:
        if name == "available":
            return self.hub.states.available(device.id)
        value = getattr(device, name)
        return list(value) if isinstance(value, tuple) else value

    def body(self, devices: list[Device] | None = None) -> bytes:
        """The list body for `devices` (all of them, cached, when None)."""
        if devices is None:
            if self._body is None:
                self._body = self._join(list(self.hub.devices.all()))
            return self._body
        return self._join(devices)

    def body_gzip(self) -> bytes:
        """The whole list, gzip-compressed once per change (about 30 times smaller)."""
        if self._gzip is None:
            import gzip  # on the first compressed list only

            self._gzip = gzip.compress(self.body(), 6, mtime=0)
        return self._gzip

    def _join(self, devices: list[Device]) -> bytes:
        return ('{"devices":[' + ",".join(self.part(d) for d in devices) + "]}").encode()

    def _invalidate(self, event: Any) -> None:
        self._parts.pop(event.device_id, None)
        self._body = self._gzip = None
        self._selections.clear()


DEVICE_CACHE_KEY: web.AppKey[DeviceJsonCache] = web.AppKey("device_json_cache", DeviceJsonCache)


def visible_device(request: web.Request) -> Device:
    """The device in the path, if this principal may see it; else 404 (no existence leak)."""
    hub = request.app[HUB_KEY]
    return hub.commands.visible(principal(request), request.match_info["device_id"])


@requires(Role.GUEST)
@describe("List devices (guests: only those granted). Each device leaves out what is null, "
          "empty or the default (as GET /api/devices/{device_id} would show it: null, [], "
          "restricted false, no scope); `fields` keeps only the fields named",
          tags=("devices",),
          query={"area": {"type": "string"},
                 "fields": {"type": "string", "description": "comma-separated, e.g. "
                            "id,name,area,available"}},
          response=obj(["devices"], devices=array(DEVICE_SCHEMA)))
async def list_devices(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    cache = request.app[DEVICE_CACHE_KEY]
    area = request.query.get("area")
    who = principal(request)
    names = fields_param(request)
    if names is not None and area is None and who.role >= Role.MEMBER:
        return web.Response(body=cache.selected(None, names), content_type="application/json")
    if names is None and area is None and who.role >= Role.MEMBER:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=cache.body_gzip(), content_type="application/json",
                                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return web.Response(body=cache.body(), content_type="application/json")
    devices = [d for d in hub.devices.all()
               if (area is None or d.area == area) and who.can_see_device(d.id, d.area)]
    body = cache.body(devices) if names is None else cache.selected(devices, names)
    return web.Response(body=body, content_type="application/json")


@requires(Role.GUEST)
@describe("Read a device", tags=("devices",), errors=ID_ERRORS, response=DEVICE_SCHEMA)
async def get_device(request: web.Request) -> web.Response:
    return json_response(device_json(request.app[HUB_KEY], visible_device(request)))


@requires(Role.ADMIN)
@describe("Rename a device, move it to an area or set its privacy scope", tags=("devices",),
          errors=ID_ERRORS, response=DEVICE_SCHEMA,
          body=obj(name={"type": "string", "minLength": 1, "maxLength": 100},
                   area={"type": ["string", "null"], "maxLength": 100}, scope=SCOPE_SCHEMA))
async def patch_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = visible_device(request)
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
@describe("Remove a device (its history stays until retention purges it)",
          tags=("devices",), status=204, errors=ID_ERRORS)
async def delete_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = await hub.devices.remove(visible_device(request).id)
    hub.states.forget(device.id)
    await hub.db.flush()
    return web.Response(status=204)


@requires(Role.ADMIN)
@describe("Confirm what the device's integration asked about (its `confirmations`), "
          "e.g. kind `counter_reset`: a BTHome sensor's encryption counter restarted "
          "because its battery was changed. Audited.", tags=("devices",),
          errors=ID_ERRORS, response=obj(["device_id", "confirmed"], device_id=STR,
                                         confirmed=ANY))
async def post_confirmation(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = visible_device(request)
    who = principal(request)
    question = await hub.integrations.confirmations.confirm(
        device.id, request.match_info["kind"], who.user_id)
    return json_response({"device_id": device.id, "confirmed": question.to_json()})


@requires(Role.GUEST)
@describe("A device's current attributes", tags=("devices",), errors=ID_ERRORS,
          response=obj(["device_id", "attributes"], device_id=STR, available=nullable(BOOL),
                       attributes={"type": "object", "additionalProperties": obj(
                           ["value"], value=ANY, unit=STR, last_changed=NUM,
                           last_updated=NUM)}))
async def get_state(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = visible_device(request)
    state = {k: _with_unit(v.to_json(), device.unit(k))
             for k, v in hub.states.get(device.id).items()}
    return json_response({"device_id": device.id, "available": hub.states.available(device.id),
                          "attributes": state})


@requires(COMMAND_ROLE)
@describe("Send a command, validated against what the device accepts", tags=("devices",),
          errors=(*ID_ERRORS, 503),
          body=obj(["command"], command={"type": "string", "maxLength": 100},
                   params={"type": "object"}),
          response=obj(["device_id", "command"], device_id=STR, command=STR, result=ANY))
async def post_command(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = visible_device(request)  # 404 before reading the body
    body = await read_json(request)
    reject_unknown(body, COMMAND_FIELDS)
    command, params = command_fields(body)
    result = await hub.commands.authorize_and_send(principal(request), device.id, command,
                                                   params)
    return json_response({"device_id": device.id, "command": command, "result": result})


@requires(Role.GUEST)
@describe("A device's recorded values and events between since and until (epoch seconds)",
          tags=("devices",), errors=ID_ERRORS,
          query={"since": {"type": "number", "minimum": 0},
                 "until": {"type": "number", "minimum": 0},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                 "points": {"type": "integer", "minimum": 10, "maximum": 2000}},
          description="With `points`, downsampled in the database for graphs: numbers as "
                      "`series` (min/max/avg per bucket of `bucket` seconds), other values "
                      "as their `changes` only, device events (button presses...) as "
                      "`events` counted per type in buckets of `event_bucket` seconds (`n`, "
                      "the first one's `ts`, `data` when alone); `before`: each "
                      "attribute's last value recorded before `since` (the one that held "
                      "when the range starts; `ts` when it was recorded); changes and "
                      "events are capped at 4 * `points`, the newest kept (`changes_from`: "
                      "the oldest change kept, when older ones were left out); `since` "
                      "defaults to 24 h ago. Without `points`, `history` and `events` hold "
                      "the rows themselves, each up to `limit`.",
          response=obj(["device_id"], device_id=STR, history=array(obj(
              ["attribute", "ts"], attribute=STR, value=ANY, ts=NUM)),
              events=array(obj(["event_type", "ts"], event_type=STR, ts=NUM, data=ANY,
                               n=NUM)),
              bucket=NUM, event_bucket=NUM, since=NUM, until=NUM, series=array(ANY),
              changes=array(ANY), changes_from=NUM, before=array(obj(
                  ["attribute", "ts"], attribute=STR, value=ANY, ts=NUM))))
async def get_history(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device = visible_device(request)
    since = query_time(request, "since")
    until = query_time(request, "until")
    limit = query_int(request, "limit", 10_000, lo=1, hi=10_000)
    await hub.db.flush()  # what was recorded before the request is visible in its answer
    if "points" in request.query:
        points = query_int(request, "points", 200, lo=10, hi=2000)
        hi = until if until is not None else time.time()
        lo = since if since is not None else hi - 86400
        if lo >= hi:
            raise ValidationError("since", "must be before until")
        summary = await hub.states.history_summary(device.id, lo, hi, points)
        return json_response({"device_id": device.id, "since": lo, "until": hi, **summary})
    rows = await hub.states.history(device.id, since, until, limit)
    events = await hub.states.events(device.id, since, until, limit)
    return json_response({"device_id": device.id, "history": rows, "events": events})


def _with_unit(state: dict[str, Any], unit: str | None) -> dict[str, Any]:
    if unit is not None:
        state["unit"] = unit
    return state


async def _start_cache(app: web.Application) -> None:
    app[DEVICE_CACHE_KEY].start()


async def _stop_cache(app: web.Application) -> None:
    app[DEVICE_CACHE_KEY].stop()


def setup(app: web.Application) -> None:
    app[DEVICE_CACHE_KEY] = DeviceJsonCache(app[HUB_KEY])
    app.on_startup.append(_start_cache)
    app.on_cleanup.append(_stop_cache)
    r = app.router
    r.add_get("/api/devices", list_devices)
    r.add_get("/api/devices/{device_id}", get_device)
    r.add_patch("/api/devices/{device_id}", patch_device)
    r.add_delete("/api/devices/{device_id}", delete_device)
    r.add_get("/api/devices/{device_id}/state", get_state)
    r.add_post("/api/devices/{device_id}/confirmations/{kind}", post_confirmation)
    r.add_post("/api/devices/{device_id}/commands", post_command)
    r.add_get("/api/devices/{device_id}/history", get_history)
