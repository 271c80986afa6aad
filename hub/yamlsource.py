"""YAML read with positions: every value keeps its file:line:column for error messages.

We compose the node tree ourselves (libyaml's C composer when available) instead of using
`yaml.safe_load`, so that duplicate keys are errors, `!env NAME` reads the environment, and
every key path maps to the mark where it was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.errors import ConfigError, ConfigProblem

try:  # libyaml is 5-10x faster at composing large configs
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _Loader = yaml.SafeLoader

KeyPath = tuple[str | int, ...]


class _Invalid:
    """Stands for a value already reported as a problem, so it is not reported twice."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


@dataclass(slots=True)
class Document:
    """A parsed YAML file: its plain value and where each key path was written."""

    file: str
    value: Any
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def where(self, path: KeyPath) -> tuple[int, int]:
        """Line and column (1-based) of `path`, or of its nearest written parent."""
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        line, col = self.where(path)
        return ConfigProblem(self.file, line, col, format_path(path), message)


def show_value(value: Any) -> str:
    """How an unexpected value is named in an error: its kind, and itself when short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_file(path: str | os.PathLike[str], *, strict: bool = True) -> Document:
    """Read and compose one YAML file.

    Syntax errors always raise. Problems in well-formed YAML (duplicate keys, unset `!env`)
    raise when `strict`, else are left in `Document.problems` so that callers can report
    them together with the problems they find themselves.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        problem = ConfigProblem(str(p), 0, 0, "", f"cannot read: {exc.strerror}")
        raise ConfigError([problem]) from exc
    return load_text(text, str(p), strict=strict)


def load_text(text: str, file: str = "<string>", *, strict: bool = True) -> Document:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            [ConfigProblem(file, line, col, "", f"YAML syntax: {exc.problem or exc}")]
        ) from exc
    doc = Document(file, None)
    if node is not None:
        doc.value = _build(node, (), doc, doc.problems)
    else:
        doc.value = {}
    if doc.problems and strict:
        raise ConfigError(doc.problems)
    return doc


_scalar = yaml.constructor.SafeConstructor()


def _build(node: yaml.Node, path: KeyPath, doc: Document, problems: list[ConfigProblem]) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if node.tag == "!env":
        if not isinstance(node, yaml.ScalarNode):
            problems.append(doc.problem(path, "!env takes one environment variable name"))
            return INVALID
        name = str(node.value)
        if name not in os.environ:
            problems.append(doc.problem(path, f"environment variable {name} is not set"))
            return INVALID
        return os.environ[name]
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(doc.problem(path, "YAML merge keys (<<) are not supported"))
                continue
            key = None
            if isinstance(key_node, yaml.ScalarNode):
                key = _scalar.construct_object(key_node)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(
                    ConfigProblem(doc.file, line, col, format_path(path), "keys must be strings")
                )
                continue
            key = str(key)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first = doc.marks.get((*path, key), (0, 0))[0]
                problems.append(
                    ConfigProblem(
                        doc.file, line, col, format_path((*path, key)),
                        f"duplicate key (first defined on line {first})",
                    )
                )
                continue
            out[key] = _build(value_node, (*path, key), doc, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, problems) for i, item in enumerate(node.value)]
    try:
        return _scalar.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        problems.append(doc.problem(path, f"cannot read value: {exc.problem}"))
        return INVALID
