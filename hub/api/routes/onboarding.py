"""First run: GET/POST /api/onboarding creates the owner with the one-time code."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import PUBLIC, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes.auth import SESSION_SCHEMA, client_address
from hub.api.spec import BOOL, describe, obj
from hub.errors import ValidationError


@requires(PUBLIC)
@describe("Whether the hub still waits for its owner", tags=("onboarding",),
          response=obj(["needed"], needed=BOOL))
async def get_onboarding(request: web.Request) -> web.Response:
    return json_response({"needed": request.app[HUB_KEY].auth.needs_owner})


@requires(PUBLIC)
@describe("Create the owner with the one-time onboarding code", tags=("onboarding",),
          status=201, errors=(401, 409, 429), response=SESSION_SCHEMA,
          body=obj(["code", "username", "password"],
                   code={"type": "string", "maxLength": 64},
                   username={"type": "string", "maxLength": 64},
                   password={"type": "string", "maxLength": 1024}),
          description="The code is logged by `uone-hub run` and written (mode 0600) to "
                      "`onboarding-code` in the state directory while no owner exists.")
async def post_onboarding(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"code", "username", "password"})
    code = field(body, "code", str)
    username = field(body, "username", str)
    password = field(body, "password", str)
    if len(code) > 64:
        raise ValidationError("code", "at most 64 characters")
    session = await request.app[HUB_KEY].auth.onboard(code, username, password,
                                                      client_address(request))
    return json_response(session.to_json(), 201)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/onboarding", get_onboarding)
    app.router.add_post("/api/onboarding", post_onboarding)
