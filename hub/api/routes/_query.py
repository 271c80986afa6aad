"""Query-string parameters checked like JSON fields: a 400 naming the parameter."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from hub.errors import ValidationError


def query_int(request: web.Request, name: str, default: Any, *, lo: int = 0,
              hi: int = 1_000_000) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, "expected an integer") from None
    if not lo <= value <= hi:
        raise ValidationError(name, f"must be {lo}-{hi}")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValidationError(name, "expected true or false")


def query_time(request: web.Request, name: str) -> float | None:
    """A time in seconds since the epoch, or None when absent."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, "expected a number (seconds since the epoch)") from None
    if not math.isfinite(value) or value < 0:
        raise ValidationError(name, "expected a finite, non-negative number")
    return value
