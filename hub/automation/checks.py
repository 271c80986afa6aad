"""Checks of a parsed automation against the running hub: devices, attributes, privacy scope,
commands, other automations (loops of automations enabling each other) and the location.

Privacy: an automation may read a device's attribute or event only when the device is not
restricted and its scope allows it; `may_read_*` is the one place that decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hub.automation.model import (
    Action,
    Automation,
    CommandAction,
    Condition,
    DisableAction,
    EnableAction,
    Path,
    Problem,
    SceneAction,
    Trigger,
    WaitAction,
    action_conditions,
    sub_sequences,
)
from hub.devices import Device
from hub.errors import ValidationError


def may_read_attribute(device: Device, attribute: str) -> bool:
    return not device.restricted and device.scope.allows_attribute(attribute)


def may_read_event(device: Device, event: str) -> bool:
    return not device.restricted and device.scope.allows_event(event)


def may_read_availability(device: Device) -> bool:
    return not device.restricted


def iter_actions(actions: tuple[Action, ...]) -> Iterator[Action]:
    for a in actions:
        yield a
        for seq in sub_sequences(a):
            yield from iter_actions(seq)


def iter_conditions(conds: tuple[Condition, ...]) -> Iterator[Condition]:
    for c in conds:
        yield c
        yield from iter_conditions(c.children)


def all_conditions(auto: Automation) -> Iterator[Condition]:
    yield from iter_conditions(auto.conditions)
    for a in iter_actions(auto.actions):
        yield from iter_conditions(action_conditions(a))


def all_triggers(auto: Automation) -> Iterator[Trigger]:
    yield from auto.triggers
    for a in iter_actions(auto.actions):
        if isinstance(a, WaitAction):
            yield from a.triggers


def referenced_devices(auto: Automation) -> set[str]:
    out = {t.device for t in all_triggers(auto) if t.device}
    out |= {c.device for c in all_conditions(auto) if c.device}
    for a in iter_actions(auto.actions):
        if isinstance(a, CommandAction) and a.device:
            out.add(a.device)
        elif isinstance(a, SceneAction):
            out |= {e.device for e in a.entries}
    return out


def enable_targets(auto: Automation) -> set[str]:
    return {a.target for a in iter_actions(auto.actions)
            if isinstance(a, EnableAction) and a.target}


def scene_commands(device: Device, state: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The commands that bring `device` to `state` (on -> turn_on/turn_off, x -> set x)."""
    accepted = {c.name: c for c in device.commands}
    out: list[tuple[str, dict[str, Any]]] = []
    for attr, value in state.items():
        if device.attributes and attr not in device.attributes:
            raise ValidationError(attr, f"device {device.id!r} has no attribute {attr!r} "
                                  f"(has: {', '.join(device.attributes)})")
        if isinstance(value, bool) and {"turn_on", "turn_off"} <= set(accepted) and attr == "on":
            out.append(("turn_on" if value else "turn_off", {}))
        elif "set" in accepted and "value" in accepted["set"].params:
            out.append(("set", accepted["set"].validate({"value": value})))
        else:
            raise ValidationError(attr, f"device {device.id!r} has no command that sets "
                                  f"{attr!r}")
    return out


def check(auto: Automation, devices: Callable[[str], Device | None],
          automations: Mapping[str, Automation | None], has_location: Callable[[], str | None]
          ) -> list[Problem]:
    """Every problem of `auto` in the context of the hub (empty list: it can run)."""
    c = _Checker(devices, has_location)
    for t in all_triggers(auto):
        c.trigger(t)
    for cond in all_conditions(auto):
        c.condition(cond)
    for a in iter_actions(auto.actions):
        c.action(a, auto, automations)
    loop = find_enable_loop(auto.id, automations)
    if loop:
        path = next(a.path for a in iter_actions(auto.actions)
                    if isinstance(a, EnableAction) and a.target == loop[1])
        c.bad(path, "loop of automations enabling each other: " + " -> ".join(loop))
    return c.problems


def find_enable_loop(start: str, automations: Mapping[str, Automation | None]
                     ) -> list[str] | None:
    """A cycle of `enable` actions through `start`, as a list of ids, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        auto = automations.get(node)
        if auto is None:
            continue
        for target in sorted(enable_targets(auto)):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


class _Checker:
    def __init__(self, devices: Callable[[str], Device | None],
                 has_location: Callable[[], str | None]) -> None:
        self.devices = devices
        self.has_location = has_location
        self.problems: list[Problem] = []

    def bad(self, path: Path, message: str) -> None:
        self.problems.append(Problem(path, message))

    def device(self, device_id: str | None, path: Path) -> Device | None:
        if device_id is None:
            return None
        d = self.devices(device_id)
        if d is None:
            self.bad((*path, "device"), f"unknown device {device_id!r}")
        return d

    def readable_attribute(self, device_id: str | None, attribute: str | None, path: Path
                           ) -> None:
        d = self.device(device_id, path)
        if d is None or attribute is None:
            return
        if d.attributes and attribute not in d.attributes:
            self.bad((*path, "attribute"), f"unknown attribute {attribute!r} of device "
                     f"{d.id!r} (it has: {', '.join(d.attributes)})")
        elif d.restricted:
            self.bad((*path, "device"), f"device {d.id!r} is restricted: automations may not "
                     "use its data")
        elif not d.scope.allows_attribute(attribute):
            self.bad((*path, "attribute"), f"attribute {attribute!r} of device {d.id!r} is "
                     "outside the device's privacy scope for automations")

    def trigger(self, t: Trigger) -> None:
        if t.type in ("state", "numeric"):
            self.readable_attribute(t.device, t.attribute, t.path)
        elif t.type == "event":
            d = self.device(t.device, t.path)
            if d is None or t.event is None:
                return
            if d.events and t.event not in d.events:
                self.bad((*t.path, "event"), f"unknown event {t.event!r} of device {d.id!r} "
                         f"(it has: {', '.join(d.events) or 'none'})")
            elif not may_read_event(d, t.event):
                why = "is restricted" if d.restricted else (
                    f"does not share event {t.event!r} with automations (privacy scope)")
                self.bad((*t.path, "event"), f"device {d.id!r} {why}")
        elif t.type == "availability":
            d = self.device(t.device, t.path)
            if d is not None and not may_read_availability(d):
                self.bad((*t.path, "device"), f"device {d.id!r} is restricted: automations "
                         "may not use its data")
        elif t.type == "sun":
            self.location(t.path)

    def location(self, path: Path) -> None:
        missing = self.has_location()
        if missing:
            self.bad(path, missing)

    def condition(self, c: Condition) -> None:
        if c.type in ("state", "numeric"):
            self.readable_attribute(c.device, c.attribute, c.path)
        elif c.type == "sun":
            self.location(c.path)

    def action(self, a: Action, auto: Automation, automations: Mapping[str, Any]) -> None:
        if isinstance(a, CommandAction):
            d = self.device(a.device, a.path)
            if d is not None and a.command:
                self.command(d, a.command, a.params, a.path)
        elif isinstance(a, SceneAction):
            for i, e in enumerate(a.entries):
                ep = (*a.path, "entries", i)
                d = self.device(e.device, ep)
                if d is None:
                    continue
                if e.command is not None:
                    self.command(d, e.command, e.params, ep)
                elif e.state is not None:
                    try:
                        scene_commands(d, e.state)
                    except ValidationError as exc:
                        self.bad((*ep, "state", exc.field or ""), str(exc))
        elif isinstance(a, (EnableAction, DisableAction)) and a.target:
            if a.target not in automations:
                self.bad((*a.path, "automation"), f"unknown automation {a.target!r}")

    def command(self, d: Device, command: str, params: dict[str, Any], path: Path) -> None:
        try:
            spec = d.command(command)
        except ValidationError as exc:
            self.bad((*path, "command"), str(exc))
            return
        try:
            spec.validate(params)
        except ValidationError as exc:
            self.bad((*path, *(exc.field or "params").split(".")), str(exc))
