"""Long-lived tokens for scripts: /api/tokens. The value is shown once, stored hashed."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field, json_response, number, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes._query import query_bool
from hub.api.spec import NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.errors import NotFound

TOKEN_SCHEMA = obj(
    ["id", "user_id", "kind", "created_at"],
    id=STR, user_id=STR, kind={"enum": ["access", "refresh", "long"]}, name=nullable(STR),
    created_at=NUM, expires_at=nullable(NUM), last_used_at=nullable(NUM),
)
MAX_TTL = 10 * 365 * 86400.0


@requires(Role.GUEST)
@describe("My live tokens (the owner may ask for everyone's with all=true)",
          tags=("tokens",), query={"all": {"type": "boolean"}},
          response=obj(["tokens"], tokens=array(TOKEN_SCHEMA)))
async def list_tokens(request: web.Request) -> web.Response:
    who = principal(request)
    everyone = query_bool(request, "all") and who.role >= Role.OWNER
    tokens = request.app[HUB_KEY].auth.tokens(None if everyone else who.user_id)
    return json_response({"tokens": [t.to_json() for t in tokens]})


@requires(Role.GUEST)
@describe("Create a long-lived token acting as me; its value is returned once",
          tags=("tokens",), status=201,
          body=obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 100},
                   expires_in={"type": ["number", "null"], "minimum": 60,
                               "maximum": MAX_TTL}),
          response={**TOKEN_SCHEMA, "required": [*TOKEN_SCHEMA["required"], "token"],
                    "properties": {**TOKEN_SCHEMA["properties"], "token": STR}})
async def create_token(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"name", "expires_in"})
    name = field(body, "name", str)
    expires_in = None
    if body.get("expires_in") is not None:
        expires_in = number(body, "expires_in", lo=60, hi=MAX_TTL)
    who = principal(request)
    raw, rec = await request.app[HUB_KEY].auth.create_token(who.user_id, name, expires_in,
                                                           actor=who.user_id)
    return json_response({**rec.to_json(), "token": raw}, 201)


@requires(Role.GUEST)
@describe("Revoke a token (yours, or anyone's as owner); its websockets close",
          tags=("tokens",), status=204, errors=(404,))
async def revoke_token(request: web.Request) -> web.Response:
    who = principal(request)
    auth = request.app[HUB_KEY].auth
    rec = auth.token(request.match_info["token_id"])
    if rec.user_id != who.user_id and who.role < Role.OWNER:
        raise NotFound(f"no token {rec.id!r}")  # others' tokens are not even listed
    await auth.revoke_token(rec.id, actor=who.user_id)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_post("/api/tokens", create_token)
    app.router.add_delete("/api/tokens/{token_id}", revoke_token)
