"""YAML request bodies (automations written by hand on the dashboard): parsed safely, every
error a 400 that names line:column, and the positions kept so that a field the API refuses
later (`actions[0].device`) is named with the line where it was written.

Only what JSON can hold is accepted: no anchors or aliases (a few lines of them expand into
millions of items in every later walk), no tags, no dates or binary, string keys only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from hub.api.jsonio import MAX_DEPTH, check, read_body
from hub.errors import ValidationError

__all__ = ["YAML_TYPES", "YamlBody", "YamlError", "is_yaml", "read_yaml"]

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:int",
                         "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                         "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
                         "tag:yaml.org,2002:seq"})


class YamlError(ValidationError):
    """A 400 for a YAML body: the field (if known) and the line:column it was written at."""

    def __init__(self, field_name: str | None, message: str, line: int, column: int) -> None:
        self.line, self.column = line, column
        super().__init__(field_name, f"line {line}:{column}: {message}")

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "line": self.line, "column": self.column}


@dataclass(slots=True)
class YamlBody:
    """A YAML mapping as plain values, and where each field path (`a.b[0]`) was written."""

    value: dict[str, Any]
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)

    def located(self, exc: ValidationError) -> ValidationError:
        """`exc` with the line:column of its field (or of the nearest parent written)."""
        path = exc.field or ""
        while path and path not in self.marks:
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        line, column = self.marks.get(path, (1, 1))
        return YamlError(exc.field, str(exc), line, column)


def is_yaml(request: web.Request) -> bool:
    return request.content_type in YAML_TYPES


async def read_yaml(request: web.Request) -> YamlBody:
    """The request's YAML mapping; a YamlError naming line:column otherwise."""
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(None, f"the YAML body is not UTF-8 (byte {exc.start})") from None
    return parse_yaml(text)


def parse_yaml(text: str) -> YamlBody:
    loader = _SAFE(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlError(None, "expected a mapping (the automation), got nothing", 1, 1)
        body = YamlBody({})
        value = _build(loader, node, body.marks)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(None, f"YAML syntax: {exc.problem or exc}", line, col) from None
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        raise YamlError(None, "expected a mapping (the automation)", *_pos(node))
    try:
        check(value)
    except ValidationError as exc:
        raise body.located(exc) from None
    body.value = value
    return body


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(loader: Any, root: yaml.Node, marks: dict[str, tuple[int, int]]) -> Any:
    """Plain values from the node tree, without recursion; each node is seen once (an
    alias would be a second sighting)."""
    seen: set[int] = set()
    out: list[Any] = []
    # (node, path, depth, container to put the value in, key or index)
    stack: list[tuple[yaml.Node, str, int, Any, Any]] = [(root, "", 0, out, None)]
    while stack:
        node, path, depth, parent, slot = stack.pop()
        where = _pos(node)
        if id(node) in seen:
            raise YamlError(path or None, "anchors and aliases are not accepted", *where)
        seen.add(id(node))
        if node.tag not in _PLAIN_TAGS:
            raise YamlError(path or None, f"only plain YAML is accepted, not {node.tag}",
                            *where)
        marks[path] = where
        if depth > MAX_DEPTH:
            raise YamlError(path or None, f"nested deeper than {MAX_DEPTH} levels", *where)
        value: Any
        if isinstance(node, yaml.MappingNode):
            value = {}
            for key_node, sub in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != \
                        "tag:yaml.org,2002:str":
                    raise YamlError(path or None, "keys must be strings (quote on/off/yes/no)",
                                    *_pos(key_node))
                key = key_node.value
                if key in value:
                    raise YamlError(path or None, f"duplicate key {key!r}", *_pos(key_node))
                value[key] = None
                stack.append((sub, f"{path}.{key}" if path else key, depth + 1, value, key))
        elif isinstance(node, yaml.SequenceNode):
            value = [None] * len(node.value)
            stack.extend((sub, f"{path}[{i}]", depth + 1, value, i)
                         for i, sub in enumerate(node.value))
        else:
            value = loader.construct_object(node)
            if isinstance(value, float) and not math.isfinite(value):
                raise YamlError(path or None, "expected a finite number", *where)
        if slot is None and parent is out:
            out.append(value)
        else:
            parent[slot] = value
    return out[0]
