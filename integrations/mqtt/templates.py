"""Templates of the convention (`value_template`, `command_template`...) in a Jinja2 sandbox
with a bounded cost.

A template comes from whoever can publish on the broker, so it is hostile until proven
otherwise. jinja2.sandbox keeps it away from Python internals; on top of that:
- a template is at most 4 KB, has no macros, includes, imports or blocks, and nests at most
  two loops;
- every loop draws on one budget of iterations per rendering, `range` included, and a render
  stops past a time limit checked on each iteration;
- operators and calls that could build huge values (`*`, `**`, `%`, str.center/ljust/
  rjust/zfill/format widths, the `center`/`indent`/`wordwrap`/`format` filters) are capped;
- the output is cut off past a size limit.
A template that breaks any of these raises `TemplateError` with the reason; the caller marks
the entity as failing with it (the integration and the hub carry on).
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

MAX_SOURCE = 4096
MAX_LOOP_DEPTH = 2
MAX_ITERATIONS = 10_000
MAX_SECONDS = 0.05
MAX_OUTPUT = 64 * 1024
MAX_SIZE_ARG = 10_000  # widths, repeat counts, exponents
_FORBIDDEN = (nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport,
              nodes.Extends, nodes.Block, nodes.FilterBlock)
_SIZE_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format",
                           "format_map"})


class TemplateError(ValueError):
    """A template was refused or failed to render; the message says why."""


class _Budget:
    __slots__ = ("deadline", "left")

    def __init__(self) -> None:
        self.left = MAX_ITERATIONS
        self.deadline = time.perf_counter() + MAX_SECONDS

    def step(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateError(f"more than {MAX_ITERATIONS} loop iterations")
        if time.perf_counter() > self.deadline:
            raise TemplateError(f"took longer than {MAX_SECONDS * 1000:.0f} ms")


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "//"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, auto_reload=False, cache_size=0,
                         extensions=["jinja2.ext.loopcontrols"])
        self.budget: _Budget | None = None
        self.globals.update(range=self._range, iif=_iif, float=_float, int=_int, zip=zip,
                            dict=_DictHelper())
        self.globals.pop("lipsum", None)
        self.globals.pop("cycler", None)
        self.globals.pop("joiner", None)
        self.filters.update(
            _budget=self._iterate, from_json=_from_json, to_json=_to_json, tojson=_to_json,
            is_defined=_is_defined, float=_float, int=_int, iif=_iif,
            bitwise_and=lambda a, b: int(a) & int(b), bitwise_or=lambda a, b: int(a) | int(b),
            center=_capped_filter(self.filters["center"], 1),
            indent=_capped_filter(self.filters["indent"], 1),
            wordwrap=_capped_filter(self.filters["wordwrap"], 1),
            format=_format_filter, regex_findall=_regex_findall,
            regex_match=lambda v, p: bool(_regex(p).match(_regex_input(v))),
            regex_search=lambda v, p: bool(_regex(p).search(_regex_input(v))),
        )

    def _range(self, *args: int) -> Iterator[int]:
        return self._iterate(range(*args))

    def _iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        budget = self.budget
        for item in iterable:
            if budget is not None:
                budget.step()
            yield item

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*" and (isinstance(left, (str, list, tuple))
                                 or isinstance(right, (str, list, tuple))):
            count = right if isinstance(left, (str, list, tuple)) else left
            size = len(left if isinstance(left, (str, list, tuple)) else right)
            if isinstance(count, int) and count * max(size, 1) > MAX_OUTPUT:
                raise TemplateError("a repeated value would be too large")
        if operator_ == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise TemplateError("exponent too large")
        if operator_ == "%" and isinstance(left, str):
            _check_format_spec(left)
        return {"*": operator.mul, "**": operator.pow, "%": operator.mod,
                "//": operator.floordiv}[operator_](left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        name = getattr(bound, "__name__", "")
        owner = getattr(bound, "__self__", None)
        if isinstance(owner, str) and name in _SIZE_METHODS:
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and value > MAX_SIZE_ARG:
                    raise TemplateError(f"str.{name} width too large")
            if name in ("format", "format_map"):
                _check_format_spec(owner)
        return super().call(__context, __obj, *args, **kwargs)


class Templates:
    """Compiles (once per source) and renders the convention's templates."""

    def __init__(self) -> None:
        self._env = _Environment()
        self._cache: dict[str, Any] = {}
        self._lookups: dict[str, tuple[str, ...] | None] = {}
        self._json_of: tuple[str, Any] = ("\0", None)  # one device topic feeds many entities

    def compile(self, source: str) -> Any:
        """The compiled template, or TemplateError saying why it is refused."""
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        if len(source) > MAX_SOURCE:
            raise TemplateError(f"template longer than {MAX_SOURCE} characters")
        try:
            tree = self._env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"syntax error: {exc.message}") from None
        _check_tree(tree)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_budget", [], [], None, None,
                                     lineno=loop.lineno)
        try:
            template = self._env.from_string(tree)
        except Exception as exc:  # a compile error of a refused construct
            raise TemplateError(f"cannot compile: {exc}") from None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[source] = template
        return template

    def render(self, source: str, **variables: Any) -> str:
        """Render with a fresh budget; TemplateError if it is refused or fails."""
        template = self.compile(source)
        self._env.budget = _Budget()
        try:
            out = template.render(**variables)
        except TemplateError:
            raise
        except (SecurityError, UndefinedError) as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None
        except RecursionError:
            raise TemplateError("too deeply nested") from None
        except MemoryError:
            raise TemplateError("ran out of memory") from None
        except Exception as exc:  # ZeroDivisionError, TypeError... in the template's logic
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None
        finally:
            self._env.budget = None
        if len(out) > MAX_OUTPUT:
            raise TemplateError(f"output longer than {MAX_OUTPUT} characters")
        return out

    def render_value(self, source: str | None, payload: str) -> str:
        """A `value_template` applied to a received payload (`value`, `value_json`).

        The most common templates (`{{ value }}`, `{{ value_json.x }}`,
        `{{ value_json["x"] }}`: every Zigbee2MQTT sensor) are looked up directly, with the
        same result Jinja2 gives, at a fraction of the cost; the JSON of a payload is parsed
        once for all the entities reading it."""
        if source is None:
            return payload
        path = self._lookups.get(source, ())
        if path == ():
            path = self._lookups[source] = _simple_lookup(source)
            if len(self._lookups) > 4096:
                self._lookups.clear()
        if path is not None:
            if not path:
                return payload
            value = self._json(payload)
            for i, key in enumerate(path):
                if not isinstance(value, dict) or key not in value:
                    if i == len(path) - 1:
                        return ""  # what Jinja2 renders for an undefined value
                    raise TemplateError(f"UndefinedError: no {key!r} in the value")
                value = value[key]
            return str(value)
        return self.render(source, value=payload, value_json=self._json(payload))

    def _json(self, payload: str) -> Any:
        last, parsed = self._json_of
        if payload is last or payload == last:
            return parsed
        parsed = _json_or_none(payload)
        self._json_of = (payload, parsed)
        return parsed


_SIMPLE = re.compile(
    r"""^\{\{\s*value(?P<path>(?:_json(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:"[^"\\]*"|'[^'\\]*')\])+)?)\s*\}\}$""")
_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_]*)|\[(?:"([^"]*)"|'([^']*)')\]""")


def _simple_lookup(source: str) -> tuple[str, ...] | None:
    """The key path of `{{ value }}` / `{{ value_json.a["b"] }}`, or None for any other."""
    m = _SIMPLE.match(source.strip())
    if m is None:
        return None
    path = m.group("path") or ""
    if not path:
        return ()
    keys = tuple(a or b or c for a, b, c in _STEP.findall(path[len("_json"):]))
    # names Jinja2 would resolve as attributes of a dict (items, keys...) go the slow way
    if any(hasattr(dict, k) for k in keys):
        return None
    return keys


def _check_tree(tree: nodes.Template) -> None:
    for node in tree.find_all(_FORBIDDEN):
        raise TemplateError(f"{type(node).__name__.lower()} is not allowed in a template")
    if _loop_depth(tree) > MAX_LOOP_DEPTH:
        raise TemplateError(f"loops nested more than {MAX_LOOP_DEPTH} deep")


def _loop_depth(node: nodes.Node) -> int:
    deepest = 0
    for child in node.iter_child_nodes():
        deepest = max(deepest, _loop_depth(child))
    return deepest + (1 if isinstance(node, nodes.For) else 0)


def _check_format_spec(fmt: str) -> None:
    digits = 0
    for ch in fmt:
        if ch.isdigit():
            digits += 1
            if digits > 4:
                raise TemplateError("format width too large")
        else:
            digits = 0


def _capped_filter(original: Any, position: int):
    def capped(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[position:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SIZE_ARG:
                raise TemplateError("width too large")
        return original(*args, **kwargs)
    return capped


def _format_filter(value: str, *args: Any, **kwargs: Any) -> str:
    _check_format_spec(str(value))
    return str(value) % (kwargs or args)


class _DictHelper:
    """`dict.from_keys(pairs)` as the convention's templates use it (Zigbee2MQTT events)."""

    def from_keys(self, pairs: Any) -> dict[Any, Any]:
        return dict(pairs)


_MAX_REGEX_INPUT = 256


def _regex(pattern: Any) -> re.Pattern[str]:
    """Compile a template's regular expression, refusing the shapes that backtrack without
    bound (a repeated group, more than two unbounded quantifiers)."""
    text = str(pattern)
    if len(text) > 256:
        raise TemplateError("regular expression longer than 256 characters")
    if re.search(r"\)[*+{]", text):
        raise TemplateError("repeated groups are not allowed in a regular expression")
    if len(re.findall(r"(?<!\\)[*+]|\{\d*,\}", text)) > 2:
        raise TemplateError("more than two unbounded repeats in a regular expression")
    try:
        return re.compile(text)
    except re.error as exc:
        raise TemplateError(f"bad regular expression: {exc}") from None


def _regex_input(value: Any) -> str:
    text = str(value)
    if len(text) > _MAX_REGEX_INPUT:
        raise TemplateError(f"regular expression input longer than {_MAX_REGEX_INPUT}")
    return text


def _regex_findall(value: Any, pattern: Any = "", ignorecase: bool = False) -> list[Any]:
    return _regex(pattern).findall(_regex_input(value))


def _json_or_none(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _from_json(value: Any) -> Any:
    return json.loads(value)


def _to_json(value: Any, **_: Any) -> str:
    return json.dumps(value)


def _is_defined(value: Any) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        raise TemplateError("a value the template needs is missing")
    return value


def _iif(value: Any, if_true: Any = True, if_false: Any = False, if_none: Any = None) -> Any:
    if value is None and if_none is not None:
        return if_none
    return if_true if value else if_false


def _float(value: Any, default: Any = None) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        if default is None:
            raise TemplateError(f"{str(value)[:40]!r} is not a number") from None
        return default


def _int(value: Any, default: Any = None, base: int = 10) -> Any:
    try:
        if isinstance(value, str):
            return int(value, base) if base != 10 else int(float(value))
        return int(value)
    except (TypeError, ValueError):
        if default is None:
            raise TemplateError(f"{str(value)[:40]!r} is not an integer") from None
        return default
