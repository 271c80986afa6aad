"""Questions an integration puts to the owner about a device, answered through the API.

Some changes must not be accepted silently and cannot be decided by the integration: a
BTHome sensor whose encryption counter went back is either replayed by someone nearby or had
its battery changed. The integration asks (`ctx.ask_confirmation`); the question shows on the
device (`GET /api/devices/{id}` -> `confirmations`) and as a notification; an admin answers
with `POST /api/devices/{id}/confirmations/{kind}` (audited), which runs the integration's
callback. Questions live in memory: the integration asks again when the cause recurs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hub.audit import AuditLog
from hub.auth.principal import Role
from hub.bus import DeviceRegistryChanged, EventBus, Notification
from hub.clock import Clock
from hub.errors import NotFound


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One open question about one device."""

    device_id: str
    kind: str
    integration: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    asked_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "integration": self.integration, "message": self.message,
                "details": self.details, "asked_at": self.asked_at}


class Confirmations:
    """The open questions, by (device id, kind)."""

    def __init__(self, bus: EventBus, audit: AuditLog, clock: Clock) -> None:
        self._bus = bus
        self._audit = audit
        self._clock = clock
        self._open: dict[tuple[str, str], tuple[Confirmation, Callable[[], Awaitable[None]]]] = {}

    def ask(self, device_id: str, kind: str, integration: str, message: str,
            details: dict[str, Any], on_confirm: Callable[[], Awaitable[None]]) -> bool:
        """Open a question (True) or refresh its details (False: asked already)."""
        key = (device_id, kind)
        existing = self._open.get(key)
        asked_at = existing[0].asked_at if existing else self._clock.time()
        self._open[key] = (Confirmation(device_id, kind, integration, message, dict(details),
                                        asked_at), on_confirm)
        if existing is None:
            self._bus.publish(Notification(title=f"{device_id}: confirmation needed",
                                           message=message, severity="warning", ts=asked_at,
                                           min_role=Role.ADMIN))
            self._bus.publish(DeviceRegistryChanged("updated", device_id))
        return existing is None

    def withdraw(self, device_id: str, kind: str | None = None) -> None:
        """Drop a device's question of `kind` (or all of them)."""
        keys = [k for k in self._open if k[0] == device_id and kind in (None, k[1])]
        for key in keys:
            del self._open[key]
        if keys:
            self._bus.publish(DeviceRegistryChanged("updated", device_id))

    def withdraw_integration(self, integration: str) -> None:
        for (device_id, kind), (question, _cb) in list(self._open.items()):
            if question.integration == integration:
                self.withdraw(device_id, kind)

    def of(self, device_id: str) -> list[Confirmation]:
        return [q for (dev, _k), (q, _cb) in self._open.items() if dev == device_id]

    async def confirm(self, device_id: str, kind: str, actor: str | None) -> Confirmation:
        """Answer yes: the integration's callback runs, the answer is audited."""
        entry = self._open.get((device_id, kind))
        if entry is None:
            raise NotFound(f"no open {kind!r} confirmation for device {device_id!r}")
        question, callback = entry
        await callback()
        self._open.pop((device_id, kind), None)
        self._bus.publish(DeviceRegistryChanged("updated", device_id))
        await self._audit.record(actor, "device.confirm", device_id,
                                 {"kind": kind, **question.details})
        return question
