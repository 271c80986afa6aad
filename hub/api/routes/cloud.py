"""Cloud sync: status and pairing codes. Owner-only: cloud settings are the owner's."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, BOOL, INT, STR, describe, nullable, obj
from hub.auth.principal import Role

NUM_OR_NULL = nullable({"type": "number"})

STATUS = obj(
    ["configured", "enabled", "state", "connected", "outbox", "last_delivery", "last_error"],
    configured=BOOL, enabled=BOOL, connected=BOOL, consent=obj(extra=True),
    state={"enum": ["off", "no_consent", "connecting", "connected", "waiting", "error"]},
    broker=nullable(STR), categories={"type": "array", "items": STR},
    outbox_depth=INT,
    outbox=obj(["depth", "limit", "policy", "dropped"], depth=INT, limit=INT, policy=STR,
               dropped=INT),
    delivered=INT, last_delivery=NUM_OR_NULL, last_connected=NUM_OR_NULL, connects=INT,
    last_error=nullable(STR), retained_clear_pending=BOOL, commands=ANY,
)


@requires(Role.OWNER)
@describe("Cloud sync status: connected, outbox depth, last delivery, last error",
          tags=("cloud",), response=STATUS)
async def get_status(request: web.Request) -> web.Response:
    """Connected or not, outbox depth, last delivery, last error (no keys, no password)."""
    return json_response(request.app[HUB_KEY].cloud.status())


@requires(Role.OWNER)
@describe("A pairing code for another device of the owner's (carries the sync key)",
          tags=("cloud",), errors=(404, 409),
          body=obj(client=nullable({"type": "string", "maxLength": 64})), body_required=False,
          response=obj(["pairing_code"], pairing_code=STR, client=nullable(STR)),
          description="Show it once (e.g. as a QR code): it holds the end-to-end sync key and, "
                      "for a remote client, its command key. Needs sync enabled.")
async def post_pairing(request: web.Request) -> web.Response:
    """A pairing code: it carries the sync key (and, for a remote client, its command key),
    so it is shown once and never logged."""
    body = await read_json(request) if request.can_read_body else {}
    reject_unknown(body, {"client"})
    client = field(body, "client", (str, type(None)), required=False)
    hub = request.app[HUB_KEY]
    code = await hub.cloud.pairing_code(client)
    # Who exported the sync key, and for which client, is in the audit log (never the code).
    await hub.privacy.audit(principal(request).user_id, "cloud.pairing_code",
                            client or "sync", {})
    return json_response({"pairing_code": code, "client": client})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/cloud/status", get_status)
    app.router.add_post("/api/cloud/pairing", post_pairing)
