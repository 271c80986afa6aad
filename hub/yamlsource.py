"""YAML read with positions: every value keeps its file:line:column for error messages.

We compose the node tree ourselves (libyaml's C composer when available) instead of using
`yaml.safe_load`, so that duplicate keys are errors, `!env NAME` reads the environment, and
every key path maps to the mark where it was written.
"""

from __future__ import annotations

import os
import sys
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

    def forget(self, prefix: KeyPath) -> None:
        """Drop the positions under `prefix` once nothing will report problems there."""
        n = len(prefix)
        # a new dict: deleting keys would keep the table sized for every mark (thousands
        # for a large device list)
        self.marks = {p: m for p, m in self.marks.items() if not (p[:n] == prefix and len(p) > n)}

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
    doc = Document(file, None)
    try:
        value = _Builder(doc).run(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            [ConfigProblem(file, line, col, "", f"YAML syntax: {exc.problem or exc}")]
        ) from exc
    doc.value = {} if value is _EMPTY else value
    if doc.problems and strict:
        raise ConfigError(doc.problems)
    return doc


class _Scalars(yaml.constructor.SafeConstructor):
    """Builds scalars one node at a time without keeping them: SafeConstructor caches every
    node it builds until construct_document ends, which we never call (a leak of the whole
    node tree, several MB for a large config, found by measuring RSS)."""

    def scalar(self, node: yaml.Node) -> Any:
        try:
            return self.construct_object(node)
        finally:
            self.constructed_objects.clear()


_scalar = _Scalars()
_EMPTY: Any = object()
_MERGE = "tag:yaml.org,2002:merge"


class _Frame:
    __slots__ = ("first_line", "is_map", "key", "path", "skip", "value")

    def __init__(self, value: Any, path: KeyPath) -> None:
        self.value = value
        self.path = path
        self.is_map = isinstance(value, dict)
        self.key: str | None = None  # a mapping's key waiting for its value
        self.skip = False  # the pending value belongs to a rejected key: build, then drop

    def child_path(self) -> KeyPath:
        if self.is_map:
            return (*self.path, self.key if self.key is not None else "?")
        return (*self.path, len(self.value))


class _Builder:
    """Builds values straight from parser events, never holding the whole node tree: a
    1,000-device config composed into nodes first cost several MB of RSS that Python kept."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems = doc.problems
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        self.root: Any = _EMPTY

    def run(self, text: str) -> Any:
        loader = _Loader(text)
        try:
            while loader.check_event():
                self._event(loader, loader.get_event())
        finally:
            loader.dispose()
        return self.root

    def _event(self, loader: Any, ev: yaml.Event) -> None:
        if isinstance(ev, yaml.ScalarEvent):
            top = self.stack[-1] if self.stack else None
            if top is not None and top.is_map and top.key is None:
                self._key(loader, top, ev)
                return
            path = top.child_path() if top is not None else ()
            self._mark(path, ev)
            value = self._scalar_value(loader, ev, path)
            self._remember(ev, value)
            self._attach(value)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            top = self.stack[-1] if self.stack else None
            if top is not None and top.is_map and top.key is None:
                # a mapping or list used as a key
                line, col = _position(ev)
                self.problems.append(ConfigProblem(self.doc.file, line, col,
                                                   format_path(top.path),
                                                   "keys must be strings"))
                top.key, top.skip = "?", True
            path = top.child_path() if top is not None else ()
            self._mark(path, ev)
            if ev.tag == "!env":
                self.problems.append(self.doc.problem(
                    path, "!env takes one environment variable name"))
            container: Any = {} if isinstance(ev, yaml.MappingStartEvent) else []
            self.stack.append(_Frame(container, path))
            self._remember(ev, container)
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            self._attach(frame.value)
        elif isinstance(ev, yaml.AliasEvent):
            top = self.stack[-1] if self.stack else None
            value = self.anchors.get(ev.anchor or "")
            if top is not None and top.is_map and top.key is None:
                self._reject_key(top, ev, "keys must be strings")
                return
            self._mark(top.child_path() if top is not None else (), ev)
            self._attach(value)

    def _key(self, loader: Any, frame: _Frame, ev: yaml.ScalarEvent) -> None:
        node = self._node(loader, ev)
        if node.tag == _MERGE:
            self.problems.append(self.doc.problem(frame.path,
                                                  "YAML merge keys (<<) are not supported"))
            frame.key, frame.skip = "<<", True
            return
        try:
            key = _scalar.scalar(node)
        except yaml.constructor.ConstructorError:
            key = None
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            self._reject_key(frame, ev, "keys must be strings")
            return
        key = sys.intern(str(key))  # a device list repeats the same few keys thousands of times
        if key in frame.value:
            first = self.doc.marks.get((*frame.path, key), (0, 0))[0]
            self._reject_key(frame, ev, f"duplicate key (first defined on line {first})",
                             path=(*frame.path, key))
            return
        frame.key = key

    def _reject_key(self, frame: _Frame, ev: yaml.Event, message: str,
                    path: KeyPath | None = None) -> None:
        line, col = _position(ev)
        self.problems.append(ConfigProblem(self.doc.file, line, col,
                                           format_path(path or frame.path), message))
        frame.key, frame.skip = "?", True

    def _scalar_value(self, loader: Any, ev: yaml.ScalarEvent, path: KeyPath) -> Any:
        if ev.tag == "!env":
            name = str(ev.value)
            if name not in os.environ:
                self.problems.append(self.doc.problem(
                    path, f"environment variable {name} is not set"))
                return INVALID
            return os.environ[name]
        try:
            return _scalar.scalar(self._node(loader, ev))
        except yaml.constructor.ConstructorError as exc:
            self.problems.append(self.doc.problem(path, f"cannot read value: {exc.problem}"))
            return INVALID

    @staticmethod
    def _node(loader: Any, ev: yaml.ScalarEvent) -> yaml.ScalarNode:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        start: Any = ev.start_mark  # the C parser's Mark type, which the stubs keep apart
        end: Any = ev.end_mark
        return yaml.ScalarNode(tag, ev.value, start, end, style=ev.style)

    def _mark(self, path: KeyPath, ev: yaml.Event) -> None:
        top = self.stack[-1] if self.stack else None
        if top is not None and top.skip:
            return  # a rejected key's value: keep the first definition's position
        self.doc.marks[path] = _position(ev)

    def _remember(self, ev: yaml.Event, value: Any) -> None:
        anchor = getattr(ev, "anchor", None)
        if anchor:
            self.anchors[anchor] = value

    def _attach(self, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if top.is_map:
            if not top.skip and top.key is not None:
                top.value[top.key] = value
            top.key, top.skip = None, False
        else:
            top.value.append(value)


def _position(ev: yaml.Event) -> tuple[int, int]:
    """(line, column), from 1: the parser marks every event."""
    mark = ev.start_mark
    assert mark is not None
    return mark.line + 1, mark.column + 1
