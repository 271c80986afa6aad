"""Automation definitions: parsed from plain data (YAML or JSON) into frozen value types.

`parse(raw)` checks the shape only (keys, types, ranges) and reports every problem with the
field path inside the definition; checks against the running hub (devices, attributes, privacy
scope, other automations, location) live in `hub.automation.checks`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import time as dtime
from typing import Any, ClassVar

from hub.automation.cron import CronSpec, parse_cron
from hub.yamlsource import show_value

Path = tuple[str | int, ...]

MODES = ("single", "restart", "queued", "parallel")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition, at a field path inside it."""

    path: Path
    message: str


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True, slots=True)
class Trigger:
    type: str
    path: Path
    device: str | None = None
    attribute: str | None = None
    event: str | None = None  # device event type, or "sunrise"/"sunset"
    has_from: bool = False
    from_: Any = None
    has_to: bool = False
    to: Any = None
    above: float | None = None
    below: float | None = None
    for_: float = 0.0
    at: dtime | None = None
    cron: CronSpec | None = None
    offset: float = 0.0
    available: bool | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    path: Path
    device: str | None = None
    attribute: str | None = None
    state: Any = None
    above: float | None = None
    below: float | None = None
    after: Any = None  # dtime for time windows, "sunrise"/"sunset" for sun
    before: Any = None
    after_offset: float = 0.0
    before_offset: float = 0.0
    weekdays: frozenset[int] = frozenset()
    children: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class SceneEntry:
    device: str
    command: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]


# -- actions: one small frozen type per kind (the runner has one step function per type) --


@dataclass(frozen=True, slots=True)
class CommandAction:
    """Send a command to a device."""

    type: ClassVar[str] = "command"
    path: Path
    device: str
    command: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SceneAction:
    """Bring several devices to a state at once (commands in parallel)."""

    type: ClassVar[str] = "scene"
    path: Path
    entries: tuple[SceneEntry, ...]


@dataclass(frozen=True, slots=True)
class DelayAction:
    """Wait a fixed time (durable: resumes with what remains after a restart)."""

    type: ClassVar[str] = "delay"
    path: Path
    seconds: float


@dataclass(frozen=True, slots=True)
class WaitAction:
    """Wait for one of some triggers, optionally with a timeout (durable as a delay)."""

    type: ClassVar[str] = "wait"
    path: Path
    triggers: tuple[Trigger, ...]
    timeout: float | None = None
    continue_on_timeout: bool = True


@dataclass(frozen=True, slots=True)
class IfAction:
    type: ClassVar[str] = "if"
    path: Path
    conditions: tuple[Condition, ...]
    then: tuple[Action, ...]
    else_: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class ChooseAction:
    type: ClassVar[str] = "choose"
    path: Path
    choices: tuple[Choice, ...]
    default: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class EventAction:
    """Publish an automation event on the bus (seen on websockets)."""

    type: ClassVar[str] = "event"
    path: Path
    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnableAction:
    type: ClassVar[str] = "enable"
    path: Path
    target: str


@dataclass(frozen=True, slots=True)
class DisableAction:
    type: ClassVar[str] = "disable"
    path: Path
    target: str


@dataclass(frozen=True, slots=True)
class NotifyAction:
    type: ClassVar[str] = "notify"
    path: Path
    message: str
    title: str = ""
    severity: str = "info"


Action = (CommandAction | SceneAction | DelayAction | WaitAction | IfAction | ChooseAction
          | EventAction | EnableAction | DisableAction | NotifyAction)


def sub_sequences(a: Action) -> tuple[tuple[Action, ...], ...]:
    """The action sequences nested inside `a` (branches of an if, options of a choose)."""
    if isinstance(a, IfAction):
        return (a.then, a.else_)
    if isinstance(a, ChooseAction):
        return (*(c.actions for c in a.choices), a.default)
    return ()


def action_conditions(a: Action) -> tuple[Condition, ...]:
    """The conditions `a` itself tests (not those of nested actions)."""
    if isinstance(a, IfAction):
        return a.conditions
    if isinstance(a, ChooseAction):
        return tuple(c for choice in a.choices for c in choice.conditions)
    return ()


@dataclass(frozen=True, slots=True)
class Automation:
    id: str
    name: str
    mode: str
    max: int
    enabled: bool
    triggers: tuple[Trigger, ...]
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    description: str = ""


class DefinitionError(Exception):
    """A definition has problems; all of them are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{format_path(p.path)}: {p.message}" for p in problems))


def parse(raw: Any) -> Automation:
    """Parse one automation definition or raise DefinitionError listing every problem."""
    p = _Parser()
    auto = p.automation(raw)
    if p.problems or auto is None:
        raise DefinitionError(p.problems or [Problem((), "invalid definition")])
    return auto


def parse_duration(value: Any) -> float:
    """Seconds from a number, "HH:MM:SS"/"MM:SS", or {hours, minutes, seconds}."""
    try:
        seconds = _seconds(value)
    except OverflowError:  # an integer too large for a float: far beyond the limit anyway
        seconds = math.inf
    if not (0 <= seconds <= 366 * 86400) or seconds != seconds:
        raise ValueError("a duration must be between 0 and 366 days")
    return seconds


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        parts = value.strip().split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"expected a duration like 90 or '00:01:30', got {value!r}")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            raise ValueError(f"expected a duration like 90 or '00:01:30', got {value!r}") from None
        seconds = 0.0
        for n in nums:
            seconds = seconds * 60 + n
    elif isinstance(value, dict):
        unknown = set(value) - {"days", "hours", "minutes", "seconds"}
        if unknown:
            raise ValueError(f"unknown duration key {sorted(unknown)[0]!r}")
        seconds = 0.0
        for key, mult in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
            v = value.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{key} must be a number")
            seconds += v * mult
    else:
        raise ValueError("expected a duration (seconds, 'HH:MM:SS' or a mapping)")
    return seconds


def parse_time_of_day(value: Any) -> dtime:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 86400:
        # YAML 1.1 reads 07:30 (unquoted) as sexagesimal minutes; accept it as h:m
        return dtime(value // 60, value % 60) if value < 1440 else dtime(value // 3600)
    if not isinstance(value, str):
        raise ValueError("expected a time of day like '07:30' or '07:30:15'")
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", value.strip())
    if not m:
        raise ValueError(f"expected a time of day like '07:30' or '07:30:15', got {value!r}")
    h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"not a time of day: {value!r}")
    return dtime(h, mi, s)


# -- the parser ----------------------------------------------------------------------------

_TRIGGER_KEYS: dict[str, set[str]] = {
    "state": {"device", "attribute", "from", "to", "for"},
    "numeric": {"device", "attribute", "above", "below", "for"},
    "event": {"device", "event"},
    "time": {"at"},
    "cron": {"cron"},
    "sun": {"event", "offset"},
    "hub_start": set(),
    "availability": {"device", "to", "for"},
}
_CONDITION_KEYS: dict[str, set[str]] = {
    "state": {"device", "attribute", "state"},
    "numeric": {"device", "attribute", "above", "below"},
    "time": {"after", "before", "weekdays"},
    "weekday": {"weekdays"},
    "sun": {"after", "before", "after_offset", "before_offset"},
    "and": {"conditions"},
    "or": {"conditions"},
    "not": {"conditions"},
}
_ACTION_KEYS: dict[str, set[str]] = {
    "command": {"device", "command", "params"},
    "scene": {"entries"},
    "delay": {"seconds"},
    "wait": {"triggers", "timeout", "continue_on_timeout"},
    "if": {"conditions", "then", "else"},
    "choose": {"options", "default"},
    "event": {"event", "data"},
    "enable": {"automation"},
    "disable": {"automation"},
    "notify": {"title", "message", "severity"},
}
_COMMON = {"type", "alias", "id"}


class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: Path, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, raw: Any, path: Path, kinds: dict[str, set[str]], what: str
                ) -> tuple[str, dict[str, Any]] | None:
        if not isinstance(raw, dict):
            self.bad(path, f"expected a mapping with a 'type' ({what})")
            return None
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in kinds:
            known = ", ".join(kinds)
            self.bad((*path, "type"), f"unknown {what} type {kind!r} (known: {known})")
            return None
        allowed = kinds[kind] | _COMMON
        for key in raw:
            if key not in allowed:
                self.bad((*path, key), f"unknown key for a {kind} {what} "
                         f"(allowed: {', '.join(sorted(allowed))})")
        return kind, raw

    def string(self, raw: dict[str, Any], key: str, path: Path, required: bool = True
               ) -> str | None:
        if key not in raw or raw[key] is None:
            if required:
                self.bad(path, f"missing required key '{key}'")
            return None
        v = raw[key]
        if not isinstance(v, str) or not v:
            self.bad((*path, key), f"expected a non-empty string, got {show_value(v)}")
            return None
        return v

    def number(self, raw: dict[str, Any], key: str, path: Path) -> float | None:
        if key not in raw or raw[key] is None:
            return None
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.bad((*path, key), f"expected a number, got {show_value(v)}")
            return None
        return float(v)

    def duration(self, raw: dict[str, Any], key: str, path: Path, default: float = 0.0
                 ) -> float:
        if key not in raw or raw[key] is None:
            return default
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self.bad((*path, key), str(exc))
            return default

    def seq(self, raw: Any, path: Path, what: str, required: bool) -> list[Any]:
        if raw is None:
            if required:
                self.bad(path, f"at least one {what} is required")
            return []
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            self.bad(path, f"expected a list of {what}s, got {show_value(raw)}")
            return []
        if required and not raw:
            self.bad(path, f"at least one {what} is required")
        return raw

    # automations

    def automation(self, raw: Any) -> Automation | None:
        if not isinstance(raw, dict):
            self.bad((), "an automation is a mapping")
            return None
        allowed = {"id", "name", "description", "mode", "max", "enabled", "triggers",
                   "conditions", "actions"}
        for key in raw:
            if key not in allowed:
                self.bad((key,), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        auto_id = self.string(raw, "id", ())
        if auto_id is not None and not ID_PATTERN.match(auto_id):
            self.bad(("id",), "use 1-64 of a-z 0-9 _ . - (starting with a letter or digit)")
        name = raw.get("name", auto_id or "")
        if not isinstance(name, str) or len(name) > 200:
            self.bad(("name",), "expected a string of at most 200 characters")
            name = ""
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.bad(("description",), "expected a string")
            description = ""
        mode = raw.get("mode", "single")
        if mode not in MODES:
            self.bad(("mode",), f"expected one of {', '.join(MODES)}, got {show_value(mode)}")
        max_runs = raw.get("max", 10)
        if isinstance(max_runs, bool) or not isinstance(max_runs, int) or not 1 <= max_runs <= 1000:
            self.bad(("max",), f"expected an integer 1-1000, got {show_value(max_runs)}")
            max_runs = 10
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.bad(("enabled",), f"expected a boolean, got {show_value(enabled)}")
            enabled = True
        triggers = self.triggers(raw.get("triggers"), ("triggers",), required=True)
        conditions = self.conditions(raw.get("conditions"), ("conditions",), 0)
        actions = self.actions(raw.get("actions"), ("actions",), 0, required=True)
        if self.problems:
            return None
        return Automation(auto_id or "", name or auto_id or "", mode, max_runs, enabled,
                          triggers, conditions, actions, description)

    # triggers

    def triggers(self, raw: Any, path: Path, required: bool) -> tuple[Trigger, ...]:
        out = []
        for i, item in enumerate(self.seq(raw, path, "trigger", required)):
            t = self.trigger(item, (*path, i))
            if t is not None:
                out.append(t)
        return tuple(out)

    def trigger(self, raw: Any, path: Path) -> Trigger | None:
        got = self.mapping(raw, path, _TRIGGER_KEYS, "trigger")
        if got is None:
            return None
        kind, r = got
        tid = r.get("id") if isinstance(r.get("id"), str) else None
        if kind in ("state", "numeric"):
            device = self.string(r, "device", path)
            attribute = self.string(r, "attribute", path)
            for_ = self.duration(r, "for", path)
            if kind == "state":
                return Trigger(kind, path, device, attribute, has_from="from" in r,
                               from_=r.get("from"), has_to="to" in r, to=r.get("to"),
                               for_=for_, id=tid)
            above, below = self.number(r, "above", path), self.number(r, "below", path)
            if above is None and below is None:
                self.bad(path, "a numeric trigger needs 'above' or 'below'")
            elif above is not None and below is not None and above >= below:
                self.bad((*path, "below"), "'below' must be greater than 'above'")
            return Trigger(kind, path, device, attribute, above=above, below=below,
                           for_=for_, id=tid)
        if kind == "event":
            return Trigger(kind, path, self.string(r, "device", path),
                           event=self.string(r, "event", path), id=tid)
        if kind == "time":
            if "at" not in r:
                self.bad(path, "missing required key 'at'")
                return None
            try:
                at = parse_time_of_day(r["at"])
            except ValueError as exc:
                self.bad((*path, "at"), str(exc))
                return None
            return Trigger(kind, path, at=at, id=tid)
        if kind == "cron":
            expr = self.string(r, "cron", path)
            if expr is None:
                return None
            try:
                spec = parse_cron(expr)
            except ValueError as exc:
                self.bad((*path, "cron"), str(exc))
                return None
            return Trigger(kind, path, cron=spec, id=tid)
        if kind == "sun":
            event = r.get("event")
            if event not in ("sunrise", "sunset"):
                self.bad((*path, "event"),
                         f"expected 'sunrise' or 'sunset', got {show_value(event)}")
            offset = self.signed_duration(r, "offset", path)
            return Trigger(kind, path, event=event, offset=offset, id=tid)
        if kind == "availability":
            to = r.get("to")
            if to not in ("available", "unavailable"):
                self.bad((*path, "to"),
                         f"expected 'available' or 'unavailable', got {show_value(to)}")
            return Trigger(kind, path, self.string(r, "device", path),
                           available=to == "available", for_=self.duration(r, "for", path),
                           id=tid)
        return Trigger(kind, path, id=tid)  # hub_start

    def signed_duration(self, r: dict[str, Any], key: str, path: Path) -> float:
        v = r.get(key)
        if v is None:
            return 0.0
        sign = 1.0
        if isinstance(v, str) and v.startswith("-"):
            sign, v = -1.0, v[1:]
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            sign, v = -1.0, -v
        try:
            return sign * parse_duration(v)
        except ValueError as exc:
            self.bad((*path, key), str(exc))
            return 0.0

    # conditions

    def conditions(self, raw: Any, path: Path, depth: int) -> tuple[Condition, ...]:
        out = []
        for i, item in enumerate(self.seq(raw, path, "condition", False)):
            c = self.condition(item, (*path, i), depth)
            if c is not None:
                out.append(c)
        return tuple(out)

    def condition(self, raw: Any, path: Path, depth: int) -> Condition | None:
        if depth > MAX_DEPTH:
            self.bad(path, f"conditions nest deeper than {MAX_DEPTH}")
            return None
        got = self.mapping(raw, path, _CONDITION_KEYS, "condition")
        if got is None:
            return None
        kind, r = got
        if kind in ("and", "or", "not"):
            children = self.conditions(r.get("conditions"), (*path, "conditions"), depth + 1)
            if not children and "conditions" not in r:
                self.bad(path, "missing required key 'conditions'")
            return Condition(kind, path, children=children)
        if kind == "state":
            device = self.string(r, "device", path)
            attribute = self.string(r, "attribute", path)
            if "state" not in r:
                self.bad(path, "missing required key 'state'")
            return Condition(kind, path, device, attribute, state=r.get("state"))
        if kind == "numeric":
            device = self.string(r, "device", path)
            attribute = self.string(r, "attribute", path)
            above, below = self.number(r, "above", path), self.number(r, "below", path)
            if above is None and below is None:
                self.bad(path, "a numeric condition needs 'above' or 'below'")
            return Condition(kind, path, device, attribute, above=above, below=below)
        if kind in ("time", "weekday"):
            after = before = None
            for key in ("after", "before") if kind == "time" else ():
                if key in r:
                    try:
                        value = parse_time_of_day(r[key])
                    except ValueError as exc:
                        self.bad((*path, key), str(exc))
                        continue
                    if key == "after":
                        after = value
                    else:
                        before = value
            days = self.weekdays(r, path, required=kind == "weekday")
            if kind == "time" and after is None and before is None and not days:
                self.bad(path, "a time condition needs 'after', 'before' or 'weekdays'")
            return Condition(kind, path, after=after, before=before, weekdays=days)
        # sun
        after, before = r.get("after"), r.get("before")
        for key, v in (("after", after), ("before", before)):
            if v is not None and v not in ("sunrise", "sunset"):
                self.bad((*path, key), f"expected 'sunrise' or 'sunset', got {show_value(v)}")
        if after is None and before is None:
            self.bad(path, "a sun condition needs 'after' or 'before'")
        return Condition(kind, path, after=after, before=before,
                         after_offset=self.signed_duration(r, "after_offset", path),
                         before_offset=self.signed_duration(r, "before_offset", path))

    def weekdays(self, r: dict[str, Any], path: Path, required: bool) -> frozenset[int]:
        raw = r.get("weekdays")
        if raw is None:
            if required:
                self.bad(path, "missing required key 'weekdays'")
            return frozenset()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            self.bad((*path, "weekdays"), "expected a list like [mon, tue]")
            return frozenset()
        out = set()
        for i, d in enumerate(raw):
            if d not in WEEKDAYS:
                self.bad((*path, "weekdays", i),
                         f"expected one of {', '.join(WEEKDAYS)}, got {show_value(d)}")
            else:
                out.add(WEEKDAYS.index(d))
        return frozenset(out)

    # actions

    def actions(self, raw: Any, path: Path, depth: int, required: bool = False
                ) -> tuple[Action, ...]:
        out = []
        for i, item in enumerate(self.seq(raw, path, "action", required)):
            a = self.action(item, (*path, i), depth)
            if a is not None:
                out.append(a)
        return tuple(out)

    def action(self, raw: Any, path: Path, depth: int) -> Action | None:
        if depth > MAX_DEPTH:
            self.bad(path, f"actions nest deeper than {MAX_DEPTH}")
            return None
        got = self.mapping(raw, path, _ACTION_KEYS, "action")
        if got is None:
            return None
        kind, r = got
        if kind == "command":
            params = r.get("params") or {}
            if not isinstance(params, dict):
                self.bad((*path, "params"), f"expected a mapping, got {show_value(params)}")
                params = {}
            return CommandAction(path, self.string(r, "device", path) or "",
                                 self.string(r, "command", path) or "", dict(params))
        if kind == "scene":
            entries = []
            for i, e in enumerate(self.seq(r.get("entries"), (*path, "entries"), "entry", True)):
                ep = (*path, "entries", i)
                if not isinstance(e, dict):
                    self.bad(ep, "expected a mapping with 'device' and 'command' or 'state'")
                    continue
                for key in e:
                    if key not in ("device", "command", "params", "state"):
                        self.bad((*ep, key), "unknown key (allowed: command, device, params, "
                                 "state)")
                device = self.string(e, "device", ep)
                command = self.string(e, "command", ep, required=False)
                state = e.get("state")
                if (command is None) == (state is None):
                    self.bad(ep, "a scene entry takes either 'command' or 'state'")
                if state is not None and (not isinstance(state, dict) or not state):
                    self.bad((*ep, "state"), "expected a mapping of attribute: value")
                    state = None
                params = e.get("params") or {}
                if not isinstance(params, dict):
                    self.bad((*ep, "params"), "expected a mapping")
                    params = {}
                entries.append(SceneEntry(device or "", command, dict(params), state))
            return SceneAction(path, tuple(entries))
        if kind == "delay":
            if "seconds" not in r:
                self.bad(path, "missing required key 'seconds'")
            return DelayAction(path, self.duration(r, "seconds", path))
        if kind == "wait":
            triggers = self.triggers(r.get("triggers"), (*path, "triggers"), required=True)
            for t in triggers:
                if t.type in ("hub_start",):
                    self.bad(t.path, "a wait cannot wait for hub_start")
            timeout = self.duration(r, "timeout", path, -1.0)
            cont = r.get("continue_on_timeout", True)
            if not isinstance(cont, bool):
                self.bad((*path, "continue_on_timeout"), "expected a boolean")
                cont = True
            return WaitAction(path, triggers, None if timeout < 0 else timeout, cont)
        if kind == "if":
            conditions = self.conditions(r.get("conditions"), (*path, "conditions"), depth + 1)
            if not conditions:
                self.bad(path, "an if needs 'conditions'")
            return IfAction(path, conditions,
                            self.actions(r.get("then"), (*path, "then"), depth + 1, True),
                            self.actions(r.get("else"), (*path, "else"), depth + 1))
        if kind == "choose":
            choices = []
            for i, o in enumerate(self.seq(r.get("options"), (*path, "options"), "option",
                                           True)):
                op = (*path, "options", i)
                if not isinstance(o, dict) or set(o) - {"conditions", "actions"}:
                    self.bad(op, "an option is a mapping with 'conditions' and 'actions'")
                    continue
                choices.append(Choice(
                    self.conditions(o.get("conditions"), (*op, "conditions"), depth + 1),
                    self.actions(o.get("actions"), (*op, "actions"), depth + 1, True)))
            return ChooseAction(path, tuple(choices),
                                self.actions(r.get("default"), (*path, "default"), depth + 1))
        if kind == "event":
            event = self.string(r, "event", path)
            data = r.get("data") or {}
            if not isinstance(data, dict):
                self.bad((*path, "data"), "expected a mapping")
                data = {}
            return EventAction(path, event or "", dict(data))
        if kind in ("enable", "disable"):
            target = self.string(r, "automation", path) or ""
            return EnableAction(path, target) if kind == "enable" else DisableAction(path, target)
        # notify
        message = self.string(r, "message", path)
        title = r.get("title", "")
        severity = r.get("severity", "info")
        if not isinstance(title, str):
            self.bad((*path, "title"), "expected a string")
        if severity not in ("info", "warning", "critical"):
            self.bad((*path, "severity"), "expected info, warning or critical")
        return NotifyAction(path, message or "", title if isinstance(title, str) else "",
                            str(severity))
