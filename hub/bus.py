"""The in-process event bus: typed events, dispatch indexed by type and key.

Two ways to listen:
- `subscribe(type, callback, key=...)`: an inline callback for the core's own fast paths
  (the automation engine, the history writer). Callbacks must not block; one that raises is
  logged and the others still run.
- `listen(types, ...)`: a bounded queue for everything that may be slow (websocket clients,
  integrations, sync). When its queue is full, new events are dropped and counted for that
  subscriber, so a slow consumer never stalls the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hub.auth.principal import Role

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all bus events. `key` (usually a device id) indexes dispatch."""

    kind: ClassVar[str] = "event"

    @property
    def key(self) -> str | None:
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        for name in self.__dataclass_fields__:
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """A device attribute took a new value."""

    kind: ClassVar[str] = "state_changed"
    device_id: str
    attribute: str
    old: Any
    new: Any
    ts: float

    @property
    def key(self) -> str | None:
        return self.device_id

    def to_json(self) -> dict[str, Any]:  # the most frequent event: no loop over fields
        return {"type": "state_changed", "kind": "state_changed", "device_id": self.device_id,
                "attribute": self.attribute, "old": self.old, "new": self.new, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class JobStep(Event):
    """A long job (Wi-Fi provisioning, Matter commissioning) moved to a new step or ended:
    one shape for every kind of job; each kind subclasses it with its own `kind`."""

    kind: ClassVar[str] = "job_step"
    job_id: str
    state: str
    job: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.job_id


@dataclass(frozen=True, slots=True)
class DeviceEvent(Event):
    """Something a device reported that is not a state: a button press, motion."""

    kind: ClassVar[str] = "device_event"
    device_id: str
    event_type: str
    data: dict[str, Any]
    ts: float

    @property
    def key(self) -> str | None:
        return self.device_id


@dataclass(frozen=True, slots=True)
class AvailabilityChanged(Event):
    kind: ClassVar[str] = "availability_changed"
    device_id: str
    available: bool
    ts: float

    @property
    def key(self) -> str | None:
        return self.device_id


@dataclass(frozen=True, slots=True)
class DeviceRegistryChanged(Event):
    """A device was added to, updated in or removed from the registry."""

    kind: ClassVar[str] = "device_registry_changed"
    action: str  # "added" | "updated" | "removed"
    device_id: str

    @property
    def key(self) -> str | None:
        return self.device_id


@dataclass(frozen=True, slots=True)
class HubStarted(Event):
    kind: ClassVar[str] = "hub_started"
    ts: float


@dataclass(frozen=True, slots=True)
class Notification(Event):
    """A message for the people in the home (shown on websockets, the dashboard)."""

    kind: ClassVar[str] = "notification"
    title: str
    message: str
    severity: str = "info"
    ts: float = 0.0
    min_role: Role | None = None  # e.g. breach signals: the owner only

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "title": self.title, "message": self.message,
                "severity": self.severity, "ts": self.ts}


Callback = Callable[[Any], None]  # stored per event type; `subscribe` checks the pairing
E = TypeVar("E", bound=Event)


@dataclass(eq=False)
class Subscription:
    """A bounded queue of events for one slow consumer; iterate it with `async for`.

    A deque and one waiter future rather than an asyncio.Queue: an event goes in and out
    with two deque operations (a websocket client gets every state change through here)."""

    bus: EventBus
    types: frozenset[type[Event]]
    maxsize: int
    predicate: Callable[[Event], bool] | None = None
    name: str = ""
    notify: Callable[[], None] | None = None  # after each queued event: wake a batching writer
    dropped: int = 0
    delivered: int = 0
    _items: deque[Event] = field(init=False, default_factory=deque)
    _waiter: asyncio.Future[None] | None = field(init=False, default=None)
    _closed: bool = False

    def offer(self, event: Event) -> bool:
        if self._closed or (self.predicate is not None and not self.predicate(event)):
            return True
        if 0 < self.maxsize <= len(self._items):  # 0: unbounded, as asyncio.Queue
            self.dropped += 1
            self.bus.dropped += 1
            return False
        self._items.append(event)
        self._wake()
        if self.notify is not None:
            self.notify()
        return True

    @property
    def backlog(self) -> int:
        return len(self._items)

    async def get(self) -> Event | None:
        """Next event, or None once closed (after what was queued before closing)."""
        while not self._items:
            if self._closed:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._items.popleft()

    def get_nowait(self) -> Event | None:
        """Next queued event, or None if there is none."""
        if not self._items:
            return None
        self.delivered += 1
        return self._items.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bus._remove(self)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event


class EventBus:
    """Publish typed events; dispatch is a dict lookup by (type, key), never a scan."""

    def __init__(self, queue_size: int = 2000) -> None:
        self.queue_size = queue_size
        self.published = 0
        self.dropped = 0
        self.callback_errors = 0
        self._callbacks: dict[type[Event], dict[str | None, list[Callback]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._subscriptions: dict[type[Event], list[Subscription]] = defaultdict(list)

    def publish(self, event: Event) -> None:
        """Deliver `event` now to inline callbacks and enqueue it for subscriptions."""
        self.published += 1
        etype = type(event)
        by_key = self._callbacks.get(etype)
        if by_key:
            key = event.key
            # the try is inline, not in a helper called per callback: this runs for every
            # event, and keyed callbacks (the automation engine's) are the common case
            if key is not None:
                for cb in by_key.get(key, ()):
                    try:
                        cb(event)
                    except Exception:
                        self._failed(cb, event)
            for cb in by_key.get(None, ()):
                try:
                    cb(event)
                except Exception:
                    self._failed(cb, event)
        subs = self._subscriptions.get(etype)
        if subs:
            for sub in subs:
                sub.offer(event)

    def subscribe(
        self, etype: type[E], callback: Callable[[E], None], *, key: str | None = None
    ) -> Callable[[], None]:
        """Call `callback(event)` inline for events of `etype` (and `key`, if given)."""
        bucket = self._callbacks[etype][key]
        bucket.append(callback)

        def unsubscribe() -> None:
            if callback in bucket:
                bucket.remove(callback)

        return unsubscribe

    def listen(
        self,
        types: Iterable[type[Event]],
        *,
        maxsize: int | None = None,
        predicate: Callable[[Event], bool] | None = None,
        name: str = "",
        notify: Callable[[], None] | None = None,
    ) -> Subscription:
        """A bounded queue of events of `types`; close it to unsubscribe. `notify()` runs
        after each queued event, for a consumer that drains batches with `get_nowait`."""
        sub = Subscription(self, frozenset(types), maxsize or self.queue_size, predicate, name,
                           notify)
        for t in sub.types:
            self._subscriptions[t].append(sub)
        return sub

    def stats(self) -> dict[str, Any]:
        subs = {s for lst in self._subscriptions.values() for s in lst}
        return {
            "published": self.published,
            "dropped": self.dropped,
            "callback_errors": self.callback_errors,
            "subscriptions": [
                {"name": s.name, "backlog": s.backlog, "dropped": s.dropped} for s in subs
            ],
        }

    def _failed(self, cb: Callback, event: Event) -> None:
        self.callback_errors += 1
        _LOG.exception("event callback %r failed on %s", cb, event.kind)

    def _remove(self, sub: Subscription) -> None:
        for t in sub.types:
            lst = self._subscriptions.get(t)
            if lst and sub in lst:
                lst.remove(sub)

