"""Traces: one run's trigger data, each condition's result and each action's result or error,
with timings. Kept in memory (the last 20 per automation) and persisted in batches. A run
still going shows as `state: "running"` with its `current` step (a delay: until when)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.automation.model import format_path

TRACES_KEPT = 20


class Trace:
    """One run: what triggered it, each condition's result, each action's result or error."""

    __slots__ = ("actions", "automation_id", "conditions", "duration", "error", "finished",
                 "late", "resumed", "run_id", "started", "state", "t0", "trigger")

    def __init__(self, run_id: str, automation_id: str, trigger: dict[str, Any],
                 started: float, t0: float, late: bool, resumed: bool) -> None:
        self.run_id = run_id
        self.automation_id = automation_id
        self.trigger = trigger
        self.started = started
        self.t0 = t0
        self.late = late
        self.resumed = resumed
        self.state = "running"
        self.error: str | None = None
        self.finished: float | None = None
        self.duration: float | None = None
        self.conditions: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []

    def to_json(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id, "automation_id": self.automation_id,
            "trigger": self.trigger, "started": self.started, "finished": self.finished,
            "duration": self.duration, "state": self.state, "error": self.error,
            "late": self.late, "resumed": self.resumed,
            "conditions": [step_json(c) for c in self.conditions],
            "actions": [step_json(a) for a in self.actions],
        }
        if self.finished is None:
            out["current"] = self.current()
        return out

    def current(self) -> dict[str, Any] | None:
        """The step a running run is in: the innermost action started and not yet done
        (`index` into `actions`; a delay or wait has `until`, its deadline or None)."""
        for i in range(len(self.actions) - 1, -1, -1):
            step = self.actions[i]
            if "duration" not in step:
                out = {"index": i, "path": format_path(step["path"]), "type": step["type"],
                       "started": step["started"]}
                if "until" in step:
                    out["until"] = step["until"]
                return out
        return None  # checking conditions, or between two steps


@dataclass(slots=True)
class StoredTrace:
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.data


def step_json(step: dict[str, Any]) -> dict[str, Any]:
    out = dict(step)
    out["path"] = format_path(step["path"])
    return out
