"""Staging: what happens on the bus becomes sealed messages in the outbox.

While sync is enabled, state changes and device events go to the stream topic as they come;
once per storage batch (`Outbox.before_seal`) the device list and each changed device's latest
state are staged as retained messages, and the automation list when it changed. Restricted
devices and anything naming a restricted person are left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hub.bus import (
    AvailabilityChanged,
    DeviceEvent,
    DeviceRegistryChanged,
    EventBus,
    StateChanged,
)
from hub.cloud.outbox import Outbox

if TYPE_CHECKING:
    from hub.clock import Clock
    from hub.cloud.config import CloudConfig
    from hub.cloud.keys import Session
    from hub.devices import Device, DeviceRegistry
    from hub.state import StateStore

AutomationList = Callable[[], tuple[list[dict[str, Any]], Any]]
"""The automations to sync ({id, enabled, definition}) and a signature that changes with them."""


class Staging:
    """Bus -> outbox for one enabled session; `start()` subscribes, `stop()` undoes it all."""

    def __init__(self, config: CloudConfig, bus: EventBus, devices: DeviceRegistry,
                 states: StateStore, clock: Clock, outbox: Outbox, nudge: Callable[[], None],
                 user_restricted: Callable[[str], bool], automations: AutomationList) -> None:
        self.config = config
        self.bus = bus
        self.devices = devices
        self.states = states
        self.clock = clock
        self.outbox = outbox
        self.nudge = nudge  # have the storage batch commit now
        self.user_restricted = user_restricted
        self.automations = automations
        self._session: Session | None = None
        self._undo: list[Callable[[], None]] = []
        self._dirty_devices: set[str] = set()
        self._devices_dirty = False
        self._automations_signature: Any = None
        self._nudge_timer: asyncio.TimerHandle | None = None

    def start(self, session: Session) -> None:
        """Subscribe, and stage a full snapshot: the retained copies are current after a
        restart."""
        self._session = session
        bus = self.bus
        cats = set(self.config.categories)
        self._undo.append(bus.subscribe(DeviceRegistryChanged, self._on_registry))
        if "states" in cats:
            self._undo.append(bus.subscribe(StateChanged, self._on_state))
            self._undo.append(bus.subscribe(AvailabilityChanged, self._on_available))
        if "events" in cats:
            self._undo.append(bus.subscribe(DeviceEvent, self._on_event))
        self._undo.append(self.outbox.before_seal(self._coalesce))
        self._devices_dirty = True
        self._dirty_devices.update(d.id for d in self.devices.all())
        self.stage_automations()
        self.nudge()

    def stop(self) -> None:
        """Nothing more is staged (what is in the outbox stays, for the caller to drop)."""
        self._session = None
        if self._nudge_timer is not None:
            self._nudge_timer.cancel()
            self._nudge_timer = None
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._dirty_devices.clear()
        self._devices_dirty = False

    def stage_automations(self) -> None:
        session = self._session
        if session is None or "automations" not in self.config.categories:
            return
        items, self._automations_signature = self.automations()
        definitions = [a for a in items if not mentions(a, self.user_restricted)]
        body = {"type": "automations", "automations": definitions, "ts": self.clock.time()}
        self.outbox.add(session.topics.stream, session.keys.enc, body)
        self.outbox.add(session.topics.automations, session.keys.enc, body, retain=True)

    # -- private -------------------------------------------------------------------------------

    def _synced(self, device_id: str) -> Device | None:
        device = self.devices.find(device_id)
        return None if device is None or device.restricted else device

    def _on_state(self, event: StateChanged) -> None:
        session = self._session
        if session is None or self._synced(event.device_id) is None:
            return
        self.outbox.add(session.topics.stream, session.keys.enc, {
            "type": "state", "device": event.device_id, "attribute": event.attribute,
            "value": event.new, "ts": event.ts})
        self._dirty_devices.add(event.device_id)
        self._soon()

    def _on_available(self, event: AvailabilityChanged) -> None:
        if self._session is not None and self._synced(event.device_id) is not None:
            self._dirty_devices.add(event.device_id)

    def _on_event(self, event: DeviceEvent) -> None:
        session = self._session
        if session is None or self._synced(event.device_id) is None:
            return
        if mentions(event.data, self.user_restricted):
            return
        self.outbox.add(session.topics.stream, session.keys.enc, {
            "type": "event", "device": event.device_id, "event": event.event_type,
            "data": event.data, "ts": event.ts})
        self._soon()

    def _on_registry(self, event: DeviceRegistryChanged) -> None:
        self._devices_dirty = True
        self._dirty_devices.add(event.device_id)
        self._soon()

    def _soon(self) -> None:
        """With `max_delay`: have the storage batch commit (and so publish) within it."""
        delay = self.config.max_delay
        if delay is None or self._nudge_timer is not None:
            return
        self._nudge_timer = asyncio.get_running_loop().call_later(delay, self._nudge)

    def _nudge(self) -> None:
        self._nudge_timer = None
        self.nudge()

    def _coalesce(self) -> None:
        """Once per batch: the device list and each changed device's latest state (retained)."""
        session = self._session
        if session is None:
            return
        now = self.clock.time()
        cats = self.config.categories
        if self._devices_dirty and "devices" in cats:
            body = {"type": "devices", "ts": now,
                    "devices": [device_json(d, self.states.available(d.id))
                                for d in self.devices.all() if not d.restricted]}
            self.outbox.add(session.topics.stream, session.keys.enc, body)
            self.outbox.add(session.topics.devices, session.keys.enc, body, retain=True)
        self._devices_dirty = False
        if "automations" in cats:
            _items, signature = self.automations()
            if signature is not None and signature != self._automations_signature:
                self.stage_automations()  # created, replaced, (dis)abled...
        dirty, self._dirty_devices = self._dirty_devices, set()
        if "states" not in cats:
            return
        for device_id in sorted(dirty):
            topic = session.topics.device_state(session.keys.opaque("device", device_id))
            device = self.devices.find(device_id)
            if device is None or device.restricted:
                self.outbox.clear_retained(topic)
                continue
            attrs = {k: {"value": v.value, "last_changed": v.last_changed}
                     for k, v in self.states.get(device_id).items()}
            self.outbox.add(topic, session.keys.enc, {
                "type": "device_state", "device": device_id,
                "available": self.states.available(device_id),
                "attributes": attrs, "ts": now}, retain=True)


def device_json(device: Device, available: bool | None) -> dict[str, Any]:
    """What a remote client may know about a device (no MAC, DID or firmware)."""
    return {
        "id": device.id, "name": device.name, "area": device.area, "model": device.model,
        "manufacturer": device.manufacturer, "attributes": list(device.attributes),
        "events": list(device.events), "available": available,
        "commands": [{"name": c.name, "params": c.params, "required": list(c.required)}
                     for c in device.commands],
    }


_USER_KEYS = frozenset({"user", "user_id", "owner", "created_by", "person"})


def mentions(value: Any, restricted: Callable[[str], bool]) -> bool:
    """Whether a JSON-like value names a restricted user (under a user/user_id/... key)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _USER_KEYS and isinstance(v, str) and restricted(v):
                return True
            if mentions(v, restricted):
                return True
    elif isinstance(value, list):
        return any(mentions(v, restricted) for v in value)
    return False


def listed(entries: Iterable[Any]) -> tuple[list[dict[str, Any]], Any]:
    """The automation engine's entries as synced, with a cheap signature."""
    entries = list(entries)
    signature = tuple((e.id, id(e.raw), e.enabled) for e in entries)
    return [{"id": e.id, "enabled": e.enabled, "definition": e.raw} for e in entries], signature
