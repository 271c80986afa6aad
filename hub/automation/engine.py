"""The automation engine: composes the definitions (`hub.automation.definitions`), the schedule
and durable timers (`schedule`), the runner (`runner`, with one step function per action in
`steps`) and owns the index of triggers by what they listen to.

Speed: a device event costs one dict lookup per (device, attribute) and work only for the
triggers that listen to it; the trigger path never touches the database (timers and traces
are queued for the batching writer).

Durability: delays, waits and `for:` timers are stored with their wall-clock deadline and
resume with the time that remains after a restart; a time trigger missed while the hub was
down runs once at start if it is within `automation.missed_trigger_grace`, traced as late.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hub.automation.checks import may_read_attribute, may_read_availability, may_read_event
from hub.automation.conditions import Conditions
from hub.automation.definitions import Definitions, Entry
from hub.automation.listeners import SCHEDULED, Listener, Sink, in_range
from hub.automation.model import Trigger
from hub.automation.runner import Runner
from hub.automation.schedule import DurableTimers, Schedule, zone
from hub.automation.sun import NoLocation, home_location
from hub.bus import (
    AvailabilityChanged,
    DeviceEvent,
    DeviceRegistryChanged,
    HubStarted,
    StateChanged,
)
from hub.errors import Conflict

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

__all__ = ["AutomationEngine"]

_LOG = logging.getLogger(__name__)


class AutomationEngine:
    """All automations of the hub. Started after integrations, stopped before them."""

    def __init__(self, config: AutomationConfig, *, location: LocationConfig,
                 loaded: LoadedConfig, db: Database, bus: EventBus, clock: Clock,
                 devices: DeviceRegistry, states: StateStore, integrations: CommandSink,
                 privacy: ConsentedLocation | None) -> None:
        """`loaded` is where YAML automations come from (the config and its positions);
        `integrations` runs validated commands; `privacy` gates the home's location."""
        self.db = db
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.states = states
        self.grace = config.missed_trigger_grace
        self.tz = zone(location.time_zone)
        self._location = lambda: home_location(privacy, location)
        self.schedule = Schedule(db, clock, self.tz, self._location)
        self.timers = DurableTimers(db, clock)
        self.definitions = Definitions(db, clock, loaded, devices.find, self._location_missing)
        self.runner = Runner(
            clock=clock, command=integrations.command, get_device=devices.get,
            conditions=Conditions(devices.find, states.value, self.schedule),
            schedule=self.schedule, timers=self.timers, publish=bus.publish,
            listen=self._listen, set_enabled=self._set_enabled,
            command_timeout=config.command_timeout)
        self._state_idx: dict[str, dict[str, tuple[Listener, ...]]] = {}
        self._event_idx: dict[str, dict[str, tuple[Listener, ...]]] = {}
        self._avail_idx: dict[str, tuple[Listener, ...]] = {}
        self._start_listeners: tuple[Listener, ...] = ()
        self._dynamic: set[Listener] = set()  # a running wait's triggers
        self._bus_subs: dict[tuple[type, str], Callable[[], None]] = {}
        self._unsubs: list[Callable[[], None]] = []
        self._stopping = False
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self.runner.stopping = False
        await self.timers.load()
        await self.schedule.load()
        defs = self.definitions
        await defs.load()
        for entry in defs.values():
            if not entry.valid:
                _LOG.error("automation not loaded:\n%s", entry.error_text())
        bus = self.bus
        self._unsubs.append(bus.subscribe(DeviceRegistryChanged, self._on_device_changed))
        self._unsubs.append(bus.subscribe(HubStarted, self._on_hub_started))
        from hub.privacy.center import LocationChanged  # the privacy area gates coordinates
        from hub.privacy.consent import ConsentChanged

        self._unsubs.append(bus.subscribe(LocationChanged, self._on_location_changed))
        self._unsubs.append(bus.subscribe(ConsentChanged, self._on_consent_changed))
        self._unsubs.append(self.db.add_flush_hook(self.runner.flush_traces))
        for entry in defs.values():
            self._activate(entry)
        self._reindex()
        self._resume_runs()
        self._run_missed()
        self.timers.drop_unclaimed()
        self.schedule.start_heartbeat(self._rearm_schedules)
        self.started = True
        _LOG.info("automations: %d loaded, %d invalid", len(defs),
                  sum(1 for e in defs.values() if not e.valid))

    async def stop(self) -> None:
        self._stopping = True
        self.started = False
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for unsub in self._bus_subs.values():
            unsub()
        self._bus_subs.clear()
        for entry in self.definitions.values():
            self._deactivate(entry, keep_rows=True)
        for listener in list(self._dynamic):
            listener.disarm()
            listener.cancel_for(keep_row=True)
        await self.runner.stop(list(self.definitions.values()))
        self.schedule.stop()
        for row in self.runner.flush_traces(limit=1 << 30):
            self.db.enqueue_many(*row)
        await self.db.flush()

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    @property
    def load_errors(self) -> list[str]:
        return self.definitions.load_errors

    def get(self, automation_id: str) -> Entry:
        return self.definitions.get(automation_id)

    def traces(self, automation_id: str) -> list[dict[str, Any]]:
        """Running runs (with their current step) first, then finished ones; newest first."""
        entry = self.get(automation_id)
        return [*(run.trace.to_json() for run in reversed(entry.running)),
                *(t.to_json() for t in reversed(entry.traces))]

    # -- changing (API) ----------------------------------------------------------------------

    async def create(self, raw: Any) -> Entry:
        entry = await self.definitions.create(raw)
        self._after_change()
        return entry

    async def replace(self, automation_id: str, raw: Any) -> Entry:
        old, entry = await self.definitions.replace(automation_id, raw)
        self._deactivate(old)
        self.runner.cancel(old, "replaced")
        self._after_change()
        return entry

    async def delete(self, automation_id: str) -> None:
        entry = await self.definitions.delete(automation_id)
        self._deactivate(entry)
        self.runner.cancel(entry, "deleted")
        self.runner.forget(automation_id)
        self._after_change()

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
        run = self.runner.fire(entry, payload, force=True, skip_conditions=skip_conditions)
        return run.id if run else None

    # -- private: changes ------------------------------------------------------------------

    def _location_missing(self) -> str | None:
        try:
            self._location()
        except NoLocation as exc:
            return str(exc)
        return None

    def _after_change(self) -> None:
        self.definitions.revalidate()
        self._resync_all()

    def _resync_all(self) -> None:
        for e in self.definitions.values():
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
                self.runner.cancel(entry, "disabled")
            else:
                self._activate(entry)
            self._reindex()
        self.definitions.store_enabled(automation_id, enabled)
        return entry

    # device changes: privacy scope, restriction, removal

    def _on_device_changed(self, ev: DeviceRegistryChanged) -> None:
        affected = [e for e in self.definitions.values() if ev.device_id in e.devices]
        if not affected:
            return
        before = {e.id: e.valid for e in affected}
        self.definitions.revalidate(affected)
        for e in affected:
            if before[e.id] and not e.valid:
                _LOG.warning("automation %r stopped after device %s changed:\n%s", e.id,
                             ev.device_id, e.error_text())
                self.runner.cancel(e, "invalid")
        self._resync_all()

    def _on_location_changed(self, _ev: Any) -> None:
        """Consent given or withdrawn, or coordinates moved: sun automations follow."""
        self._after_change()
        self._rearm_schedules()

    def _on_consent_changed(self, ev: Any) -> None:
        if ev.purpose == "location":
            self._on_location_changed(ev)

    def _on_hub_started(self, ev: HubStarted) -> None:
        for listener in self._start_listeners:
            listener.sink({"type": "hub_start", "trigger": listener.index,
                           "id": listener.trigger.id, "ts": ev.ts})

    # -- private: listeners and the index --------------------------------------------------

    def _activate(self, entry: Entry) -> None:
        if entry.listeners or not (entry.enabled and entry.valid) or entry.automation is None:
            return
        fire = self.runner.fire

        def sink(data: dict[str, Any], entry: Entry = entry) -> None:
            fire(entry, data)

        for i, t in enumerate(entry.automation.triggers):
            listener = Listener(self.schedule, self.timers, t, i, sink, entry.id, entry.digest)
            entry.listeners.append(listener)
            if t.type in SCHEDULED:
                listener.arm()
            elif t.for_ > 0:
                self._restore_for(entry, listener)

    def _deactivate(self, entry: Entry, keep_rows: bool = False) -> None:
        for listener in entry.listeners:
            listener.disarm() if listener.trigger.type in SCHEDULED else listener.cancel_for(
                keep_row=keep_rows)
        entry.listeners = []

    def _listen(self, triggers: tuple[Trigger, ...], sink: Sink) -> Callable[[], None]:
        """A running wait's triggers, indexed like an automation's until it ends."""
        listeners = [Listener(self.schedule, self.timers, t, i, sink, None)
                     for i, t in enumerate(triggers)]
        for listener in listeners:
            self._dynamic.add(listener)
            if listener.trigger.type in SCHEDULED:
                listener.arm()
        self._reindex()

        def unlisten() -> None:
            for listener in listeners:
                self._dynamic.discard(listener)
                listener.disarm()
                listener.cancel_for()
            if not self._stopping:
                self._reindex()

        return unlisten

    def _reindex(self) -> None:
        state: dict[str, dict[str, list[Listener]]] = {}
        event: dict[str, dict[str, list[Listener]]] = {}
        avail: dict[str, list[Listener]] = {}
        start: list[Listener] = []
        listeners = [ls for e in self.definitions.values() for ls in e.listeners]
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

    # -- private: time and restarts --------------------------------------------------------

    def _rearm_schedules(self) -> None:
        """Loop timers count monotonic time: after a wall-clock step, aim them again."""
        now = self.clock.time()
        for listener in itertools.chain(
                (ls for e in self.definitions.values() for ls in e.listeners), self._dynamic):
            if listener.trigger.type in SCHEDULED and listener.timer is not None:
                listener.disarm()
                fired = self.schedule.fired(listener.owner or "", listener.index)
                listener.arm(after=max(now, fired))

    def _run_missed(self) -> None:
        """Fire, once and traced as late, each time trigger missed within the grace period."""
        now = self.clock.time()
        for entry in self.definitions.values():
            if not (entry.enabled and entry.valid) or entry.automation is None:
                continue
            for i, t in enumerate(entry.automation.triggers):
                if t.type not in SCHEDULED:
                    continue
                latest = self.schedule.missed(entry.id, i, t, self.grace)
                if latest is None:
                    continue
                self.schedule.mark_fired(entry.id, i, latest)
                _LOG.info("automation %r: running missed %s trigger of %s late", entry.id,
                          t.type, self.schedule.local(latest).isoformat())
                self.runner.fire(entry, {"type": t.type, "trigger": i, "id": t.id,
                                         "scheduled": latest, "ts": now}, late=True)

    def _restore_for(self, entry: Entry, listener: Listener) -> None:
        """A `for:` duration pending before the restart goes on if its condition still holds
        (and the definition did not change)."""
        row = self.timers.claim(listener.for_id)
        if row is None:
            return
        t = listener.trigger
        holds = False
        if row["digest"] == entry.digest and t.device:
            if t.type == "availability":
                holds = self.states.available(t.device) == t.available
            else:
                value = self.states.value(t.device, t.attribute or "")
                holds = (in_range(value, t.above, t.below) if t.type == "numeric"
                         else (not t.has_to or value == t.to))
        if not holds:
            self.timers.drop(listener.for_id)
            return
        data = json.loads(row["trigger"])
        data["resumed"] = True
        listener.start_for(data, deadline=row["deadline"])

    def _resume_runs(self) -> None:
        for row in self.timers.claim_runs():
            entry = self.definitions.find(row["automation_id"])
            if entry is None or not entry.valid or not entry.enabled or (
                    row["digest"] != entry.digest):
                _LOG.info("not resuming %s: its automation changed or cannot run", row["id"])
                continue
            path = tuple(json.loads(row["path"]))
            self.runner.start(entry, json.loads(row["trigger"]), late=False,
                              resume=(path, row["deadline"]))
