"""GET /api/openapi.json: the OpenAPI 3.1 document, generated from the live router.

Every route of the app is in it (the dashboard's files too: "matches the routes exactly").
Paths, methods, path parameters and security come from the routes themselves and their
`@requires`; summaries, bodies and extra answers from each handler's `@describe`
(hub/api/spec.py). A route without `@describe` still appears, flagged `x-undocumented`
(a test keeps that list empty).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub import __version__
from hub.api.access import PUBLIC, required_role, requires
from hub.api.jsonio import json_response
from hub.api.spec import ERROR_SCHEMA, Operation, describe, operation
from hub.auth.principal import Role

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_REASONS = {400: "Bad request: the error names the field", 401: "Missing or bad token",
            403: "The token's role is too low", 404: "Not found", 409: "Conflict",
            408: "The body took longer than api.body_timeout", 413: "Body too large",
            429: "Too many attempts; see Retry-After", 503: "Device unavailable",
            507: "The hub's disk is full: nothing was written (see /api/health)"}
OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)


def route_path(route: web.AbstractRoute) -> str | None:
    info = route.resource.get_info() if route.resource is not None else {}
    return info.get("path") or info.get("formatter")


def build_document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        path = route_path(route)
        if path is None or route.method in ("HEAD", "*"):
            continue  # HEAD mirrors GET; aiohttp adds it on its own
        paths.setdefault(_openapi_path(path), {})[route.method.lower()] = _operation(
            route, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Uone Hub local API", "version": __version__,
                 "description": "Authenticate with `Authorization: Bearer <token>` "
                                "(POST /api/auth/login). Errors: "
                                "{\"error\": {\"code\", \"message\", \"field\"?}}."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
    }


def _operation(route: web.AbstractRoute, path: str) -> dict[str, Any]:
    op = operation(route.handler) or Operation(
        getattr(route.handler, "__name__", "undocumented"))
    role = required_role(route.handler)
    out: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{_slug(path)}",
        "summary": op.summary,
        "tags": list(op.tags),
        "x-min-role": role if isinstance(role, str) else role.label,
    }
    if operation(route.handler) is None:
        out["x-undocumented"] = True
    if op.description:
        out["description"] = op.description
    if role == PUBLIC:
        out["security"] = []
    params = [{"name": n, "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
              for n in _PARAM.findall(path)]
    params += [{"name": n, "in": "query", "required": False, "schema": s}
               for n, s in op.query.items()]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {"application/json": {"schema": op.body}}}
    responses: dict[str, Any] = {}
    if op.websocket:
        responses["101"] = {"description": "Switching to the websocket protocol"}
    elif op.response is not None and op.status != 204:
        responses[str(op.status)] = {"description": "OK", "content": {
            "application/json": {"schema": op.response}}}
    else:
        responses[str(op.status)] = {"description": "OK"}
    errors = set(op.errors)
    if params or op.body is not None or op.websocket:
        errors.add(400)
    if op.body is not None:
        errors |= {408, 413}  # a body too large, or too slow (api.body_timeout)
    if route.method not in ("GET", "HEAD"):
        errors.add(507)  # the disk is full: nothing was written
    if role != PUBLIC:
        errors |= {401, 403}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    out["responses"] = responses
    return out


def _openapi_path(path: str) -> str:
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", _openapi_path(path).lower()).strip("_")


@requires(Role.GUEST)
@describe("This document", tags=("meta",), response={"type": "object"})
async def openapi(request: web.Request) -> web.Response:
    holder = request.app[OPENAPI_KEY]
    if "doc" not in holder:  # the router is frozen once the app runs: build once
        holder["doc"] = build_document(request.app)
    return json_response(holder["doc"])


def setup(app: web.Application) -> None:
    app[OPENAPI_KEY] = {}
    app.router.add_get("/api/openapi.json", openapi)
