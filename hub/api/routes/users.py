"""Accounts: /api/users (owner), /api/users/me (everyone), two-step verification."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes._query import query_int
from hub.api.routes.auth import USER_SCHEMA
from hub.api.spec import BOOL, NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Principal, Role
from hub.errors import AuthError, PermissionDenied, ValidationError

ROLE_SCHEMA = {"enum": ["owner", "admin", "member", "guest"]}
NAMES = {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 1000}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024}
PASSWORD_CONFIRM = obj(["password"], password={"type": "string", "maxLength": 1024})


@requires(Role.OWNER)
@describe("List accounts", tags=("users",), response=obj(["users"], users=array(USER_SCHEMA)))
async def list_users(request: web.Request) -> web.Response:
    users = request.app[HUB_KEY].auth.users()
    return json_response({"users": [u.to_json() for u in users]})


@requires(Role.OWNER)
@describe("Create an account", tags=("users",), status=201, errors=(409,),
          response=USER_SCHEMA,
          body=obj(["username", "password", "role"],
                   username={"type": "string", "maxLength": 64}, password=PASSWORD,
                   role=ROLE_SCHEMA, is_minor=BOOL, granted_devices=NAMES,
                   granted_areas=NAMES))
async def create_user(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"username", "password", "role", "is_minor", "granted_devices",
                          "granted_areas"})
    username = field(body, "username", str)
    password = _password(body, "password")
    role = _role(body)
    assert role is not None
    user = await request.app[HUB_KEY].auth.create_user(
        username, password, role,
        is_minor=field(body, "is_minor", bool, required=False, default=False),
        granted_devices=_devices(request, body) or frozenset(),
        granted_areas=_areas(request, body) or frozenset(),
        actor=principal(request).user_id,
    )
    return json_response(user.to_json(), 201)


@requires(Role.GUEST)
@describe("The signed-in account", tags=("users",), response=USER_SCHEMA)
async def get_me(request: web.Request) -> web.Response:
    return json_response(request.app[HUB_KEY].auth.user(principal(request).user_id).to_json())


LOGINS_QUERY = {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}}
LOGINS_SCHEMA = obj(["logins"], logins=array(obj(
    ["ts", "address", "ok"], ts=NUM, address=nullable(STR), ok=BOOL, reason=nullable(STR))))


@requires(Role.GUEST)
@describe("My sign-in history: when, from where, ok or failed", tags=("users",),
          query=LOGINS_QUERY, response=LOGINS_SCHEMA)
async def my_logins(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    rows = await request.app[HUB_KEY].auth.logins(principal(request).user_id, limit)
    return json_response({"logins": rows})


@requires(Role.OWNER)
@describe("An account's sign-in history (owner; each look is in the audit log)",
          tags=("users",), errors=(404,), query=LOGINS_QUERY, response=LOGINS_SCHEMA)
async def user_logins(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    user = hub.auth.user(request.match_info["user_id"])  # 404 for an unknown account
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    rows = await hub.auth.logins(user.id, limit)
    # reading someone else's personal data is itself recorded
    await hub.audit.record(principal(request).user_id, "user.logins.read", user.id)
    return json_response({"logins": rows})


@requires(Role.GUEST)
@describe("Change my password (my other sessions end)", tags=("users",), status=204,
          errors=(401,),
          body=obj(["current_password", "new_password"],
                   current_password={"type": "string", "maxLength": 1024},
                   new_password=PASSWORD))
async def change_my_password(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"current_password", "new_password"})
    current = field(body, "current_password", str)
    new = _password(body, "new_password")
    who = principal(request)
    auth = request.app[HUB_KEY].auth
    if len(current) > 1024 or not await auth.check_password(who.user_id, current):
        raise AuthError("current password is wrong")
    await auth.set_password(who.user_id, new, actor=who.user_id, keep_token=who.token_id)
    return web.Response(status=204)


@requires(Role.OWNER)
@describe("Read an account", tags=("users",), errors=(404,), response=USER_SCHEMA)
async def get_user(request: web.Request) -> web.Response:
    return json_response(request.app[HUB_KEY].auth.user(request.match_info["user_id"]).to_json())


@requires(Role.OWNER)
@describe("Change role, minor flag, guest grants or password", tags=("users",),
          errors=(404, 409), response=USER_SCHEMA,
          body=obj(role=ROLE_SCHEMA, is_minor=BOOL, granted_devices=NAMES, granted_areas=NAMES,
                   password=PASSWORD))
async def patch_user(request: web.Request) -> web.Response:
    auth = request.app[HUB_KEY].auth
    user = auth.user(request.match_info["user_id"])
    body = await read_json(request)
    reject_unknown(body, {"role", "is_minor", "granted_devices", "granted_areas", "password"})
    actor = principal(request).user_id
    role = _role(body, required=False)
    is_minor = field(body, "is_minor", bool, required=False)
    devices = _devices(request, body)
    areas = _areas(request, body)
    password = _password(body, "password") if "password" in body else None
    user = await auth.update_user(user.id, role=role, is_minor=is_minor,
                                  granted_devices=devices, granted_areas=areas, actor=actor)
    if password is not None:
        await auth.set_password(user.id, password, actor=actor)
    return json_response(auth.user(user.id).to_json())


@requires(Role.OWNER)
@describe("Delete an account and end its sessions", tags=("users",), status=204,
          errors=(404, 409))
async def delete_user(request: web.Request) -> web.Response:
    auth = request.app[HUB_KEY].auth
    user = auth.user(request.match_info["user_id"])
    await auth.delete_user(user.id, actor=principal(request).user_id)
    return web.Response(status=204)


@requires(Role.GUEST)
@describe("Start two-step verification: a new secret as an otpauth:// URI",
          tags=("two-step",), errors=(404, 409),
          response=obj(["otpauth_uri"], otpauth_uri=STR),
          description="Only for yourself ({user_id} is your id or `me`). Nothing is "
                      "enforced until the first code is confirmed with PUT.")
async def begin_totp(request: web.Request) -> web.Response:
    who, user_id = _self_only(request)
    uri = await request.app[HUB_KEY].auth.begin_totp(user_id, actor=who.user_id)
    return json_response({"otpauth_uri": uri})


@requires(Role.GUEST)
@describe("Confirm two-step verification with a first code; returns 10 recovery codes",
          tags=("two-step",), errors=(404, 409),
          body=obj(["code"], code={"type": "string", "maxLength": 16}),
          response=obj(["recovery_codes"], recovery_codes=array(STR)),
          description="The recovery codes are shown once; each works once instead of a code.")
async def confirm_totp(request: web.Request) -> web.Response:
    who, user_id = _self_only(request)
    body = await read_json(request)
    reject_unknown(body, {"code"})
    code = field(body, "code", str)
    if len(code) > 16:
        raise ValidationError("code", "at most 16 characters")
    codes = await request.app[HUB_KEY].auth.confirm_totp(user_id, code, actor=who.user_id)
    return json_response({"recovery_codes": codes})


@requires(Role.GUEST)
@describe("Turn two-step verification off (yours, or anyone's as owner)",
          tags=("two-step",), status=204, errors=(401, 404, 409), body=PASSWORD_CONFIRM,
          description="`password` is the caller's own password, asked again.")
async def disable_totp(request: web.Request) -> web.Response:
    who = principal(request)
    user_id = _user_id(request, who)
    if user_id != who.user_id and who.role < Role.OWNER:
        raise PermissionDenied("only the owner can turn off someone else's two-step")
    auth = request.app[HUB_KEY].auth
    auth.user(user_id)
    body = await read_json(request)
    reject_unknown(body, {"password"})
    password = field(body, "password", str)
    if len(password) > 1024 or not await auth.check_password(who.user_id, password):
        raise AuthError("password is wrong")
    await auth.disable_totp(user_id, actor=who.user_id)
    return web.Response(status=204)


def _user_id(request: web.Request, who: Principal) -> str:
    raw = request.match_info["user_id"]
    return who.user_id if raw == "me" else raw


def _self_only(request: web.Request) -> tuple[Principal, str]:
    who = principal(request)
    user_id = _user_id(request, who)
    if user_id != who.user_id:
        raise PermissionDenied("two-step enrolment is only for your own account")
    return who, user_id


def _role(body: dict[str, Any], required: bool = True) -> Role | None:
    raw = field(body, "role", str, required=required)
    if raw is None:
        return None
    try:
        return Role.parse(raw)
    except ValueError as exc:
        raise ValidationError("role", str(exc)) from None


def _names(body: dict[str, Any], name: str) -> frozenset[str] | None:
    raw = field(body, name, list, required=False)
    if raw is None:
        return None
    if len(raw) > 1000 or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in raw):
        raise ValidationError(name, "expected at most 1000 names of 1-200 characters")
    return frozenset(raw)


def _devices(request: web.Request, body: dict[str, Any]) -> frozenset[str] | None:
    """Granted device ids, each an adopted device (a typo would grant nothing, silently)."""
    names = _names(body, "granted_devices")
    devices = request.app[HUB_KEY].devices
    _known(body, "granted_devices", lambda n: n in devices, "no device")
    return names


def _areas(request: web.Request, body: dict[str, Any]) -> frozenset[str] | None:
    """Granted areas, each the area of at least one device (areas exist through devices)."""
    names = _names(body, "granted_areas")
    if names:
        areas = {d.area for d in request.app[HUB_KEY].devices.all() if d.area}
        _known(body, "granted_areas", areas.__contains__, "no device is in area")
    return names


def _known(body: dict[str, Any], name: str, exists: Callable[[str], bool], what: str) -> None:
    for i, value in enumerate(body.get(name) or ()):
        if not exists(value):
            raise ValidationError(f"{name}[{i}]", f"{what} {value!r}")


def _password(body: dict[str, Any], name: str) -> str:
    value = field(body, name, str)
    if not 8 <= len(value) <= 1024:
        raise ValidationError(name, "must be 8-1024 characters")
    return value


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/users", list_users)
    r.add_post("/api/users", create_user)
    r.add_get("/api/users/me", get_me)  # before /{user_id}: the router matches in order
    r.add_get("/api/users/me/logins", my_logins)
    r.add_post("/api/users/me/password", change_my_password)
    r.add_get("/api/users/{user_id}", get_user)
    r.add_get("/api/users/{user_id}/logins", user_logins)
    r.add_patch("/api/users/{user_id}", patch_user)
    r.add_delete("/api/users/{user_id}", delete_user)
    r.add_post("/api/users/{user_id}/totp", begin_totp)
    r.add_put("/api/users/{user_id}/totp", confirm_totp)
    r.add_delete("/api/users/{user_id}/totp", disable_totp)
