"""Automations: list, read, create, replace, delete, enable/disable, trigger, traces.

YAML automations are visible here with their file:line and errors but read-only; the ones
made here persist in the database and survive restarts.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.auth.principal import Role


@requires(Role.MEMBER)
async def list_automations(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    return json_response({"automations": [e.to_json() for e in engine],
                          "load_errors": engine.load_errors})


@requires(Role.ADMIN)
async def create_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.create(await read_json(request))
    return json_response(entry.to_json(), status=201)


@requires(Role.MEMBER)
async def get_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    return json_response(engine.get(request.match_info["automation_id"]).to_json())


@requires(Role.ADMIN)
async def put_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.replace(request.match_info["automation_id"], await read_json(request))
    return json_response(entry.to_json())


@requires(Role.ADMIN)
async def delete_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    await engine.delete(request.match_info["automation_id"])
    return web.Response(status=204)


@requires(Role.ADMIN)
async def enable_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.set_enabled(request.match_info["automation_id"], True)
    return json_response(entry.to_json())


@requires(Role.ADMIN)
async def disable_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.set_enabled(request.match_info["automation_id"], False)
    return json_response(entry.to_json())


@requires(Role.MEMBER)
async def trigger_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    body = await read_json(request) if request.can_read_body else {}
    reject_unknown(body, {"data", "skip_conditions"})
    data = field(body, "data", dict, required=False, default={})
    skip = field(body, "skip_conditions", bool, required=False, default=False)
    run_id = engine.trigger(request.match_info["automation_id"], data, skip)
    return json_response({"run_id": run_id, "started": run_id is not None}, status=202)


@requires(Role.MEMBER)
async def get_traces(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    automation_id = request.match_info["automation_id"]
    return json_response({"automation_id": automation_id,
                          "traces": engine.traces(automation_id)})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/automations", list_automations)
    r.add_post("/api/automations", create_automation)
    r.add_get("/api/automations/{automation_id}", get_automation)
    r.add_put("/api/automations/{automation_id}", put_automation)
    r.add_delete("/api/automations/{automation_id}", delete_automation)
    r.add_post("/api/automations/{automation_id}/enable", enable_automation)
    r.add_post("/api/automations/{automation_id}/disable", disable_automation)
    r.add_post("/api/automations/{automation_id}/trigger", trigger_automation)
    r.add_get("/api/automations/{automation_id}/traces", get_traces)
