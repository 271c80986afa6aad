"""The automation engine: definitions from YAML and the API, an index of triggers by what they
listen to, runs with modes, in-memory traces persisted in batches, and durable timers.

Speed: a device event costs one dict lookup per (device, attribute) and work only for the
triggers that listen to it; the trigger path never touches the database (timers and traces
are queued for the batching writer).

Durability: delays, waits and `for:` timers are stored with their wall-clock deadline and
resume with the time that remains after a restart; a time trigger missed while the hub was
down runs once at start if it is within `automation.missed_trigger_grace`, traced as late.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.automation import storage as sql
from hub.automation.checks import (
    check,
    may_read_attribute,
    may_read_availability,
    may_read_event,
    referenced_devices,
    scene_commands,
)
from hub.automation.cron import next_cron
from hub.automation.events import AutomationEvent
from hub.automation.listeners import SCHEDULED, Listener, in_range
from hub.automation.model import (
    Action,
    Automation,
    Condition,
    DefinitionError,
    Problem,
    Trigger,
    format_path,
    parse,
)
from hub.automation.sun import NoLocation, home_location, next_sun, next_time_of_day, sun_event
from hub.automation.trace import TRACES_KEPT, StoredTrace, Trace
from hub.bus import (
    AvailabilityChanged,
    DeviceEvent,
    DeviceRegistryChanged,
    HubStarted,
    Notification,
    StateChanged,
)
from hub.deadlines import Deadlines
from hub.errors import ConfigError, Conflict, DeviceUnavailable, NotFound, ValidationError
from hub.fastjson import dumps
from hub.yamlsource import Document, KeyPath, load_file

if TYPE_CHECKING:
    from hub.automation.config import AutomationConfig
    from hub.automation.sun import ConsentedLocation
    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.commands import CommandSink
    from hub.config import LoadedConfig, LocationConfig
    from hub.devices import DeviceRegistry
    from hub.state import StateStore
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

TRACES_PER_BATCH = 200  # a few ms of JSON encoding per commit, so p99 stays low
HEARTBEAT_EVERY = 30.0
CLOCK_STEP = 5.0  # seconds of wall/monotonic disagreement that count as a clock step
AUTOMATIONS_FILE = "automations.yaml"


class _StopRun(Exception):
    """A wait timed out without continue_on_timeout: the run ends, not as an error."""


class _ActionFailed(Exception):
    def __init__(self, action: Action, exc: BaseException) -> None:
        self.action = action
        super().__init__(f"{format_path(action.path)}: {_describe(exc)}")


# -- automations as the hub knows them -----------------------------------------------------


@dataclass(eq=False, slots=True)
class Entry:
    """One automation: its definition, whether it can run (and why not), and its runs."""

    id: str
    source: str  # "yaml" | "api"
    raw: Any
    automation: Automation | None
    parse_problems: list[Problem]
    doc: Document | None = None
    base: KeyPath = ()
    enabled: bool = True
    problems: list[Problem] = field(default_factory=list)
    digest: str = ""
    devices: frozenset[str] = frozenset()
    listeners: list[Listener] = field(default_factory=list)
    running: list[_Run] = field(default_factory=list)
    queue: deque[tuple[dict[str, Any], bool]] = field(default_factory=deque)
    traces: deque[Trace | StoredTrace] = field(default_factory=lambda: deque(maxlen=TRACES_KEPT))
    skipped: int = 0
    runs: int = 0
    last_run: float | None = None
    created_at: float | None = None

    @property
    def valid(self) -> bool:
        return self.automation is not None and not self.parse_problems and not self.problems

    @property
    def where(self) -> str | None:
        if self.doc is None:
            return None
        line, col = self.doc.where(self.base)
        return f"{self.doc.file}:{line}:{col}"

    def errors(self) -> list[dict[str, Any]]:
        out = []
        for p in [*self.parse_problems, *self.problems]:
            item: dict[str, Any] = {"field": format_path(p.path), "message": p.message}
            if self.doc is not None:
                line, col = self.doc.where((*self.base, *p.path))
                item["where"] = f"{self.doc.file}:{line}:{col}"
            out.append(item)
        return out

    def error_text(self) -> str:
        parts = []
        for e in self.errors():
            where = f"{e['where']}: " if "where" in e else ""
            parts.append(f"{where}automation {self.id!r}: {e['field'] or '<root>'}: "
                         f"{e['message']}")
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        a = self.automation
        return {
            "id": self.id, "name": a.name if a else self.id,
            "description": a.description if a else "",
            "source": self.source, "where": self.where, "enabled": self.enabled,
            "valid": self.valid, "errors": self.errors(),
            "mode": a.mode if a else None, "max": a.max if a else None,
            "running": len(self.running), "queued": len(self.queue), "runs": self.runs,
            "skipped": self.skipped, "last_run": self.last_run, "definition": self.raw,
        }


@dataclass(eq=False, slots=True)
class _Run:
    id: str
    entry: Entry
    trace: Trace
    resume: tuple[tuple[str | int, ...], float | None] | None = None
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _digest(raw: Any) -> str:
    return hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the engine ----------------------------------------------------------------------------


class AutomationEngine:
    """All automations of the hub. Started after integrations, stopped before them."""

    def __init__(self, config: AutomationConfig, *, location: LocationConfig,
                 loaded: LoadedConfig, db: Database, bus: EventBus, clock: Clock,
                 devices: DeviceRegistry, states: StateStore, integrations: CommandSink,
                 privacy: ConsentedLocation | None) -> None:
        """`loaded` is where YAML automations come from (the config and its positions);
        `integrations` runs validated commands; `privacy` gates the home's location."""
        self.loaded = loaded
        self.db = db
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.states = states
        self.integrations = integrations
        self.privacy = privacy
        self.location = location
        self.grace = config.missed_trigger_grace
        self.command_timeout = config.command_timeout
        self._deadlines = Deadlines(self.command_timeout)  # one timer for every command
        self.tz = _zone(location.time_zone)
        self._entries: dict[str, Entry] = {}
        self.load_errors: list[str] = []
        self._state_idx: dict[str, dict[str, tuple[Listener, ...]]] = {}
        self._event_idx: dict[str, dict[str, tuple[Listener, ...]]] = {}
        self._avail_idx: dict[str, tuple[Listener, ...]] = {}
        self._start_listeners: tuple[Listener, ...] = ()
        self._dynamic: set[Listener] = set()
        self._bus_subs: dict[tuple[type, str], Callable[[], None]] = {}
        self._unsubs: list[Callable[[], None]] = []
        # cancelled runs of automations that may no longer be listed, until they end
        self._ending: set[asyncio.Task[None]] = set()
        self._unsaved: dict[str, deque[Trace]] = {}
        self._saved_timers: dict[str, Any] = {}
        self._fired: dict[tuple[str, int], float] = {}
        self._heartbeat: Any = None
        self._last_alive: float | None = None
        self._last_beat: tuple[float, float] | None = None
        self._seq = itertools.count(1)
        self._boot = secrets.token_hex(3)
        self._stopping = False
        self.started = False

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        """A wall-clock timer from the hub's clock (or the loop, for clocks without one)."""
        call_at = getattr(self.clock, "call_at", None)
        if call_at is not None:
            return call_at(when, callback)
        delay = max(0.0, when - self.clock.time())
        return asyncio.get_running_loop().call_later(delay, callback)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        db = self.db
        self._stopping = False
        stored = await db.fetchall("SELECT * FROM automations ORDER BY created_at")
        enabled = {r["id"]: bool(r["enabled"])
                   for r in await db.fetchall("SELECT * FROM automation_enabled")}
        self._saved_timers = {r["id"]: r for r in await db.fetchall(
            "SELECT * FROM automation_timers")}
        self._fired = {(r["automation_id"], r["trigger"]): r["ts"]
                       for r in await db.fetchall("SELECT * FROM automation_fired")}
        row = await db.fetchone("SELECT value FROM automation_meta WHERE key = 'heartbeat'")
        self._last_alive = row["value"] if row else None

        for entry in self._yaml_entries():
            if entry.id in self._entries:
                first = self._entries[entry.id].where
                entry.parse_problems.append(Problem(("id",), f"duplicate id (first at {first})"))
                entry.id = f"{entry.id}@{entry.where}"
            self._entries[entry.id] = entry
        for r in stored:
            entry = self._entry(json.loads(r["definition"]), "api")
            entry.created_at = r["created_at"]
            if entry.id in self._entries:
                entry.parse_problems.append(Problem(("id",), "also defined in YAML "
                                                    f"({self._entries[entry.id].where})"))
                entry.id = f"{entry.id}@api"
            self._entries[entry.id] = entry
        for entry in self._entries.values():
            if entry.id in enabled:
                entry.enabled = enabled[entry.id]
        traces = await db.fetchall(
            "SELECT automation_id, trace FROM automation_traces ORDER BY started")
        for r in traces:
            e = self._entries.get(r["automation_id"])
            if e is not None:
                e.traces.append(StoredTrace(json.loads(r["trace"])))

        self._revalidate(self._entries.values())
        for entry in self._entries.values():
            if not entry.valid:
                _LOG.error("automation not loaded:\n%s", entry.error_text())
        bus = self.bus
        self._unsubs.append(bus.subscribe(DeviceRegistryChanged, self._on_device_changed))
        self._unsubs.append(bus.subscribe(HubStarted, self._on_hub_started))
        from hub.privacy.center import LocationChanged  # the privacy area gates coordinates
        from hub.privacy.consent import ConsentChanged

        self._unsubs.append(bus.subscribe(LocationChanged, self._on_location_changed))
        self._unsubs.append(bus.subscribe(ConsentChanged, self._on_consent_changed))
        self._unsubs.append(db.add_flush_hook(self._flush_traces))
        for entry in self._entries.values():
            self._activate(entry)
        self._reindex()
        self._resume_runs()
        self._run_missed()
        for stale in list(self._saved_timers):
            self.drop_timer(stale)
        self._saved_timers = {}
        self._beat()
        self.started = True
        _LOG.info("automations: %d loaded, %d invalid", len(self._entries),
                  sum(1 for e in self._entries.values() if not e.valid))

    async def stop(self) -> None:
        self._stopping = True
        self.started = False
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for unsub in self._bus_subs.values():
            unsub()
        self._bus_subs.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        for entry in self._entries.values():
            self._deactivate(entry, keep_rows=True)
        for listener in list(self._dynamic):
            listener.disarm()
            listener.cancel_for(keep_row=True)
        tasks = set(self._ending)
        for entry in self._entries.values():
            for run in entry.running:
                run.cancel_reason = "interrupted"
                if run.task is not None:
                    tasks.add(run.task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._deadlines.close()
        db = self.db
        db.enqueue(sql.HEARTBEAT, (self.clock.time(),))
        for row in self._flush_traces(limit=1 << 30):
            db.enqueue_many(*row)
        await db.flush()

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self):
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, automation_id: str) -> Entry:
        try:
            return self._entries[automation_id]
        except KeyError:
            raise NotFound(f"no automation {automation_id!r}") from None

    def traces(self, automation_id: str) -> list[dict[str, Any]]:
        return [t.to_json() for t in reversed(self.get(automation_id).traces)]

    # -- changing (API) ----------------------------------------------------------------------

    async def create(self, raw: Any) -> Entry:
        if not isinstance(raw, dict):
            raise ValidationError(None, "expected an automation object")
        raw = dict(raw)
        raw.setdefault("id", uuid.uuid4().hex[:12])
        if isinstance(raw["id"], str) and raw["id"] in self._entries:
            raise Conflict(f"automation {raw['id']!r} already exists")
        entry = self._checked_api_entry(raw)
        now = self.clock.time()
        entry.created_at = now
        await self.db.write_script([
            ("INSERT INTO automations(id, definition, created_at, updated_at) VALUES(?,?,?,?)",
             (entry.id, json.dumps(raw), now, now)),
            ("DELETE FROM automation_enabled WHERE id = ?", (entry.id,)),
        ])
        self._entries[entry.id] = entry
        self._after_change(entry)
        return entry

    async def replace(self, automation_id: str, raw: Any) -> Entry:
        old = self.get(automation_id)
        self._writable(old)
        if not isinstance(raw, dict):
            raise ValidationError(None, "expected an automation object")
        raw = dict(raw)
        if raw.setdefault("id", automation_id) != automation_id:
            raise ValidationError("id", "the id in the body must match the path")
        entry = self._checked_api_entry(raw)
        now = self.clock.time()
        await self.db.write_script([
            ("UPDATE automations SET definition = ?, updated_at = ? WHERE id = ?",
             (json.dumps(raw), now, automation_id)),
            ("DELETE FROM automation_enabled WHERE id = ?", (automation_id,)),
            ("DELETE FROM automation_timers WHERE automation_id = ?", (automation_id,)),
        ])
        self._deactivate(old)
        self._cancel_runs(old, "replaced")
        entry.traces, entry.created_at = old.traces, old.created_at
        entry.runs, entry.last_run = old.runs, old.last_run
        self._entries[automation_id] = entry
        self._after_change(entry)
        return entry

    async def delete(self, automation_id: str) -> None:
        entry = self.get(automation_id)
        self._writable(entry)
        await self.db.write_script([
            (f"DELETE FROM {table} WHERE {col} = ?", (automation_id,))
            for table, col in (("automations", "id"), ("automation_enabled", "id"),
                               ("automation_traces", "automation_id"),
                               ("automation_timers", "automation_id"),
                               ("automation_fired", "automation_id"))
        ])
        self._deactivate(entry)
        self._cancel_runs(entry, "deleted")
        del self._entries[automation_id]
        self._unsaved.pop(automation_id, None)
        self._revalidate(self._entries.values())
        self._resync_all()

    async def set_enabled(self, automation_id: str, enabled: bool) -> Entry:
        entry = self._set_enabled(automation_id, enabled)
        await self.db.flush()
        return entry

    def trigger(self, automation_id: str, data: dict[str, Any] | None = None,
                skip_conditions: bool = False) -> str | None:
        """Run an automation now (mode rules apply); return the run id, or None if skipped."""
        entry = self.get(automation_id)
        if not entry.valid:
            raise Conflict(f"automation {automation_id!r} cannot run:\n{entry.error_text()}")
        payload = {"type": "manual", "data": data or {}, "ts": self.clock.time()}
        run = self._fire(entry, payload, force=True, skip_conditions=skip_conditions)
        return run.id if run else None

    # -- loading and validation --------------------------------------------------------------

    def _yaml_entries(self) -> list[Entry]:
        sources, errors = yaml_sources(self.loaded.config.automations,
                                       self.loaded.document, Path(self.loaded.path))
        self.load_errors.extend(errors)
        for error in errors:
            _LOG.error("automations not loaded: %s", error)
        return [self._entry(raw, "yaml", doc, base) for raw, doc, base in sources]

    def _entry(self, raw: Any, source: str, doc: Document | None = None,
               base: KeyPath = ()) -> Entry:
        try:
            auto: Automation | None = parse(raw)
            problems: list[Problem] = []
        except DefinitionError as exc:
            auto, problems = None, exc.problems
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        if auto is not None:
            entry_id = auto.id
        elif isinstance(raw_id, str) and raw_id:
            entry_id = raw_id
        else:
            line = doc.where(base)[0] if doc is not None else 0
            entry_id = f"invalid-{Path(doc.file).name if doc else 'api'}-{line}"
        entry = Entry(entry_id, source, raw, auto, problems, doc, base,
                      enabled=auto.enabled if auto else True, digest=_digest(raw))
        if auto is not None:
            entry.devices = frozenset(referenced_devices(auto))
        return entry

    def _checked_api_entry(self, raw: dict[str, Any]) -> Entry:
        try:
            json.dumps(raw, allow_nan=False)
        except ValueError:
            raise ValidationError(None, "numbers must be finite") from None
        entry = self._entry(raw, "api")
        if entry.automation is not None:
            autos = {k: e.automation for k, e in self._entries.items()
                     if e.automation is not None and not e.parse_problems}
            autos[entry.id] = entry.automation
            entry.problems = check(entry.automation, self.devices.find, autos,
                                   self._location_missing)
        problems = [*entry.parse_problems, *entry.problems]
        if problems:
            first = problems[0]
            lines = [f"{format_path(p.path) or '<root>'}: {p.message}" for p in problems]
            raise ValidationError(format_path(first.path) or None,
                                  f"automation {entry.id!r}: " + "; ".join(lines))
        return entry

    def _revalidate(self, entries: Iterable[Entry]) -> None:
        autos = {k: e.automation for k, e in self._entries.items()
                 if e.automation is not None and not e.parse_problems}
        for entry in entries:
            if entry.automation is None or entry.parse_problems:
                continue
            entry.problems = check(entry.automation, self.devices.find, autos,
                                   self._location_missing)

    def _location_missing(self) -> str | None:
        try:
            home_location(self.privacy, self.location)
        except NoLocation as exc:
            return str(exc)
        return None

    def _writable(self, entry: Entry) -> None:
        if entry.source == "yaml":
            raise Conflict(f"automation {entry.id!r} is defined in YAML ({entry.where}) and "
                           "is read-only through the API")

    def _after_change(self, entry: Entry) -> None:
        self._revalidate(self._entries.values())
        self._resync_all()

    def _resync_all(self) -> None:
        for e in self._entries.values():
            active = bool(e.listeners)
            if active != (e.enabled and e.valid):
                if active:
                    self._deactivate(e)
                else:
                    self._activate(e)
        self._reindex()

    def _set_enabled(self, automation_id: str, enabled: bool) -> Entry:
        entry = self.get(automation_id)
        if entry.enabled != enabled:
            entry.enabled = enabled
            if not enabled:
                self._deactivate(entry)
                self._cancel_runs(entry, "disabled")
            else:
                self._activate(entry)
            self._reindex()
        self.db.enqueue(
            "INSERT OR REPLACE INTO automation_enabled(id, enabled) VALUES(?, ?)",
            (automation_id, int(enabled)))
        return entry

    # -- device changes: privacy scope, restriction, removal ---------------------------------

    def _on_device_changed(self, ev: DeviceRegistryChanged) -> None:
        affected = [e for e in self._entries.values() if ev.device_id in e.devices]
        if not affected:
            return
        before = {e.id: e.valid for e in affected}
        self._revalidate(affected)
        for e in affected:
            if before[e.id] and not e.valid:
                _LOG.warning("automation %r stopped after device %s changed:\n%s", e.id,
                             ev.device_id, e.error_text())
                self._cancel_runs(e, "invalid")
        self._resync_all()

    def _on_location_changed(self, _ev: Any) -> None:
        """Consent given or withdrawn, or coordinates moved: sun automations follow."""
        self._revalidate(self._entries.values())
        self._resync_all()
        self._rearm_schedules()

    def _on_consent_changed(self, ev: Any) -> None:
        if ev.purpose == "location":
            self._on_location_changed(ev)

    def _on_hub_started(self, ev: HubStarted) -> None:
        for listener in self._start_listeners:
            listener.sink({"type": "hub_start", "trigger": listener.index,
                           "id": listener.trigger.id, "ts": ev.ts})

    # -- listeners and the index -------------------------------------------------------------

    def _activate(self, entry: Entry) -> None:
        if entry.listeners or not (entry.enabled and entry.valid) or entry.automation is None:
            return

        def sink(data: dict[str, Any], entry: Entry = entry) -> None:
            self._fire(entry, data)

        for i, t in enumerate(entry.automation.triggers):
            listener = Listener(self, t, i, sink, entry.id)
            entry.listeners.append(listener)
            if t.type in SCHEDULED:
                listener.arm()
            elif t.for_ > 0:
                self._restore_for(listener)

    def _deactivate(self, entry: Entry, keep_rows: bool = False) -> None:
        for listener in entry.listeners:
            listener.disarm() if listener.trigger.type in SCHEDULED else listener.cancel_for(
                keep_row=keep_rows)
        entry.listeners = []

    def _reindex(self) -> None:
        state: dict[str, dict[str, list[Listener]]] = {}
        event: dict[str, dict[str, list[Listener]]] = {}
        avail: dict[str, list[Listener]] = {}
        start: list[Listener] = []
        listeners = [ls for e in self._entries.values() for ls in e.listeners]
        for listener in itertools.chain(listeners, self._dynamic):
            t = listener.trigger
            if t.type in ("state", "numeric"):
                state.setdefault(t.device or "", {}).setdefault(t.attribute or "", []).append(
                    listener)
            elif t.type == "event":
                event.setdefault(t.device or "", {}).setdefault(t.event or "", []).append(
                    listener)
            elif t.type == "availability":
                avail.setdefault(t.device or "", []).append(listener)
            elif t.type == "hub_start":
                start.append(listener)
        self._state_idx = {d: {a: tuple(v) for a, v in m.items()} for d, m in state.items()}
        self._event_idx = {d: {a: tuple(v) for a, v in m.items()} for d, m in event.items()}
        self._avail_idx = {d: tuple(v) for d, v in avail.items()}
        self._start_listeners = tuple(start)
        want = {(StateChanged, d) for d in state} | {(DeviceEvent, d) for d in event} | {
            (AvailabilityChanged, d) for d in avail}
        for key in [k for k in self._bus_subs if k not in want]:
            self._bus_subs.pop(key)()
        handlers: dict[type, Callable[[Any], None]] = {
            StateChanged: self._on_state, DeviceEvent: self._on_event,
            AvailabilityChanged: self._on_availability}
        for key in want:
            if key not in self._bus_subs:
                etype, device = key
                self._bus_subs[key] = self.bus.subscribe(etype, handlers[etype], key=device)

    # the fast path: one dict lookup per event, work only for matching triggers

    def _on_state(self, ev: StateChanged) -> None:
        by_attr = self._state_idx.get(ev.device_id)
        if by_attr is None:
            return
        listeners = by_attr.get(ev.attribute)
        if not listeners:
            return
        device = self.devices.find(ev.device_id)
        if device is None or not may_read_attribute(device, ev.attribute):
            return  # out-of-scope data never reaches automations
        for listener in listeners:
            listener.on_state(ev)

    def _on_event(self, ev: DeviceEvent) -> None:
        by_type = self._event_idx.get(ev.device_id)
        listeners = by_type.get(ev.event_type) if by_type else None
        if not listeners:
            return
        device = self.devices.find(ev.device_id)
        if device is None or not may_read_event(device, ev.event_type):
            return
        for listener in listeners:
            listener.on_event(ev)

    def _on_availability(self, ev: AvailabilityChanged) -> None:
        listeners = self._avail_idx.get(ev.device_id)
        if not listeners:
            return
        device = self.devices.find(ev.device_id)
        if device is None or not may_read_availability(device):
            return
        for listener in listeners:
            listener.on_availability(ev)

    # -- time --------------------------------------------------------------------------------

    def next_fire(self, t: Trigger, after: float) -> float | None:
        if t.type == "time" and t.at is not None:
            return next_time_of_day(t.at, after, self.tz)
        if t.type == "cron" and t.cron is not None:
            return next_cron(t.cron, after, self.tz)
        if t.type == "sun":
            try:
                observer = home_location(self.privacy, self.location)
            except NoLocation as exc:
                _LOG.error("sun trigger %s", exc)
                return None
            return next_sun(observer, t.event or "sunrise", t.offset, after, self.tz)
        return None

    def _rearm_schedules(self) -> None:
        """Loop timers count monotonic time: after a wall-clock step, aim them again."""
        now = self.clock.time()
        for listener in itertools.chain(
                (ls for e in self._entries.values() for ls in e.listeners), self._dynamic):
            if listener.trigger.type in SCHEDULED and listener.timer is not None:
                listener.disarm()
                fired = self._fired.get((listener.owner or "", listener.index), 0.0)
                listener.arm(after=max(now, fired))

    def mark_fired(self, automation_id: str, index: int, scheduled: float) -> None:
        self._fired[(automation_id, index)] = scheduled
        self.db.enqueue(sql.UPSERT_FIRED, (automation_id, index, scheduled))

    def _run_missed(self) -> None:
        """Fire, once and traced as late, each time trigger missed within the grace period."""
        if self._last_alive is None or self.grace <= 0:
            return
        now = self.clock.time()
        for entry in self._entries.values():
            if not (entry.enabled and entry.valid) or entry.automation is None:
                continue
            for i, t in enumerate(entry.automation.triggers):
                if t.type not in SCHEDULED:
                    continue
                since = max(self._last_alive, self._fired.get((entry.id, i), 0.0),
                            now - self.grace)
                latest, occ, guard = None, self.next_fire(t, since), 0
                while occ is not None and occ <= now and guard < 10_000:
                    latest, occ, guard = occ, self.next_fire(t, occ), guard + 1
                if latest is None:
                    continue
                self.mark_fired(entry.id, i, latest)
                _LOG.info("automation %r: running missed %s trigger of %s late", entry.id,
                          t.type, datetime.fromtimestamp(latest, self.tz).isoformat())
                self._fire(entry, {"type": t.type, "trigger": i, "id": t.id,
                                   "scheduled": latest, "ts": now}, late=True)

    def _beat(self) -> None:
        clock = self.clock
        now, mono = clock.time(), clock.monotonic()
        last = self._last_beat
        if last is not None and abs((now - last[0]) - (mono - last[1])) > CLOCK_STEP:
            _LOG.warning("wall clock stepped by %.0f s: rescheduling time triggers",
                         (now - last[0]) - (mono - last[1]))
            self._rearm_schedules()
        self._last_beat = (now, mono)
        self.db.enqueue(sql.HEARTBEAT, (now,))
        self._heartbeat = self.call_at(clock.time() + HEARTBEAT_EVERY, self._beat)

    # -- durable timers ----------------------------------------------------------------------

    def save_for_timer(self, listener: Listener, deadline: float, data: dict[str, Any]) -> None:
        entry = self._entries.get(listener.owner or "")
        self.db.enqueue(sql.UPSERT_TIMER, (
            listener.for_id, listener.owner, "for", deadline, json.dumps([listener.index]),
            json.dumps(data, default=str), entry.digest if entry else "",
            self.clock.time()))

    def drop_timer(self, timer_id: str) -> None:
        self.db.enqueue(sql.DELETE_TIMER, (timer_id,))

    def _restore_for(self, listener: Listener) -> None:
        row = self._saved_timers.pop(listener.for_id, None)
        if row is None:
            return
        entry = self._entries.get(listener.owner or "")
        t = listener.trigger
        holds = False
        if entry is not None and row["digest"] == entry.digest and t.device:
            if t.type == "availability":
                holds = self.states.available(t.device) == t.available
            else:
                value = self.states.value(t.device, t.attribute or "")
                holds = (in_range(value, t.above, t.below) if t.type == "numeric"
                         else (not t.has_to or value == t.to))
        if not holds:
            self.drop_timer(listener.for_id)
            return
        data = json.loads(row["trigger"])
        data["resumed"] = True
        listener.start_for(data, deadline=row["deadline"])

    def _resume_runs(self) -> None:
        for timer_id, row in list(self._saved_timers.items()):
            if row["kind"] not in ("delay", "wait"):
                continue
            del self._saved_timers[timer_id]
            self.drop_timer(timer_id)
            entry = self._entries.get(row["automation_id"])
            if entry is None or not entry.valid or not entry.enabled or (
                    row["digest"] != entry.digest):
                _LOG.info("not resuming %s: its automation changed or cannot run", timer_id)
                continue
            path = tuple(json.loads(row["path"]))
            self._start_run(entry, json.loads(row["trigger"]), late=False,
                            resume=(path, row["deadline"]))

    # -- runs --------------------------------------------------------------------------------

    def _fire(self, entry: Entry, data: dict[str, Any], late: bool = False,
              force: bool = False, skip_conditions: bool = False) -> _Run | None:
        auto = entry.automation
        if auto is None or self._stopping or not (force or (entry.enabled and entry.valid)):
            return None
        running = entry.running
        if running:
            mode = auto.mode
            if mode == "single":
                entry.skipped += 1
                return None
            if mode == "restart":
                for run in running:
                    run.cancel_reason = "restarted"
                    if run.task is not None:
                        run.task.cancel()
            elif mode == "queued":
                if len(entry.queue) >= auto.max:
                    entry.skipped += 1
                else:
                    entry.queue.append((data, late))
                return None
            elif len(running) >= auto.max:
                entry.skipped += 1
                return None
        return self._start_run(entry, data, late, skip_conditions=skip_conditions)

    def _start_run(self, entry: Entry, data: dict[str, Any], late: bool,
                   resume: tuple[tuple[str | int, ...], float | None] | None = None,
                   skip_conditions: bool = False) -> _Run:
        clock = self.clock
        run_id = f"{self._boot}-{next(self._seq)}"
        trace = Trace(run_id, entry.id, data, clock.time(), clock.monotonic(), late,
                      resume is not None)
        run = _Run(run_id, entry, trace, resume)
        entry.running.append(run)
        entry.runs += 1
        entry.last_run = trace.started
        # a plain task, never an eager one: a run that commands a device whose change
        # triggers another run would otherwise nest runs inside runs without bound
        task = asyncio.Task(self._execute(run, skip_conditions or resume is not None),
                            loop=asyncio.get_running_loop())
        run.task = task  # tracked through entry.running: no per-run done callback
        return run

    async def _execute(self, run: _Run, skip_conditions: bool) -> None:
        entry, trace = run.entry, run.trace
        auto = entry.automation
        assert auto is not None
        try:
            if not skip_conditions and auto.conditions:
                if not self._all(auto.conditions, trace.conditions):
                    trace.state = "conditions_failed"
                    return
            await self._sequence(run, auto.actions)
            trace.state = "done"
        except _StopRun as exc:
            trace.state, trace.error = "stopped", str(exc)
        except _ActionFailed as exc:
            trace.state, trace.error = "error", str(exc)
            _LOG.warning("automation %r: action %s", entry.id, exc)
        except asyncio.CancelledError:
            trace.state = run.cancel_reason or "cancelled"
        except Exception as exc:  # a bug in the engine must not leak into other runs
            trace.state, trace.error = "error", _describe(exc)
            _LOG.exception("automation %r run failed", entry.id)
        finally:
            self._finish(run)

    def _finish(self, run: _Run) -> None:
        entry, trace = run.entry, run.trace
        clock = self.clock
        trace.finished = clock.time()
        trace.duration = clock.monotonic() - trace.t0
        try:  # (not contextlib.suppress: a context manager per run costs more than this)
            entry.running.remove(run)
        except ValueError:
            pass
        entry.traces.append(trace)
        if self._entries.get(entry.id) is None:
            return  # deleted while this run was ending: nothing more to keep
        pending = self._unsaved.get(entry.id)
        if pending is None:
            pending = self._unsaved[entry.id] = deque(maxlen=TRACES_KEPT)
        pending.append(trace)
        if entry.queue and not self._stopping and entry.automation is not None:
            data, late = entry.queue.popleft()
            self._start_run(entry, data, late)

    def _cancel_runs(self, entry: Entry, reason: str) -> None:
        entry.queue.clear()
        for run in entry.running:
            run.cancel_reason = reason
            if run.task is not None:
                run.task.cancel()
                self._ending.add(run.task)
                run.task.add_done_callback(self._ending.discard)

    def _flush_traces(self, limit: int = TRACES_PER_BATCH) -> list[tuple[str, list[Any]]]:
        """Rows for the writer's next batch: the newest unsaved traces, at most `limit` of
        them so that encoding never stalls the loop for long; the rest wait for the next."""
        if not self._unsaved:
            return []
        rows: list[tuple[Any, ...]] = []
        pruned: list[str] = []
        while self._unsaved and len(rows) < limit:
            automation_id = next(iter(self._unsaved))
            traces = self._unsaved.pop(automation_id)
            rows.extend((t.run_id, t.automation_id, t.started,
                         dumps(t.to_json(), default=str)) for t in traces)
            pruned.append(automation_id)
        return [*sql.INSERT_TRACES.ops(rows),
                (sql.PRUNE_TRACES, [(dumps(pruned), TRACES_KEPT)])]

    # -- actions -----------------------------------------------------------------------------

    async def _sequence(self, run: _Run, actions: tuple[Action, ...]) -> None:
        start = 0
        if run.resume is not None:
            target = run.resume[0]
            for i, a in enumerate(actions):
                if target[: len(a.path)] == a.path:
                    start = i
                    break
        for i in range(start, len(actions)):
            await self._action(run, actions[i])

    async def _action(self, run: _Run, a: Action) -> None:
        clock = self.clock
        rec: dict[str, Any] = {"path": a.path, "type": a.type, "started": clock.time()}
        run.trace.actions.append(rec)
        t0 = time.perf_counter()
        try:
            result = await self._do(run, a, rec)
            if result is not None:
                rec["result"] = result
        except (_StopRun, _ActionFailed):
            raise
        except asyncio.CancelledError:
            rec["error"] = "cancelled"
            raise
        except Exception as exc:
            rec["error"] = _describe(exc)
            raise _ActionFailed(a, exc) from exc
        finally:
            rec["duration"] = time.perf_counter() - t0

    def _resuming(self, run: _Run, a: Action) -> tuple[tuple[str | int, ...], float | None] | None:
        """The resume point if it lies inside action `a` (consumed when reached)."""
        if run.resume is None or run.resume[0][: len(a.path)] != a.path:
            return None
        return run.resume

    async def _do(self, run: _Run, a: Action, rec: dict[str, Any]) -> Any:
        kind = a.type
        if kind == "command":
            # asyncio.timeout's job, on one shared timer, without an `async with` per command
            deadlines = self._deadlines
            token = deadlines.arm()
            try:
                result = await self.integrations.command(a.device or "", a.command or "",
                                                        a.params)
            except asyncio.CancelledError:
                if deadlines.expired(token):
                    raise DeviceUnavailable(
                        f"device {a.device!r} did not answer {a.command!r} within "
                        f"{self.command_timeout:g} s") from None
                raise
            except BaseException:
                deadlines.expired(token)
                raise
            deadlines.expired(token)
            return result
        if kind == "scene":
            return await self._scene(a)
        if kind in ("delay", "wait"):
            resume = self._resuming(run, a)
            if resume is not None and resume[0] == a.path:
                run.resume = None
                deadline = resume[1]
                rec["resumed"] = True
            elif kind == "delay":
                deadline = self.clock.time() + a.seconds
            else:
                deadline = None if a.timeout is None else self.clock.time() + a.timeout
            if kind == "delay":
                assert deadline is not None
                await self._durable(run, a, deadline, self._sleep_until(deadline))
                return None
            return await self._wait(run, a, deadline)
        if kind == "if":
            resume = self._resuming(run, a)
            if resume is not None and len(resume[0]) > len(a.path):
                branch = resume[0][len(a.path)]
            else:
                conds = rec.setdefault("conditions", [])
                branch = "then" if self._all(a.conditions, conds) else "else"
            rec["result"] = branch
            await self._sequence(run, a.then if branch == "then" else a.else_)
            return branch
        if kind == "choose":
            resume = self._resuming(run, a)
            chosen: int | None = None
            if resume is not None and len(resume[0]) > len(a.path):
                step = resume[0][len(a.path)]
                chosen = resume[0][len(a.path) + 1] if step == "options" else None  # type: ignore[assignment]
            else:
                conds = rec.setdefault("conditions", [])
                for i, choice in enumerate(a.choices):
                    if self._all(choice.conditions, conds):
                        chosen = i
                        break
            rec["result"] = "default" if chosen is None else f"options[{chosen}]"
            await self._sequence(run, a.default if chosen is None else
                                 a.choices[int(chosen)].actions)
            return rec["result"]
        if kind == "event":
            self.bus.publish(AutomationEvent(a.event or "", dict(a.data), run.entry.id,
                                            self.clock.time()))
            return None
        if kind in ("enable", "disable"):
            self._set_enabled(a.target or "", kind == "enable")
            return {"automation": a.target, "enabled": kind == "enable"}
        if kind == "notify":
            self.bus.publish(Notification(a.title, a.message, a.severity, self.clock.time()))
            return None
        raise AssertionError(f"unknown action {kind}")

    async def _scene(self, a: Action) -> list[Any]:
        calls = []
        for e in a.scene:
            if e.command is not None:
                calls.append((e.device, e.command, e.params))
            else:
                device = self.devices.get(e.device)
                calls.extend((e.device, c, p) for c, p in scene_commands(device, e.state or {}))
        try:
            async with asyncio.timeout(self.command_timeout):
                results = await asyncio.gather(
                    *(self.integrations.command(d, c, p) for d, c, p in calls),
                    return_exceptions=True)
        except TimeoutError:
            raise DeviceUnavailable(f"the scene's devices did not all answer within "
                                    f"{self.command_timeout:g} s") from None
        failed = [f"{d} {c}: {_describe(r)}" for (d, c, _), r in zip(calls, results, strict=True)
                  if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError("scene partly failed: " + "; ".join(failed))
        return list(results)

    async def _durable(self, run: _Run, a: Action, deadline: float | None, aw: Any) -> Any:
        """Await `aw` with a stored record of where this run waits, until when."""
        timer_id = f"{run.id}:{format_path(a.path)}"
        db = self.db
        db.enqueue(sql.UPSERT_TIMER, (
            timer_id, run.entry.id, a.type, deadline, json.dumps(list(a.path)),
            json.dumps(run.trace.trigger, default=str), run.entry.digest, self.clock.time()))
        db.nudge()
        try:
            return await aw
        finally:
            if not self._stopping:
                self.drop_timer(timer_id)

    async def _sleep_until(self, deadline: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_at(deadline, wake)
        try:
            await fut
        finally:
            handle.cancel()

    async def _wait(self, run: _Run, a: Action, deadline: float | None) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()

        def sink(data: dict[str, Any]) -> None:
            if not fut.done():
                fut.set_result(data)

        def timeout() -> None:
            if not fut.done():
                fut.set_result(None)

        listeners = [Listener(self, t, i, sink, None) for i, t in enumerate(a.triggers)]
        for listener in listeners:
            self._dynamic.add(listener)
            if listener.trigger.type in SCHEDULED:
                listener.arm()
        self._reindex()
        handle = self.call_at(deadline, timeout) if deadline is not None else None
        try:
            data = await self._durable(run, a, deadline, fut)
        finally:
            if handle is not None:
                handle.cancel()
            for listener in listeners:
                self._dynamic.discard(listener)
                listener.disarm()
                listener.cancel_for()
            if not self._stopping:
                self._reindex()
        if data is None:
            if not a.continue_on_timeout:
                raise _StopRun(f"{format_path(a.path)}: wait timed out")
            return {"timed_out": True}
        return {"timed_out": False, "trigger": data}

    # -- conditions --------------------------------------------------------------------------

    def _all(self, conds: tuple[Condition, ...], out: list[dict[str, Any]]) -> bool:
        return all(self._cond(c, out) for c in conds)

    def _cond(self, c: Condition, out: list[dict[str, Any]]) -> bool:
        rec: dict[str, Any] = {"path": c.path, "type": c.type}
        out.append(rec)
        kind = c.type
        if kind == "and":
            result = all(self._cond(x, out) for x in c.children)
        elif kind == "or":
            result = any(self._cond(x, out) for x in c.children)
        elif kind == "not":
            result = not any(self._cond(x, out) for x in c.children)
        elif kind in ("state", "numeric"):
            device = self.devices.find(c.device or "")
            if device is None or not may_read_attribute(device, c.attribute or ""):
                rec["error"] = "outside the device's privacy scope" if device else "no device"
                result = False
            else:
                value = self.states.value(device.id, c.attribute or "")
                rec["value"] = value
                result = (value == c.state if kind == "state"
                          else in_range(value, c.above, c.below))
        elif kind in ("time", "weekday"):
            local = datetime.fromtimestamp(self.clock.time(), self.tz)
            result = not c.weekdays or local.weekday() in c.weekdays
            if result and kind == "time" and (c.after is not None or c.before is not None):
                now = local.time()
                after_ok = c.after is None or now >= c.after
                before_ok = c.before is None or now < c.before
                if c.after is not None and c.before is not None and c.after > c.before:
                    result = after_ok or before_ok  # a window across midnight
                else:
                    result = after_ok and before_ok
        else:
            result = self._sun_condition(c, rec)
        rec["result"] = result
        return result

    def _sun_condition(self, c: Condition, rec: dict[str, Any]) -> bool:
        try:
            observer = home_location(self.privacy, self.location)
        except NoLocation as exc:
            rec["error"] = str(exc)
            return False
        now = self.clock.time()
        day = datetime.fromtimestamp(now, self.tz).date()
        after = before = None
        if c.after is not None:
            ts = sun_event(observer, day, c.after, self.tz)
            after = None if ts is None else ts + c.after_offset
        if c.before is not None:
            ts = sun_event(observer, day, c.before, self.tz)
            before = None if ts is None else ts + c.before_offset
        after_ok = after is None or now >= after
        before_ok = before is None or now < before
        if after is not None and before is not None and after > before:
            return after_ok or before_ok
        return after_ok and before_ok


def yaml_sources(listed: list[Any], document: Document, config_path: Path
                 ) -> tuple[list[tuple[Any, Document, KeyPath]], list[str]]:
    """Every YAML automation with the document and key path it came from: the config's
    `automations:` list, then `automations.yaml` beside the config; and file-level errors."""
    out: list[tuple[Any, Document, KeyPath]] = [
        (raw, document, ("automations", i)) for i, raw in enumerate(listed)]
    path = config_path.parent / AUTOMATIONS_FILE
    if not path.exists():
        return out, []
    try:
        extra = load_file(path, strict=True)
    except ConfigError as exc:
        return out, [str(exc)]
    items, base = extra.value, ()
    if isinstance(items, dict) and "automations" in items:
        items, base = items["automations"], ("automations",)
    if items in ({}, None):
        items = []
    if not isinstance(items, list):
        return out, [str(extra.problem(base, "expected a list of automations"))]
    out.extend((raw, extra, (*base, i)) for i, raw in enumerate(items))
    return out, []


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _LOG.error("unknown time zone %r: automations use UTC", name)
        return ZoneInfo("UTC")
