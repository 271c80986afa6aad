"""Named secrets in the vault (a broker password, a sync passphrase): write-only, owner only.

The config names them (`cloud.password_secret`); these routes store, list (names and dates)
and delete them. No route returns a value, and each change is in the audit log.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import BOOL, NUM, STR, array, describe, obj
from hub.auth.principal import Role
from hub.namedsecrets import MAX_VALUE, NamedSecrets

SECRET = obj(("name", "created_at", "updated_at", "used_by"), name=STR, created_at=NUM,
             updated_at=NUM, used_by=array(STR))
REFERENCE = obj(("key", "name", "set"), key=STR, name=STR, set=BOOL)


def _secrets(request: web.Request) -> NamedSecrets:
    hub = request.app[HUB_KEY]
    return NamedSecrets(hub.vault, hub.audit, hub.config)


@requires(Role.OWNER)
@describe("Named secrets: names and dates (never values), and the names the config uses",
          tags=("vault",),
          response=obj(("secrets", "referenced"), secrets=array(SECRET),
                       referenced=array(REFERENCE)),
          description="`referenced` lists each config key that names a secret "
                      "(cloud.password_secret, cloud.passphrase_secret) and whether it is set.")
async def list_secrets(request: web.Request) -> web.Response:
    secrets = _secrets(request)
    return json_response({"secrets": [s.to_json() for s in await secrets.entries()],
                          "referenced": await secrets.references()})


@requires(Role.OWNER)
@describe("Store or replace a named secret; write-only (no route shows it again)",
          tags=("vault",), response={**SECRET, "properties": {**SECRET["properties"],
                                                              "created": BOOL}},
          body=obj(("value",), value={"type": "string", "minLength": 1,
                                      "maxLength": MAX_VALUE}),
          description="Name: 1-128 letters, digits and . _ / - (not cloud/sync_key or "
                      "cloud/client/..., the cloud's own keys). A cloud sync waiting for it "
                      "tries again at once.")
async def put_secret(request: web.Request) -> web.Response:
    body = await read_json(request)
    reject_unknown(body, {"value"})
    value = field(body, "value", str)
    hub = request.app[HUB_KEY]
    info, created = await _secrets(request).set(request.match_info["name"], value,
                                               principal(request).user_id)
    if info.used_by:
        hub.cloud.secrets_changed()
    return json_response({**info.to_json(), "created": created})


@requires(Role.OWNER)
@describe("Delete a named secret for good (secure_delete, WAL truncated)", tags=("vault",),
          status=204, errors=(404,))
async def delete_secret(request: web.Request) -> web.Response:
    await _secrets(request).delete(request.match_info["name"], principal(request).user_id)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/vault/secrets", list_secrets)
    r.add_put("/api/vault/secrets/{name:[\\s\\S]+}", put_secret)
    r.add_delete("/api/vault/secrets/{name:[\\s\\S]+}", delete_secret)
