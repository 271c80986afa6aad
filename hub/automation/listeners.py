"""Trigger listeners: device triggers (state, numeric, event, availability) are fed by the
engine's index; time triggers (time, cron, sun) arm a timer on the schedule. A `for:`
duration is a timer too, stored as a durable timer so that it survives a restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub.automation.model import Trigger
from hub.bus import AvailabilityChanged, DeviceEvent, StateChanged

if TYPE_CHECKING:
    from hub.automation.schedule import DurableTimers, Schedule


Sink = Callable[[dict[str, Any]], None]


class Listener:
    """One trigger, listening: device triggers are indexed, time triggers are scheduled."""

    __slots__ = ("digest", "index", "next", "owner", "pending", "schedule", "sink", "timer",
                 "timers", "trigger")

    def __init__(self, schedule: Schedule, timers: DurableTimers, trigger: Trigger, index: int,
                 sink: Sink, owner: str | None, digest: str = "") -> None:
        self.schedule = schedule
        self.timers = timers
        self.trigger = trigger
        self.index = index
        self.sink = sink
        self.owner = owner  # automation id whose `for:` timers are persisted; None for waits
        self.digest = digest  # of the owner's definition: a changed one drops stored timers
        self.timer: Any = None
        self.pending: dict[str, Any] | None = None
        self.next: float | None = None

    # device triggers

    def on_state(self, ev: StateChanged) -> None:
        t = self.trigger
        if t.type == "state":
            match = (not t.has_from or ev.old == t.from_) and (not t.has_to or ev.new == t.to)
            if t.for_ <= 0:
                if match:
                    self.sink({"type": "state", "trigger": self.index, "id": t.id,
                               "device": ev.device_id, "attribute": ev.attribute,
                               "from": ev.old, "to": ev.new, "ts": ev.ts})
                return
            if self.timer is not None:
                if t.has_to and ev.new == t.to:
                    return  # still where it should stay
                self.cancel_for()
            if match:
                self.start_for({"type": "state", "trigger": self.index, "id": t.id,
                                "device": ev.device_id, "attribute": ev.attribute,
                                "from": ev.old, "to": ev.new, "ts": ev.ts})
            return
        inside = in_range(ev.new, t.above, t.below)
        if not inside:
            if self.timer is not None:
                self.cancel_for()
            return
        if in_range(ev.old, t.above, t.below):
            return  # no crossing
        data = {"type": "numeric", "trigger": self.index, "id": t.id, "device": ev.device_id,
                "attribute": ev.attribute, "from": ev.old, "to": ev.new, "ts": ev.ts}
        if t.for_ <= 0:
            self.sink(data)
        elif self.timer is None:
            self.start_for(data)

    def on_event(self, ev: DeviceEvent) -> None:
        t = self.trigger
        self.sink({"type": "event", "trigger": self.index, "id": t.id, "device": ev.device_id,
                   "event": ev.event_type, "data": dict(ev.data), "ts": ev.ts})

    def on_availability(self, ev: AvailabilityChanged) -> None:
        t = self.trigger
        if ev.available != t.available:
            if self.timer is not None:
                self.cancel_for()
            return
        data = {"type": "availability", "trigger": self.index, "id": t.id,
                "device": ev.device_id, "available": ev.available, "ts": ev.ts}
        if t.for_ <= 0:
            self.sink(data)
        elif self.timer is None:
            self.start_for(data)

    def start_for(self, data: dict[str, Any], deadline: float | None = None) -> None:
        if deadline is None:
            deadline = self.schedule.clock.time() + self.trigger.for_
            if self.owner is not None:
                self.timers.save(self.for_id, self.owner, "for", deadline, [self.index], data,
                                 self.digest)
        self.pending = data
        self.timer = self.schedule.call_at(deadline, self._for_due)

    def cancel_for(self, *, keep_row: bool = False) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.pending = None
            if self.owner is not None and not keep_row:
                self.timers.drop(self.for_id)

    @property
    def for_id(self) -> str:
        return f"for:{self.owner}:{self.index}"

    def _for_due(self) -> None:
        self.timer = None
        data, self.pending = self.pending or {}, None
        if self.owner is not None:
            self.timers.drop(self.for_id)
        data["for"] = self.trigger.for_
        self.sink(data)

    # time triggers

    def arm(self, after: float | None = None) -> None:
        schedule = self.schedule
        self.next = schedule.next_fire(self.trigger,
                                       schedule.clock.time() if after is None else after)
        if self.next is not None:
            self.timer = schedule.call_at(self.next, self._due)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _due(self) -> None:
        self.timer = None
        scheduled = self.next
        if scheduled is None:
            return
        now = self.schedule.clock.time()
        if now < scheduled - 0.5:  # the wall clock moved back: wait for the real time
            self.timer = self.schedule.call_at(scheduled, self._due)
            return
        if self.owner is not None:
            self.schedule.mark_fired(self.owner, self.index, scheduled)
        self.arm(after=scheduled)
        self.sink({"type": self.trigger.type, "trigger": self.index, "id": self.trigger.id,
                   "scheduled": scheduled, "ts": now})


SCHEDULED = frozenset({"time", "cron", "sun"})


def in_range(value: Any, above: float | None, below: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (above is None or value > above) and (below is None or value < below)
