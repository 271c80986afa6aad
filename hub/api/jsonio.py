"""JSON in and out: bodies read with a size limit and checked field by field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.errors import ValidationError
from hub.fastjson import dumpb, dumps

__all__ = ["dumps", "field", "json_response", "read_json", "reject_unknown"]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(body=dumpb(obj), status=status, content_type="application/json",
                        charset="utf-8",
                        headers=headers)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; a 400 naming the problem otherwise."""
    if request.content_type != "application/json":
        raise ValidationError(None, "expected Content-Type: application/json")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(None, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError(None, "expected a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise ValidationError(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *,
          required: bool = True, default: Any = None) -> Any:
    if name not in body:
        if required:
            raise ValidationError(name, "required")
        return default
    value = body[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ValidationError(name, "expected a number")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValidationError(name, f"expected {_json_name(want)}")
    return value


def _json_name(py: str) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
            "dict": "an object", "list": "an array", "int/float": "a number"}.get(py, py)
