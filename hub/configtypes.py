"""Typed config sections: decode YAML into frozen dataclasses and describe them as JSON Schema.

A section is a frozen dataclass whose fields use `option(...)` for defaults, documentation
and bounds. `decode` reports every problem at once, each with file:line:column and key path,
and `json_schema` derives the editor schema from the same classes, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from hub.errors import ConfigError, ConfigProblem
from hub.yamlsource import INVALID, Document, KeyPath
from hub.yamlsource import show_value as shown

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    doc: str = "",
    min: float | None = None,
    max: float | None = None,
    pattern: str | None = None,
    factory: Any = _MISSING,
    secret: bool = False,
) -> Any:
    """A config field with its documentation and bounds."""
    meta = {"doc": doc, "min": min, "max": max, "pattern": pattern, "secret": secret}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def decode(cls: type[T], doc: Document, path: KeyPath = (), value: Any = _MISSING) -> T:
    """Decode `doc.value` (or `value` at `path`) into `cls`; raise ConfigError with all problems."""
    problems: list[ConfigProblem] = []
    result = _decode(cls, doc.value if value is _MISSING else value, path, doc, problems)
    if problems:
        raise ConfigError(problems)
    return result


def decode_into(
    cls: type[T], value: Any, path: KeyPath, doc: Document, problems: list[ConfigProblem]
) -> T | None:
    """Like `decode` but appends to `problems` (for callers that collect across sections)."""
    return _decode(cls, value, path, doc, problems)


def json_schema(cls: type) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for a config dataclass."""
    schema = _schema(cls)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " or ".join(repr(m.value) for m in tp)
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _decode(tp: Any, value: Any, path: KeyPath, doc: Document, problems: list) -> Any:
    origin = get_origin(tp)
    if value is INVALID:
        return None
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _decode(non_none[0], value, path, doc, problems)
        for arg in non_none:  # first alternative that decodes cleanly wins
            trial: list = []
            out = _decode(arg, value, path, doc, trial)
            if not trial:
                return out
        problems.append(doc.problem(path, f"expected {_type_name(tp)}, got {shown(value)}"))
        return None
    if origin is Literal:
        if value in get_args(tp) and not isinstance(value, bool):
            return value
        problems.append(doc.problem(path, f"expected one of {_type_name(tp)}, got {shown(value)}"))
        return None
    if origin is list:
        if not isinstance(value, list):
            problems.append(doc.problem(path, f"expected {_type_name(tp)}, got {shown(value)}"))
            return []
        (item,) = get_args(tp)
        return [_decode(item, v, (*path, i), doc, problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(doc.problem(path, f"expected {_type_name(tp)}, got {shown(value)}"))
            return {}
        _, item = get_args(tp)
        return {k: _decode(item, v, (*path, k), doc, problems) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, path, doc, problems)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            problems.append(
                doc.problem(path, f"expected one of {_type_name(tp)}, got {shown(value)}")
            )
            return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (bool, int, float, str):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
        problems.append(doc.problem(path, f"expected {_type_name(tp)}, got {shown(value)}"))
        return None
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in a section definition


def _decode_dataclass(cls: type, value: Any, path: KeyPath, doc: Document, problems: list) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(doc.problem(path, f"expected a mapping, got {shown(value)}"))
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for key in value:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(doc.problem((*path, key), f"unknown key (expected one of: {known})"))
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for name, f in fields.items():
        if name not in value:
            if f.default is _MISSING and f.default_factory is _MISSING:
                problems.append(doc.problem(path, f"missing required key '{name}'"))
            continue
        out = _decode(hints[name], value[name], (*path, name), doc, problems)
        _check_bounds(f, out, (*path, name), doc, problems)
        kwargs[name] = out
    if len(problems) != before:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(doc.problem(path, str(exc)))
        return None
    return obj


def _check_bounds(f: dataclasses.Field, value: Any, path: KeyPath, doc: Document, problems: list):
    meta = f.metadata
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if meta.get("min") is not None and value < meta["min"]:
            problems.append(doc.problem(path, f"must be >= {meta['min']}, got {value}"))
        if meta.get("max") is not None and value > meta["max"]:
            problems.append(doc.problem(path, f"must be <= {meta['max']}, got {value}"))
    if isinstance(value, str) and meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
        problems.append(doc.problem(path, f"must match {meta['pattern']!r}, got {value!r}"))


def _schema(tp: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a) for a in get_args(tp)]}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is list:
        return {"type": "array", "items": _schema(get_args(tp)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(get_args(tp)[1])}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            s = _schema(hints[f.name])
            meta = f.metadata
            if meta.get("doc"):
                s["description"] = meta["doc"]
            if meta.get("min") is not None:
                s["minimum"] = meta["min"]
            if meta.get("max") is not None:
                s["maximum"] = meta["max"]
            if meta.get("pattern"):
                s["pattern"] = meta["pattern"]
            if f.default is not _MISSING and _jsonable(f.default):
                s["default"] = f.default.value if isinstance(f.default, enum.Enum) else f.default
            if f.default is _MISSING and f.default_factory is _MISSING:
                required.append(f.name)
            props[f.name] = s
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if tp.__doc__:
            out["description"] = tp.__doc__.strip().splitlines()[0]
        if required:
            out["required"] = required
        return out
    return {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
            str: {"type": "string"}}[tp]


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, enum.Enum))
