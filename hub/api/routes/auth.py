"""Sign-in: POST /api/auth/login, /api/auth/refresh, /api/auth/logout."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import PUBLIC, principal, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import BOOL, NUM, STR, describe, obj
from hub.auth.principal import Role
from hub.errors import ValidationError

USER_SCHEMA = obj(
    ["id", "username", "role"],
    id=STR, username=STR, role={"enum": ["owner", "admin", "member", "guest"]},
    is_minor=BOOL, granted_devices={"type": "array", "items": STR},
    granted_areas={"type": "array", "items": STR}, totp_enabled=BOOL,
    created_at=NUM, updated_at=NUM,
)
SESSION_SCHEMA = obj(
    ["access_token", "refresh_token", "token_type", "expires_in", "user"],
    access_token=STR, refresh_token=STR, token_type={"const": "Bearer"}, expires_in=NUM,
    user=USER_SCHEMA,
)
MAX_SECRET = 1024


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


@requires(PUBLIC)
@describe("Sign in with username, password and (if enabled) a TOTP or recovery code",
          tags=("auth",), errors=(401, 429),
          body=obj(["username", "password"],
                   username={"type": "string", "maxLength": 64},
                   password={"type": "string", "maxLength": MAX_SECRET},
                   totp={"type": "string", "maxLength": 64}),
          response=SESSION_SCHEMA,
          description="401 with code `totp_required` when the account has two-step "
                      "verification and no `totp` was sent. 429 with Retry-After after "
                      "repeated failures from the same address.")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"username", "password", "totp"})
    username = _bounded(body, "username", 64)
    password = _bounded(body, "password", MAX_SECRET)
    code = body.get("totp")
    if code is not None:
        code = _bounded(body, "totp", 64)
    session = await request.app[HUB_KEY].auth.login(username, password, code,
                                                    client_address(request))
    return json_response(session.to_json())


@requires(PUBLIC)
@describe("Trade a refresh token for a new access and refresh token (rotation)",
          tags=("auth",), errors=(401,),
          body=obj(["refresh_token"], refresh_token={"type": "string", "maxLength": 200}),
          response=SESSION_SCHEMA,
          description="The old refresh token stops working; presenting it again ends the "
                      "whole session (a sign it was stolen).")
async def refresh(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"refresh_token"})
    raw = _bounded(body, "refresh_token", 200)
    session = await request.app[HUB_KEY].auth.refresh(raw)
    return json_response(session.to_json())


@requires(Role.GUEST)
@describe("End this session (its access and refresh tokens)", tags=("auth",), status=204)
async def logout(request: web.Request) -> web.Response:
    await request.app[HUB_KEY].auth.logout(principal(request))
    return web.Response(status=204)


def _bounded(body: dict, name: str, limit: int) -> str:
    value = field(body, name, str)
    if len(value) > limit:
        raise ValidationError(name, f"at most {limit} characters")
    return value


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/auth/login", login)
    r.add_post("/api/auth/refresh", refresh)
    r.add_post("/api/auth/logout", logout)
