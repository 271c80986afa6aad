"""Bus events the automation engine publishes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.bus import Event


@dataclass(frozen=True, slots=True)
class AutomationEvent(Event):
    """An event fired by an automation's `event` action (seen on websockets)."""

    kind: ClassVar[str] = "automation_event"
    event: str
    data: dict[str, Any]
    automation_id: str
    ts: float

