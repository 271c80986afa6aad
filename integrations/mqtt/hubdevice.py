"""The hub's side of an MQTT device, shared by the convention's devices (bridge.py) and
Tasmota's (tasmota.py): what it accepts and reports from its entities, the entity a command
goes to, and its discovered item kept in step with adoption, removal and erasure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from hub.facade import AttributeMeta, CommandSpec, Device, IntegrationContext
from integrations.mqtt.entities import CommandError

SOURCE = "mqtt"


@dataclass(slots=True)
class RateWindow:
    """One device's messages in the current second (flood control)."""

    start: float = 0.0
    count: int = 0

    def admit(self, now: float, limit: float) -> bool:
        if now - self.start >= 1.0:
            self.start, self.count = now, 0
        self.count += 1
        return self.count <= limit


class EntityLike(Protocol):
    key: str
    component: str
    required: dict[str, tuple[str, ...]]

    def accepts(self) -> dict[str, dict[str, str]]: ...
    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]: ...
    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]: ...
    def all_attributes(self) -> dict[str, dict[str, Any]]: ...
    def events(self) -> tuple[str, ...]: ...


E = TypeVar("E", bound=EntityLike)


def capabilities(entities: Iterable[EntityLike], events: Iterable[str] = ()) -> dict[str, Any]:
    """Device fields (for dataclasses.replace) from its entities: commands shared by several
    entities merged, `entity` picking one (its choices: the keys of the entities that take
    the command, in announcement order); each parameter's widest range and, for a string
    parameter every entity taking it lists values for, their union (the entity checks its
    own); a parameter is required only when every entity taking the command needs it.
    Attributes with their metadata, events."""
    commands: dict[str, dict[str, str]] = {}
    required: dict[str, set[str]] = {}
    ranges: dict[str, dict[str, tuple[float, float]]] = {}
    takers: dict[str, list[str]] = {}  # command -> the entities that take it
    values: dict[tuple[str, str], dict[str, None]] = {}  # (command, param) -> values
    free: set[tuple[str, str]] = set()  # some entity takes any value there
    attributes: dict[str, dict[str, Any]] = {}
    names: dict[str, None] = dict.fromkeys(events)
    for entity in entities:
        entity_ranges = entity.ranges()
        entity_choices = entity.choices()
        for name, params in entity.accepts().items():
            commands.setdefault(name, {"entity": "string"}).update(params)
            need = set(entity.required.get(name, ()))
            required[name] = required[name] & need if name in required else need
            takers.setdefault(name, []).append(entity.key)
            for param, (lo, hi) in entity_ranges.get(name, {}).items():
                if param in params:
                    old = ranges.setdefault(name, {}).get(param, (lo, hi))
                    ranges[name][param] = (min(lo, old[0]), max(hi, old[1]))
            own = entity_choices.get(name, {})
            for param, kind in params.items():
                if kind == "string" and own.get(param):
                    values.setdefault((name, param), {}).update(dict.fromkeys(own[param]))
                elif kind == "string":
                    free.add((name, param))
        attributes.update(entity.all_attributes())
        names.update(dict.fromkeys(entity.events()))
    meta = {a: AttributeMeta.from_json(m) for a, m in attributes.items()}
    specs = []
    for name, params in sorted(commands.items()):
        choices = {"entity": tuple(takers[name])}
        choices.update({param: tuple(v) for (command, param), v in values.items()
                        if command == name and (command, param) not in free})
        specs.append(CommandSpec(name, params, tuple(sorted(required[name])),
                                 dict(ranges.get(name, {})), choices))
    return {"commands": tuple(specs),
            "attributes": tuple(attributes), "events": tuple(names),
            "attribute_meta": {a: m for a, m in meta.items() if m.to_json()}}


def pick_entity(entities: Iterable[E], name: str,
                params: dict[str, Any]) -> tuple[E, dict[str, Any]]:
    """The entity a command goes to (`entity` names it, else the first that accepts it) and
    the command's own parameters; CommandError names what does not fit."""
    params = dict(params)
    wanted = params.pop("entity", None)
    if wanted is not None:
        entity = next((e for e in entities if e.key == wanted), None)
        if entity is None or name not in entity.accepts():
            raise CommandError("params.entity", f"no entity {wanted!r} accepts {name}")
    else:
        entity = next((e for e in entities if name in e.accepts()), None)
        if entity is None:
            raise CommandError("command", f"no entity accepts {name}")
    unknown = set(params) - set(entity.accepts()[name])
    if unknown:
        raise CommandError(f"params.{sorted(unknown)[0]}",
                           f"{entity.component} {entity.key} does not take it")
    return entity, params


def adopted(ctx: IntegrationContext, base: Device, existing: Device | None,
            register: Callable[[Device], Device], values: dict[str, Any]) -> Device:
    """Register a device the owner adopts: the privacy scope of an earlier adoption is kept,
    and the values seen before (held in memory only) become its first state."""
    if existing is not None:
        base = replace(base, scope=existing.scope)
    registered = register(base)
    known = {k: v for k, v in values.items() if k in registered.attributes}
    if known:
        ctx.set_state(registered.id, known)
    return registered


def report(ctx: IntegrationContext, key: str, info: Any, present: bool,
           device_id: str | None) -> tuple[Any, str | None, Device | None]:
    """List (or update) the discovered item; returns it, the adopted device's id (None once
    the device was removed or erased: nothing more is kept) and that device."""
    item = ctx.report_discovered(key, info, source=SOURCE, present=present)
    if device_id is not None and ctx.device(device_id) is None:
        device_id = None
    if item.device_id is not None and item.state == "adopted":
        device_id = item.device_id
        return item, device_id, ctx.device(device_id)
    return item, device_id, None


def withdraw(ctx: IntegrationContext, key: str, device_id: str | None) -> None:
    """The device withdrew its announcement: no longer offered; if adopted, unavailable."""
    ctx.withdraw_discovered(key, source=SOURCE)
    if device_id is not None and ctx.device(device_id) is not None:
        ctx.set_available(device_id, False)


def refreshed(device: Device, *, model: str | None, manufacturer: str | None,
              fw_version: str | None, mac: str | None) -> Device:
    """What a device says of itself may change (a firmware update); the rest is the owner's."""
    return replace(device, model=model or device.model,
                   manufacturer=manufacturer or device.manufacturer,
                   fw_version=fw_version or device.fw_version, mac=mac or device.mac)
