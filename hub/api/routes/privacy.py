"""Privacy center routes: consents, location, restriction, retention, export, erasure."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from hub.api.access import PRINCIPAL_KEY, requires
from hub.api.jsonio import field, json_response, number, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes._query import query_int
from hub.api.spec import BOOL, INT, NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Principal, Role
from hub.errors import AuthError, TooManyRequests, ValidationError
from hub.privacy.consent import PURPOSES, check_purpose
from hub.privacy.retention import CLASSES, MAX_DAYS, RetentionJob

_LOG = logging.getLogger(__name__)

_CONSENT = obj(["purpose", "allowed", "status"], purpose=STR, allowed=BOOL, status=STR,
               granted=BOOL, notice_version=nullable(INT), by=nullable(STR), ts=nullable(NUM),
               description=STR)
_CONSENTS = obj(["notice_version", "consents"], notice_version=INT,
                consents=obj((), extra=False, **{p: _CONSENT for p in PURPOSES}))
_LOCATION = obj(["consent", "time_zone"], consent=BOOL, time_zone=STR,
                latitude=nullable(NUM), longitude=nullable(NUM), elevation=nullable(NUM))
_SUBJECT = obj(["user_id"], user_id=STR, restricted=BOOL, presence_objection=BOOL)
_ERASURE = obj(["target", "deleted"], target=STR, deleted=obj(extra=True),
               files_removed=array(STR), restart_required=BOOL)

def who(request: web.Request) -> Principal:
    """The authenticated principal; fails closed if the auth middleware set none."""
    me = request.get(PRINCIPAL_KEY)
    if me is None:
        raise AuthError("sign in first")
    return me


# -- consents ------------------------------------------------------------------------------


@requires(Role.MEMBER)
@describe("Consents per purpose (all off until the owner grants them)", tags=("privacy",),
          response=_CONSENTS)
async def get_consents(request: web.Request) -> web.Response:
    center = request.app[HUB_KEY].privacy
    return json_response({
        "notice_version": center.consents.notice_version,
        "consents": {c.purpose: c.to_json() for c in center.consents.all()},
    })


@requires(Role.OWNER)
@describe("Grant or withdraw purposes; all are checked before any is stored",
          tags=("privacy",), body=obj((), extra=False, **{p: BOOL for p in PURPOSES}),
          response=_CONSENTS)
async def put_consents(request: web.Request) -> web.Response:
    """Body: {"cloud_sync": true, "location": false, ...}; all checked before any is stored."""
    center = request.app[HUB_KEY].privacy
    body = await read_json(request)
    if not body:
        raise ValidationError(None, f"expected an object of purposes ({', '.join(PURPOSES)})")
    for purpose, value in body.items():
        check_purpose(purpose, field=purpose)
        if not isinstance(value, bool):
            raise ValidationError(purpose, "expected true or false")
    actor = who(request).user_id
    for purpose, value in body.items():
        await center.set_consent(purpose, value, actor)
    return await get_consents(request)


@requires(Role.OWNER)
@describe("Every grant, withdrawal and pause, newest first", tags=("privacy",),
          query={"purpose": {"type": "string", "enum": list(PURPOSES)},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                 "before": {"type": "integer", "minimum": 1}},
          response=obj(["history"], history=array(obj(
              id=INT, purpose=STR, action=STR, notice_version=INT, by=nullable(STR), ts=NUM))))
async def get_consent_history(request: web.Request) -> web.Response:
    center = request.app[HUB_KEY].privacy
    purpose = request.query.get("purpose")
    limit = query_int(request, "limit", 1000, lo=1, hi=10_000)
    before = query_int(request, "before", None, lo=1, hi=1 << 62)
    rows = await center.consents.history(purpose, limit, before)
    return json_response({"history": rows})


# -- location ------------------------------------------------------------------------------


@requires(Role.MEMBER)
@describe("The home's coordinates (null without location consent) and time zone",
          tags=("privacy",), response=_LOCATION)
async def get_location(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    loc = hub.privacy.location()
    return json_response({
        "consent": hub.privacy.allowed("location"),
        "time_zone": hub.config.location.time_zone,
        "latitude": loc.latitude if loc else None,
        "longitude": loc.longitude if loc else None,
        "elevation": loc.elevation if loc else None,
    })


@requires(Role.OWNER)
@describe("Set the home's coordinates (needs location consent)", tags=("privacy",),
          body=obj(["latitude", "longitude"],
                   latitude={"type": "number", "minimum": -90, "maximum": 90},
                   longitude={"type": "number", "minimum": -180, "maximum": 180},
                   elevation={"type": "number", "minimum": -11_000, "maximum": 100_000}),
          response=_LOCATION, errors=(409,))
async def put_location(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    body = await read_json(request)
    reject_unknown(body, {"latitude", "longitude", "elevation"})
    lat = float(number(body, "latitude", lo=-90, hi=90))
    lon = float(number(body, "longitude", lo=-180, hi=180))
    elev = float(number(body, "elevation", lo=-11_000, hi=100_000, required=False, default=0.0))
    await hub.privacy.set_location(lat, lon, elev, who(request).user_id)
    return await get_location(request)


# -- restriction and objection -------------------------------------------------------------


@requires(Role.ADMIN)
@describe("Restricted devices and users, and presence objections", tags=("privacy",),
          response=obj(["devices", "users"], devices=array(STR), users=array(_SUBJECT)))
async def get_restrictions(request: web.Request) -> web.Response:
    return json_response(request.app[HUB_KEY].privacy.restrictions())


@requires(Role.ADMIN)
@describe("Restrict a device: its data is kept but automations and sync skip it",
          tags=("privacy",), body=obj(["restricted"], restricted=BOOL),
          response=obj(["device_id", "restricted"], device_id=STR, restricted=BOOL),
          errors=(404,))
async def put_device_restriction(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    device_id = request.match_info["device_id"]
    body = await read_json(request)
    reject_unknown(body, {"restricted"})
    restricted = field(body, "restricted", bool)
    await hub.privacy.restrict_device(device_id, restricted, who(request).user_id)
    return json_response({"device_id": device_id, "restricted": restricted})


@requires(Role.GUEST)
@describe("Restrict a user or object to automations acting on their presence ('me' for "
          "oneself; another user: owner only)", tags=("privacy",),
          body=obj(restricted=BOOL, presence_objection=BOOL), response=_SUBJECT,
          errors=(404,))
async def put_user_restriction(request: web.Request) -> web.Response:
    """A user may restrict or object for themselves; an owner for anyone."""
    hub = request.app[HUB_KEY]
    me = who(request)
    user_id = request.match_info["user_id"]
    if user_id == "me":
        user_id = me.user_id
    if user_id != me.user_id and me.role < Role.OWNER:
        from hub.errors import PermissionDenied

        raise PermissionDenied("only the owner may restrict another user")
    body = await read_json(request)
    reject_unknown(body, {"restricted", "presence_objection"})
    if not body:
        raise ValidationError(None, "give restricted and/or presence_objection")
    restricted = field(body, "restricted", bool, required=False)
    objection = field(body, "presence_objection", bool, required=False)
    out = await hub.privacy.set_user_subject(user_id, me.user_id, restricted=restricted,
                                             presence_objection=objection)
    return json_response(out)


# -- export and erasure --------------------------------------------------------------------


@requires(Role.GUEST)
@describe("Export your data (an owner: the household's) as a ZIP of JSON files, each with "
          "its JSON Schema", tags=("privacy",), body=obj(), body_required=False,
          description="The answer is application/zip, streamed.")
async def post_export(request: web.Request) -> web.StreamResponse:
    """A ZIP of JSON files with their schemas, streamed as it is produced."""
    hub = request.app[HUB_KEY]
    me = who(request)
    if request.can_read_body:
        body = await read_json(request)
        reject_unknown(body, set())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(hub.clock.time()))
    resp = web.StreamResponse(headers={
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="uone-export-{stamp}.zip"',
    })
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        await hub.privacy.export(me, resp.write)
    except Exception:
        # the status line is gone: cut the stream so the client sees a broken archive
        _LOG.exception("export failed mid-stream")
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


@requires(Role.GUEST)
@describe("Erase your own data, another user's (owner), one device and its history "
          "(admin), or the whole hub (owner, with password and TOTP code)", tags=("privacy",),
          body=obj(["target"], target={"enum": ["me", "user", "device", "hub"]},
                   user_id=STR, device_id=STR, password=STR, totp=STR),
          response=_ERASURE, errors=(404, 409, 429))
async def post_erase(request: web.Request) -> web.Response:
    """{"target": "me"} | {"target": "user", "user_id"} | {"target": "device", "device_id"}
    | {"target": "hub", "password", "totp"?} (owner, signs in again)."""
    hub = request.app[HUB_KEY]
    me = who(request)
    body = await read_json(request)
    target = field(body, "target", str)
    if target == "me":
        reject_unknown(body, {"target"})
        report = await hub.privacy.erase_user(me.user_id, me)
    elif target == "user":
        reject_unknown(body, {"target", "user_id"})
        report = await hub.privacy.erase_user(field(body, "user_id", str), me)
    elif target == "device":
        reject_unknown(body, {"target", "device_id"})
        report = await hub.privacy.erase_device(field(body, "device_id", str), me)
    elif target == "hub":
        reject_unknown(body, {"target", "password", "totp"})
        password = field(body, "password", str)
        totp = field(body, "totp", str, required=False)
        report = await hub.privacy.factory_reset(me, password, totp, request.remote or "")
        return json_response(report.to_json() | {"restart_required": True})
    else:
        raise ValidationError("target", "expected 'me', 'user', 'device' or 'hub'")
    return json_response(report.to_json())


# -- retention -----------------------------------------------------------------------------


@requires(Role.OWNER)
@describe("Retention per data class: configured days and the oldest record kept",
          tags=("privacy",), response=obj(["classes"], extra=True, classes=obj(extra=True)))
async def get_retention(request: web.Request) -> web.Response:
    return json_response(await request.app[HUB_KEY].privacy.retention.status())


@requires(Role.OWNER)
@describe("Set how long a class of data is kept (null: back to the config's value); the "
          "purge with the new ages starts at once", tags=("privacy",), errors=(400,),
          body={**obj((), extra=False, **{c.name: {"type": ["number", "null"],
                                                  "minimum": RetentionJob.least(c),
                                                  "maximum": MAX_DAYS} for c in CLASSES}),
                "minProperties": 1},
          response=obj(["classes"], extra=True, classes=obj(extra=True)))
async def patch_retention(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not body:
        raise ValidationError(None, "expected at least one data class: "
                              + ", ".join(c.name for c in CLASSES))
    changes: dict[str, float | None] = {}
    for name, value in body.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValidationError(name, "expected a number of days or null")
        changes[name] = value
    retention = request.app[HUB_KEY].privacy.retention
    await retention.set_days(changes, who(request).user_id)
    return json_response(await retention.status())


LOGIN_PATH = "/api/auth/login"


@web.middleware
async def breach_watch(request: web.Request, handler):
    """Feeds the privacy center's breach signals: token use per address, failed sign-ins."""
    center = request.app[HUB_KEY].privacy
    me = request.get(PRINCIPAL_KEY)
    if me is not None and me.token_id and request.remote and not me.is_minor:
        # a minor's whereabouts (addresses) are not collected
        center.note_token_use(me.token_id, request.remote, me.username)
    try:
        response = await handler(request)
    except (AuthError, TooManyRequests):
        if request.path == LOGIN_PATH:
            await center.login_failed(None, request.remote)
        raise
    if request.path == LOGIN_PATH and response.status in (401, 429):
        await center.login_failed(None, request.remote)
    return response


def setup(app: web.Application) -> None:
    app.middlewares.append(breach_watch)  # innermost: runs after authentication
    r = app.router
    r.add_get("/api/privacy/consents", get_consents)
    r.add_put("/api/privacy/consents", put_consents)
    r.add_get("/api/privacy/consents/history", get_consent_history)
    r.add_get("/api/privacy/location", get_location)
    r.add_put("/api/privacy/location", put_location)
    r.add_get("/api/privacy/restrictions", get_restrictions)
    r.add_put("/api/privacy/restrictions/devices/{device_id}", put_device_restriction)
    r.add_put("/api/privacy/restrictions/users/{user_id}", put_user_restriction)
    r.add_get("/api/privacy/retention", get_retention)
    r.add_patch("/api/privacy/retention", patch_retention)
    r.add_post("/api/privacy/export", post_export)
    r.add_post("/api/privacy/erase", post_erase)
