"""JSON in and out: bodies read with a size limit and checked field by field.

Every JSON a client sends (request bodies, websocket messages) goes through `parse`, which
refuses what the rest of the hub cannot handle, naming where it is: nesting deeper than
MAX_DEPTH (recursion in every later walk over it), strings that are not Unicode text (a lone
surrogate cannot be encoded to UTF-8, so it cannot be stored or sent back), and numbers that
are not finite doubles (NaN, Infinity, a 401-digit integer).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Set
from typing import Any

import orjson
from aiohttp import web

from hub.api.keys import HUB_KEY
from hub.errors import RequestTimeout, ValidationError
from hub.fastjson import dumpb, dumps

__all__ = ["MAX_DEPTH", "check", "dumps", "field", "json_response", "number", "parse",
           "read_body", "read_json", "reject_unknown"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a client may send (an automation nested as deep as
its definitions may be, 8 blocks, needs about 36)."""


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(body=dumpb(obj), status=status, content_type="application/json",
                        charset="utf-8",
                        headers=headers)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; a 400 naming the problem otherwise."""
    if request.content_type != "application/json":
        raise ValidationError(None, "expected Content-Type: application/json")
    body = parse(await read_body(request))
    if not isinstance(body, dict):
        raise ValidationError(None, "expected a JSON object")
    return body


async def read_body(request: web.Request) -> bytes:
    """The raw body, within the size limit and `api.body_timeout`."""
    try:
        async with asyncio.timeout(request.app[HUB_KEY].config.api.body_timeout):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout("the request body took too long to arrive "
                             "(api.body_timeout)") from None


def check(value: Any) -> None:
    """What `parse` refuses, for a value a client sent in another format (YAML)."""
    _check(value)


def parse(raw: bytes | str) -> Any:
    """A client's JSON text as Python values, or a ValidationError naming the bad part.

    orjson parses without recursion (up to 1,024 levels) and refuses lone surrogates, NaN
    and numbers beyond a double; when it refuses, the lenient stdlib parser finds which
    field was bad so the answer can name it.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        value = _lenient(raw, exc)
    if _may_nest(raw):
        _check(value)
    return value


def number(body: dict[str, Any], name: str, *, lo: float, hi: float,
           required: bool = True, default: Any = None) -> Any:
    """A finite number field within [lo, hi]. Compared without converting to float, so a
    400-digit integer is out of range rather than an OverflowError."""
    if name not in body and not required:
        return default
    value = field(body, name, (int, float))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(name, "expected a finite number")
    if not lo <= value <= hi:
        raise ValidationError(name, f"must be within [{lo:g}, {hi:g}]")
    return value


def reject_unknown(body: dict[str, Any], allowed: Set[str]) -> None:
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


_LARGEST = 1.7976931348623157e308


def _may_nest(raw: bytes | str) -> bool:
    """Cheap: can this text hold more than MAX_DEPTH levels at all?"""
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{") > MAX_DEPTH
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def _lenient(raw: bytes | str, strict_error: ValueError) -> Any:
    """Parse what orjson refused with the stdlib, only to name the field orjson could not
    accept. The stdlib recurses: deeper than Python's recursion limit (about 1,000 levels,
    which orjson also refuses beyond 1,024) it stops at once with RecursionError."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValidationError(None, f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(None, f"malformed JSON: {strict_error}") from None
    _check(value)
    raise ValidationError(None, f"malformed JSON: {strict_error}")  # (nothing found: say why)


def _check(value: Any) -> None:
    """Walk without recursion; the first bad value raises, named by its JSON path."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _text(item, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(path or None, "expected a finite number")
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -_LARGEST <= item <= _LARGEST:
                raise ValidationError(path or None, "number out of range")
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise ValidationError(path or None,
                                      f"JSON nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not key.isascii() and not _encodable(key):
                        raise ValidationError(_join(path, _escaped(key)),
                                              "a name that is not valid Unicode text")
                    stack.append((sub, _join(path, key), depth + 1))
            else:
                stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))


def _text(s: str, where: str) -> None:
    if not s.isascii() and not _encodable(s):
        raise ValidationError(where or None, "not valid Unicode text (a lone surrogate?)")


def _encodable(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _escaped(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

