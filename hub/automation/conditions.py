"""Conditions evaluated against the hub's current state and time, each result recorded in the
run's trace. Reads go through the privacy checks: out-of-scope data is never seen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.automation.checks import may_read_attribute
from hub.automation.listeners import in_range
from hub.automation.model import Condition
from hub.automation.sun import NoLocation, sun_event

if TYPE_CHECKING:
    from astral import Observer

    from hub.automation.schedule import Schedule
    from hub.devices import Device

Record = list[dict[str, Any]]


class Conditions:
    """`all(conditions, record)`: True when every condition holds, each result recorded."""

    def __init__(self, find_device: Callable[[str], Device | None],
                 value: Callable[[str, str], Any], schedule: Schedule) -> None:
        self.find_device = find_device
        self.value = value  # (device id, attribute) -> current value
        self.schedule = schedule

    def all(self, conds: tuple[Condition, ...], out: Record) -> bool:
        return all(self.one(c, out) for c in conds)

    def one(self, c: Condition, out: Record) -> bool:
        rec: dict[str, Any] = {"path": c.path, "type": c.type}
        out.append(rec)
        kind = c.type
        if kind == "and":
            result = all(self.one(x, out) for x in c.children)
        elif kind == "or":
            result = any(self.one(x, out) for x in c.children)
        elif kind == "not":
            result = not any(self.one(x, out) for x in c.children)
        elif kind in ("state", "numeric"):
            device = self.find_device(c.device or "")
            if device is None or not may_read_attribute(device, c.attribute or ""):
                rec["error"] = "outside the device's privacy scope" if device else "no device"
                result = False
            else:
                value = self.value(device.id, c.attribute or "")
                rec["value"] = value
                result = (value == c.state if kind == "state"
                          else in_range(value, c.above, c.below))
        elif kind in ("time", "weekday"):
            local = self.schedule.local(self.schedule.clock.time())
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
            result = self._sun(c, rec)
        rec["result"] = result
        return result

    def _sun(self, c: Condition, rec: dict[str, Any]) -> bool:
        schedule = self.schedule
        try:
            observer: Observer = schedule.location()
        except NoLocation as exc:
            rec["error"] = str(exc)
            return False
        now = schedule.clock.time()
        tz = schedule.tz
        day = datetime.fromtimestamp(now, tz).date()
        after = before = None
        if c.after is not None:
            ts = sun_event(observer, day, c.after, tz)
            after = None if ts is None else ts + c.after_offset
        if c.before is not None:
            ts = sun_event(observer, day, c.before, tz)
            before = None if ts is None else ts + c.before_offset
        after_ok = after is None or now >= after
        before_ok = before is None or now < before
        if after is not None and before is not None and after > before:
            return after_ok or before_ok
        return after_ok and before_ok
