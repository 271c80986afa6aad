"""Automations: list, read, create, replace, delete, enable/disable, trigger, traces.

YAML automations are visible here with their file:line and errors but read-only; the ones
made here persist in the database and survive restarts. Create and replace take JSON, or
YAML (`Content-Type: application/yaml`, what the dashboard's YAML view sends): then every
error also names the line:column it concerns.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, BOOL, INT, STR, array, describe, nullable, obj
from hub.api.yamlbody import YamlBody, is_yaml, read_yaml
from hub.auth.principal import Role
from hub.errors import ValidationError

T = TypeVar("T")
TAGS = ("automations",)
STEP = {"type": "object", "required": ["type"], "properties": {"type": STR}}
DEFINITION = obj(
    ["triggers", "actions"],
    id={"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
    name={"type": "string", "maxLength": 200}, description=STR,
    mode={"enum": ["single", "restart", "queued", "parallel"]},
    max={"type": "integer", "minimum": 1, "maximum": 1000}, enabled=BOOL,
    triggers=array(STEP), conditions=array(STEP), actions=array(STEP),
)
ERROR_ITEM = obj(["field", "message"], extra=True, field=STR, message=STR, where=STR)
AUTOMATION = obj(
    ["id", "source", "enabled", "valid", "errors"], extra=True,
    id=STR, name=STR, description=STR, source={"enum": ["yaml", "api"]},
    where=nullable(STR), enabled=BOOL, valid=BOOL, errors=array(ERROR_ITEM),
    mode=nullable(STR), max=nullable(INT), running=INT, queued=INT, runs=INT, skipped=INT,
    last_run={"type": ["number", "null"]}, definition=ANY,
)
CURRENT_STEP = obj(
    ["index", "path", "type", "started"], index=INT, path=STR, type=STR,
    started={"type": "number"}, until={"type": ["number", "null"]},
)
TRACE = obj(
    ["run_id", "automation_id", "trigger", "state", "conditions", "actions"], extra=True,
    run_id=STR, automation_id=STR, trigger={"type": "object"}, started={"type": "number"},
    finished={"type": ["number", "null"]}, duration={"type": ["number", "null"]}, state=STR,
    error=nullable(STR), late=BOOL, resumed=BOOL,
    conditions=array({"type": "object"}), actions=array({"type": "object"}),
    current=nullable(CURRENT_STEP),  # only while running: the step it is in
)


@requires(Role.MEMBER)
@describe("List automations (YAML and API-made), with their errors", tags=TAGS,
          response=obj(["automations", "load_errors"], automations=array(AUTOMATION),
                       load_errors=array(STR)))
async def list_automations(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    return json_response({"automations": [e.to_json() for e in engine],
                          "load_errors": engine.load_errors})


YAML_NOTE = ("The body may be YAML instead of JSON (Content-Type: application/yaml; plain "
             "YAML only: no anchors, aliases or tags); a 400 then also gives `line` and "
             "`column`, in its message too (`line 4:9: ...`).")


@requires(Role.ADMIN)
@describe("Create an automation (validated; 400 names the field)", tags=TAGS, status=201,
          errors=(409,), body=DEFINITION, response=AUTOMATION, description=YAML_NOTE)
async def create_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    if not is_yaml(request):
        entry = await engine.create(await read_json(request))
        return json_response(entry.to_json(), status=201)
    body = await read_yaml(request)
    entry = await _located(body, engine.create(body.value))
    return json_response(entry.to_json(), status=201)


@requires(Role.MEMBER)
@describe("Read an automation", tags=TAGS, errors=(404,), response=AUTOMATION)
async def get_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    return json_response(engine.get(request.match_info["automation_id"]).to_json())


@requires(Role.ADMIN)
@describe("Replace an API-made automation (YAML ones are read-only: 409)", tags=TAGS,
          errors=(404, 409), body=DEFINITION, response=AUTOMATION, description=YAML_NOTE)
async def put_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    automation_id = request.match_info["automation_id"]
    if not is_yaml(request):
        entry = await engine.replace(automation_id, await read_json(request))
        return json_response(entry.to_json())
    body = await read_yaml(request)
    entry = await _located(body, engine.replace(automation_id, body.value))
    return json_response(entry.to_json())


@requires(Role.ADMIN)
@describe("Delete an API-made automation", tags=TAGS, status=204, errors=(404, 409))
async def delete_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    await engine.delete(request.match_info["automation_id"])
    return web.Response(status=204)


@requires(Role.ADMIN)
@describe("Enable an automation", tags=TAGS, errors=(404,), response=AUTOMATION)
async def enable_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.set_enabled(request.match_info["automation_id"], True)
    return json_response(entry.to_json())


@requires(Role.ADMIN)
@describe("Disable an automation (running runs stop)", tags=TAGS, errors=(404,),
          response=AUTOMATION)
async def disable_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    entry = await engine.set_enabled(request.match_info["automation_id"], False)
    return json_response(entry.to_json())


@requires(Role.MEMBER)
@describe("Run an automation now (its mode applies)", tags=TAGS, status=202,
          errors=(404, 409), body_required=False,
          body=obj(data={"type": "object"}, skip_conditions=BOOL),
          response=obj(["run_id", "started"], run_id=nullable(STR), started=BOOL))
async def trigger_automation(request: web.Request) -> web.Response:
    engine = request.app[HUB_KEY].automations
    body = await read_json(request) if request.can_read_body else {}
    reject_unknown(body, {"data", "skip_conditions"})
    data = field(body, "data", dict, required=False, default={})
    skip = field(body, "skip_conditions", bool, required=False, default=False)
    run_id = engine.trigger(request.match_info["automation_id"], data, skip)
    return json_response({"run_id": run_id, "started": run_id is not None}, status=202)


@requires(Role.MEMBER)
@describe("Runs still going (state 'running', with the step each is in: `current`), then "
          "the last 20 finished, newest first", tags=TAGS, errors=(404,),
          response=obj(["automation_id", "traces"], automation_id=STR, traces=array(TRACE)))
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


async def _located(body: YamlBody, saving: Awaitable[T]) -> T:
    """Await `saving`; a field it refuses is named with its line:column in the YAML."""
    try:
        return await saving
    except ValidationError as exc:
        raise body.located(exc) from None
