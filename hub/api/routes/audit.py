"""GET /api/audit: the append-only audit log, for owners."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import json_response
from hub.api.keys import HUB_KEY
from hub.api.routes._query import query_int
from hub.api.spec import ANY, BOOL, INT, NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Role

ENTRY = obj(["id", "ts", "action"], id=INT, ts=NUM, actor=nullable(STR), action=STR,
            target=nullable(STR), details=ANY, hash=STR)


@requires(Role.OWNER)
@describe("Audit entries, newest first", tags=("audit",),
          query={"limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                 "before": {"type": "integer", "minimum": 0},
                 "actor": {"type": "string"}, "action": {"type": "string"}},
          response=obj(["entries"], entries=array(ENTRY)))
async def list_audit(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    before = query_int(request, "before", -1, lo=0, hi=2**62) if "before" in request.query \
        else None
    entries = await hub.audit.entries(limit=limit, before=before,
                                      actor=request.query.get("actor"),
                                      action=request.query.get("action"))
    return json_response({"entries": [e.to_json() for e in entries]})


@requires(Role.OWNER)
@describe("Check the audit log's hash chain", tags=("audit",),
          response=obj(["intact"], intact=BOOL, broken_at=nullable(INT)))
async def verify_audit(request: web.Request) -> web.Response:
    broken = await request.app[HUB_KEY].audit.verify()
    return json_response({"intact": broken is None, "broken_at": broken})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/audit", list_audit)
    app.router.add_get("/api/audit/verify", verify_audit)
