"""Automation definitions as the hub knows them: from YAML (read-only, with file:line) and from
the API (stored in the database), each checked against the running hub. One `Entry` per
automation holds its definition, whether it can run (and why not), and its runs (`Run`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.automation.checks import check, referenced_devices
from hub.automation.listeners import Listener
from hub.automation.model import Automation, DefinitionError, Problem, format_path, parse
from hub.automation.trace import TRACES_KEPT, StoredTrace, Trace
from hub.errors import ConfigError, Conflict, NotFound, ValidationError
from hub.yamlsource import Document, KeyPath, load_file

if TYPE_CHECKING:
    import asyncio

    from hub.clock import Clock
    from hub.config import LoadedConfig
    from hub.devices import Device
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

AUTOMATIONS_FILE = "automations.yaml"


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
    running: list[Run] = field(default_factory=list)
    queue: deque[tuple[dict[str, Any], bool]] = field(default_factory=deque)
    traces: deque[Trace | StoredTrace] = field(default_factory=lambda: deque(maxlen=TRACES_KEPT))
    skipped: int = 0
    runs: int = 0
    last_run: float | None = None
    created_at: float | None = None
    deleted: bool = False  # runs still ending keep no trace

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


Resume = tuple[tuple[str | int, ...], float | None]
"""Where a resumed run continues: the path of its delay or wait, and that step's deadline."""


@dataclass(eq=False, slots=True)
class Run:
    """One run of an automation (the runner's), listed in its entry while it goes."""

    id: str
    entry: Entry
    trace: Trace
    resume: Resume | None = None
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


class Definitions:
    """Every automation by id: loading, checking, and the API's create/replace/delete."""

    def __init__(self, db: Database, clock: Clock, loaded: LoadedConfig,
                 find_device: Callable[[str], Device | None],
                 location_missing: Callable[[], str | None]) -> None:
        self.db = db
        self.clock = clock
        self.loaded = loaded
        self.find_device = find_device
        self.location_missing = location_missing  # why sun automations cannot run, or None
        self.load_errors: list[str] = []
        self._entries: dict[str, Entry] = {}

    async def load(self) -> None:
        """YAML definitions, then the API-made ones, their enabled flags and stored traces;
        then check them all."""
        db = self.db
        stored = await db.fetchall("SELECT * FROM automations ORDER BY created_at")
        enabled = {r["id"]: bool(r["enabled"])
                   for r in await db.fetchall("SELECT * FROM automation_enabled")}
        for entry in await self._yaml_entries():
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
        self.revalidate()

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> Iterable[Entry]:
        """The live view (no copy): for the engine's loops that do not change the set."""
        return self._entries.values()

    def find(self, automation_id: str) -> Entry | None:
        return self._entries.get(automation_id)

    def get(self, automation_id: str) -> Entry:
        try:
            return self._entries[automation_id]
        except KeyError:
            raise NotFound(f"no automation {automation_id!r}") from None

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
        return entry

    async def replace(self, automation_id: str, raw: Any) -> tuple[Entry, Entry]:
        """Store a new definition; (old entry, new entry): the new one keeps the old traces
        and counters, the caller stops the old one's listeners and runs. A body without
        `enabled` keeps the automation on or off as it was; with it, the body decides."""
        old = self.get(automation_id)
        self._writable(old)
        if not isinstance(raw, dict):
            raise ValidationError(None, "expected an automation object")
        raw = dict(raw)
        if raw.setdefault("id", automation_id) != automation_id:
            raise ValidationError("id", "the id in the body must match the path")
        entry = self._checked_api_entry(raw)
        on_off: tuple[str, tuple[Any, ...]]
        if "enabled" in raw:
            on_off = ("DELETE FROM automation_enabled WHERE id = ?", (automation_id,))
        else:
            entry.enabled = old.enabled
            on_off = ("INSERT OR REPLACE INTO automation_enabled(id, enabled) VALUES(?, ?)",
                      (automation_id, int(old.enabled)))
        now = self.clock.time()
        await self.db.write_script([
            ("UPDATE automations SET definition = ?, updated_at = ? WHERE id = ?",
             (json.dumps(raw), now, automation_id)),
            on_off,
            ("DELETE FROM automation_timers WHERE automation_id = ?", (automation_id,)),
        ])
        entry.traces, entry.created_at = old.traces, old.created_at
        entry.runs, entry.last_run = old.runs, old.last_run
        self._entries[automation_id] = entry
        return old, entry

    async def delete(self, automation_id: str) -> Entry:
        """Delete an API-made automation and everything stored about it."""
        entry = self.get(automation_id)
        self._writable(entry)
        await self.db.write_script([
            (f"DELETE FROM {table} WHERE {col} = ?", (automation_id,))
            for table, col in (("automations", "id"), ("automation_enabled", "id"),
                               ("automation_traces", "automation_id"),
                               ("automation_timers", "automation_id"),
                               ("automation_fired", "automation_id"))
        ])
        del self._entries[automation_id]
        entry.deleted = True
        return entry

    def store_enabled(self, automation_id: str, enabled: bool) -> None:
        self.db.enqueue(
            "INSERT OR REPLACE INTO automation_enabled(id, enabled) VALUES(?, ?)",
            (automation_id, int(enabled)))

    def revalidate(self, entries: Iterable[Entry] | None = None) -> None:
        """Check `entries` (all by default) against the hub and the other automations."""
        autos = {k: e.automation for k, e in self._entries.items()
                 if e.automation is not None and not e.parse_problems}
        for entry in self._entries.values() if entries is None else entries:
            if entry.automation is None or entry.parse_problems:
                continue
            entry.problems = check(entry.automation, self.find_device, autos,
                                   self.location_missing)

    # -- private -------------------------------------------------------------------------------

    async def _yaml_entries(self) -> list[Entry]:
        loaded = self.loaded
        sources, errors = await asyncio.to_thread(  # reads automations.yaml
            yaml_sources, loaded.config.automations, loaded.document, Path(loaded.path))
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
            entry.problems = check(entry.automation, self.find_device, autos,
                                   self.location_missing)
        problems = [*entry.parse_problems, *entry.problems]
        if problems:
            first = problems[0]
            lines = [f"{format_path(p.path) or '<root>'}: {p.message}" for p in problems]
            raise ValidationError(format_path(first.path) or None,
                                  f"automation {entry.id!r}: " + "; ".join(lines))
        return entry

    @staticmethod
    def _writable(entry: Entry) -> None:
        if entry.source == "yaml":
            raise Conflict(f"automation {entry.id!r} is defined in YAML ({entry.where}) and "
                           "is read-only through the API")


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
    items = extra.value
    base: KeyPath = ()
    if isinstance(items, dict) and "automations" in items:
        items, base = items["automations"], ("automations",)
    if items in ({}, None):
        items = []
    if not isinstance(items, list):
        return out, [str(extra.problem(base, "expected a list of automations"))]
    out.extend((raw, extra, (*base, i)) for i, raw in enumerate(items))
    return out, []


def _digest(raw: Any) -> str:
    return hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
