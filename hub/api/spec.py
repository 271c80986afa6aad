"""Per-route OpenAPI declarations, kept next to the handlers: `@describe(...)`.

    @requires(Role.MEMBER)
    @describe("Read a device", tags=("devices",), response=DEVICE_SCHEMA,
              errors=(404,), query={"limit": {"type": "integer"}})
    async def get_device(request): ...

`GET /api/openapi.json` (hub/api/routes/openapi.py) walks the app's router and turns each
route plus its declaration into an OpenAPI 3.1 operation; path parameters, security and the
401/403 answers come from the route and its `@requires`. A test fails when a route has no
declaration, so a new route is documented when it is added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])
Schema = dict[str, Any]
_ATTR = "__uone_openapi__"

ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "field": {"type": "string"}},
    }},
}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the router cannot tell: summary, bodies, query parameters, extra answers."""

    summary: str
    tags: tuple[str, ...] = ()
    body: Schema | None = None  # JSON request body
    body_required: bool = True
    response: Schema | None = None  # 2xx JSON body; None with status 204 means no body
    status: int = 200
    query: Mapping[str, Schema] = field(default_factory=dict)
    errors: tuple[int, ...] = ()  # 4xx beyond 401/403 (added from @requires) and 400
    description: str = ""
    websocket: bool = False


def describe(summary: str, **kw: Any) -> Callable[[Handler], Handler]:
    """Attach the OpenAPI description of this handler (see Operation for the fields)."""
    op = Operation(summary, **kw)

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ATTR, op)
        return handler

    return mark


def operation(handler: object) -> Operation | None:
    return getattr(handler, _ATTR, None)


def obj(required: tuple[str, ...] | list[str] = (), *, extra: bool = False,
        **props: Schema) -> Schema:
    """A JSON object schema; unknown fields refused unless `extra`."""
    out: Schema = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = list(required)
    return out


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STR: Schema = {"type": "string"}
NUM: Schema = {"type": "number"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}


def nullable(schema: Schema) -> Schema:
    t = schema.get("type")
    if isinstance(t, str):
        return {**schema, "type": [t, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}
