"""The device registry: every adopted device, persisted, with what it can be told to do."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hub.bus import DeviceRegistryChanged, EventBus
from hub.clock import Clock
from hub.errors import NotFound, StorageError, ValidationError
from hub.storage import Database, Schema

Transport = Literal["lan", "ble", "virtual", "mqtt"]

SCHEMA = Schema(
    "devices",
    (
        """
        CREATE TABLE devices(
            id TEXT PRIMARY KEY,
            did TEXT, mac TEXT,
            name TEXT NOT NULL,
            model TEXT, manufacturer TEXT, fw_version TEXT,
            integration TEXT NOT NULL,
            transport TEXT, area TEXT,
            scope TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL, updated_at REAL NOT NULL
        );
        CREATE INDEX devices_integration ON devices(integration);
        """,
        # v2: what a device accepts (commands) and what it reports, kept with the device
        """
        ALTER TABLE devices ADD COLUMN capabilities TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE devices ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
        CREATE UNIQUE INDEX devices_did ON devices(did) WHERE did IS NOT NULL;
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class PrivacyScope:
    """Which attributes and events automations may read; None means all of them."""

    attributes: frozenset[str] | None = None
    events: frozenset[str] | None = None

    def allows_attribute(self, name: str) -> bool:
        return self.attributes is None or name in self.attributes

    def allows_event(self, name: str) -> bool:
        return self.events is None or name in self.events

    def to_json(self) -> dict[str, list[str] | None]:
        return {
            "attributes": sorted(self.attributes) if self.attributes is not None else None,
            "events": sorted(self.events) if self.events is not None else None,
        }

    @classmethod
    def from_json(cls, raw: object, field_name: str = "scope") -> PrivacyScope:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"attributes", "events"}:
            raise ValidationError(field_name, "scope takes 'attributes' and 'events' lists")
        out: dict[str, frozenset[str] | None] = {}
        for key in ("attributes", "events"):
            value = raw.get(key)
            if value is None:
                out[key] = None
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = frozenset(value)
            else:
                raise ValidationError(f"{field_name}.{key}", "expected a list of names or null")
        return cls(out["attributes"], out["events"])


NUMBER_LIMIT = 2.0**53
"""Default bound of a number parameter without a declared range: JSON's exact integers."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command a device accepts, with its parameters' JSON types, number ranges and the
    values a string parameter may take."""

    name: str
    params: dict[str, str] = field(default_factory=dict)  # name -> "number"|"string"|"boolean"
    required: tuple[str, ...] = ()
    # number parameter -> (min, max); every number must be finite, and a bound not declared
    # (None, or no range at all) is +-NUMBER_LIMIT
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # string parameter -> the values it may take, in the device's order (e.g. `entity`: the
    # entities of the device that take this command; `hvac_mode`: the modes it has)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def validate(self, params: object) -> dict[str, Any]:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValidationError("params", "expected an object")
        for key in params:
            if key not in self.params:
                raise ValidationError(f"params.{key}", f"unknown parameter for '{self.name}'")
        for key in self.required:
            if key not in params:
                raise ValidationError(f"params.{key}", "required")
        for key, value in params.items():
            want = self.params[key]
            ok = {
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                "string": isinstance(value, str),
                "boolean": isinstance(value, bool),
            }.get(want, True)
            if not ok:
                raise ValidationError(f"params.{key}", f"expected a {want}")
            if want == "number":
                self._check_number(key, value)
            allowed = self.choices.get(key)
            if allowed is not None and value not in allowed:
                raise ValidationError(f"params.{key}", "expected one of: "
                                      + ", ".join(allowed))
        return params

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "params": self.params,
                               "required": list(self.required)}
        if self.ranges:
            out["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        if self.choices:
            out["choices"] = {k: list(v) for k, v in self.choices.items()}
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CommandSpec:
        return cls(raw["name"], dict(raw.get("params", {})), tuple(raw.get("required", [])),
                   {k: (lo, hi) for k, (lo, hi) in (raw.get("ranges") or {}).items()},
                   {k: tuple(v) for k, v in (raw.get("choices") or {}).items()})

    def _check_number(self, key: str, value: float) -> None:
        lo, hi = self.ranges.get(key, (None, None))
        lo = -NUMBER_LIMIT if lo is None else lo
        hi = NUMBER_LIMIT if hi is None else hi
        # compared as they are: a 4,001-digit integer must not become an OverflowError
        finite = not isinstance(value, float) or math.isfinite(value)
        if not finite or not lo <= value <= hi:
            raise ValidationError(f"params.{key}",
                                  f"expected a finite number within [{lo:g}, {hi:g}]")


@dataclass(frozen=True, slots=True)
class AttributeMeta:
    """What an attribute's values mean: their unit, the kind of quantity, their range.

    Filled by the integration from the device's own definition (a virtual sensor's `unit:`
    in the config, the units BTHome objects carry, MQTT discovery's `unit_of_measurement`,
    ESPHome's entity info...). Every field is optional; absent ones are left out of JSON,
    so rows stored before a field existed read back unchanged.
    """

    unit: str | None = None  # as the device states it: "°C", "%", "hPa", "W"
    device_class: str | None = None  # the kind of quantity: "temperature", "humidity", ...
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    # how values add up over time (for statistics): "measurement", "total",
    # "total_increasing" (a meter that only resets to zero)
    state_class: str | None = None
    options: tuple[str, ...] | None = None  # the values a select/enum attribute can take

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: value for key, value in zip(_META_KEYS, (
            self.unit, self.device_class, self.minimum, self.maximum, self.step,
            self.state_class), strict=True) if value is not None}
        if self.options is not None:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AttributeMeta:
        options = raw.get("options")
        return cls(unit=raw.get("unit"), device_class=raw.get("device_class"),
                   minimum=raw.get("min"), maximum=raw.get("max"), step=raw.get("step"),
                   state_class=raw.get("state_class"),
                   options=tuple(str(o) for o in options) if options is not None else None)


_META_KEYS = ("unit", "device_class", "min", "max", "step", "state_class")


@dataclass(frozen=True, slots=True)
class Device:
    """An adopted device."""

    id: str
    name: str
    integration: str
    did: str | None = None
    mac: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    fw_version: str | None = None
    transport: Transport | None = None
    area: str | None = None
    scope: PrivacyScope = PrivacyScope()
    commands: tuple[CommandSpec, ...] = ()
    attributes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    # attribute -> what its values mean (only the attributes something is known about)
    attribute_meta: dict[str, AttributeMeta] = field(default_factory=dict)
    restricted: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    def command(self, name: str) -> CommandSpec:
        for spec in self.commands:
            if spec.name == name:
                return spec
        accepted = ", ".join(c.name for c in self.commands) or "none"
        raise ValidationError("command", f"device does not accept '{name}' (accepts: {accepted})")

    def unit(self, attribute: str) -> str | None:
        meta = self.attribute_meta.get(attribute)
        return meta.unit if meta is not None else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "integration": self.integration,
            "did": self.did, "mac": self.mac, "model": self.model,
            "manufacturer": self.manufacturer, "fw_version": self.fw_version,
            "transport": self.transport, "area": self.area, "scope": self.scope.to_json(),
            "commands": [c.to_json() for c in self.commands],
            "attributes": list(self.attributes), "events": list(self.events),
            "restricted": self.restricted,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }
        if self.attribute_meta:  # lean: only when something is known
            out["attribute_meta"] = _meta_json(self.attribute_meta)
        return out


class DeviceRegistry:
    """All adopted devices, in memory for reads and persisted through the batching writer."""

    def __init__(self, db: Database, bus: EventBus, clock: Clock) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock
        self._devices: dict[str, Device] = {}
        self._on_remove: list[Callable[[Device], Awaitable[object]]] = []

    async def load(self) -> None:
        for row in await self._db.fetchall("SELECT * FROM devices"):
            device = _from_row(row)
            self._devices[device.id] = device

    def __iter__(self) -> Iterator[Device]:
        return iter(list(self._devices.values()))

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def get(self, device_id: str) -> Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise NotFound(f"no device {device_id!r}") from None

    def find(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def by_integration(self, integration: str) -> list[Device]:
        return [d for d in self._devices.values() if d.integration == integration]

    def add(self, device: Device, *, durable: bool = False) -> Device:
        """Add or replace a device; persisted in the next batch (or now, with `durable`)."""
        now = self._clock.time()
        existing = self._devices.get(device.id)
        created = existing.created_at if existing else (device.created_at or now)
        device = replace(device, id=device.id or uuid.uuid4().hex, created_at=created,
                         updated_at=now)
        if existing == device:
            return existing
        self._devices[device.id] = device
        self._db.enqueue(_UPSERT, _to_row(device))
        action = "updated" if existing else "added"
        self._bus.publish(DeviceRegistryChanged(action, device.id))
        return device

    async def update(self, device_id: str, **changes: Any) -> Device:
        """Change and store a device; if it cannot be stored (a full disk) it is unchanged."""
        old = self.get(device_id)
        device = self.add(replace(old, **changes))
        try:
            await self._db.flush()
        except StorageError:
            if self._devices.get(device_id) is device:  # back to what is stored
                self._devices[device_id] = old
                self._bus.publish(DeviceRegistryChanged("updated", device_id))
            raise
        return device

    def on_remove(self, callback: Callable[[Device], Awaitable[object]]) -> Callable[[], None]:
        """`await callback(device)` before a device is removed (deleted or erased): its
        integration ends the device's connections and deletes its secrets. Returns the undo."""
        self._on_remove.append(callback)
        return lambda: self._on_remove.remove(callback)

    async def remove(self, device_id: str) -> Device:
        """Remove a device: its integration forgets it first (connections, secrets)."""
        device = self.get(device_id)
        for callback in list(self._on_remove):
            await callback(device)
        self._devices.pop(device_id, None)
        await self._db.write("DELETE FROM devices WHERE id = ?", (device_id,))
        self._bus.publish(DeviceRegistryChanged("removed", device_id))
        return device

    def all(self) -> Iterable[Device]:
        return self._devices.values()


_COLUMNS = (
    "id", "did", "mac", "name", "model", "manufacturer", "fw_version", "integration",
    "transport", "area", "scope", "created_at", "updated_at", "capabilities", "restricted",
)
_UPSERT = (
    f"INSERT INTO devices({', '.join(_COLUMNS)}) VALUES({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")
)


def _to_row(d: Device) -> tuple[object, ...]:
    caps: dict[str, Any] = {
        "commands": [c.to_json() for c in d.commands],
        "attributes": list(d.attributes),
        "events": list(d.events),
    }
    if d.attribute_meta:
        caps["attribute_meta"] = _meta_json(d.attribute_meta)
    return (
        d.id, d.did, d.mac, d.name, d.model, d.manufacturer, d.fw_version, d.integration,
        d.transport, d.area, json.dumps(d.scope.to_json()), d.created_at, d.updated_at,
        json.dumps(caps), int(d.restricted),
    )


def _from_row(row: sqlite3.Row) -> Device:
    caps = json.loads(row["capabilities"] or "{}")
    return Device(
        id=row["id"], name=row["name"], integration=row["integration"], did=row["did"],
        mac=row["mac"], model=row["model"], manufacturer=row["manufacturer"],
        fw_version=row["fw_version"], transport=row["transport"], area=row["area"],
        scope=PrivacyScope.from_json(json.loads(row["scope"] or "{}") or None),
        commands=tuple(CommandSpec.from_json(c) for c in caps.get("commands", [])),
        attributes=tuple(caps.get("attributes", [])),
        events=tuple(caps.get("events", [])),
        attribute_meta={k: AttributeMeta.from_json(v)
                        for k, v in (caps.get("attribute_meta") or {}).items()},
        restricted=bool(row["restricted"]),
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _meta_json(meta: dict[str, AttributeMeta]) -> dict[str, dict[str, Any]]:
    return {name: m.to_json() for name, m in meta.items() if m.to_json()}
