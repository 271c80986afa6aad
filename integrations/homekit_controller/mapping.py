"""HomeKit services and characteristics as hub attributes, commands and events.

Pure data and conversions (no I/O), so they are unit-tested on their own. A HomeKit value
is checked against the characteristic's own metadata (format, min/max, valid values) before
it becomes hub state: a malformed value from an accessory is refused, never stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# short UUIDs (the HAP base UUID is 0000XXXX-0000-1000-8000-0026BB765291)
S_LIGHTBULB, S_OUTLET, S_SWITCH, S_THERMOSTAT = "43", "47", "49", "4A"
S_LOCK, S_COVERING, S_BUTTON = "45", "8C", "89"
S_TEMPERATURE, S_HUMIDITY, S_CONTACT, S_MOTION, S_OCCUPANCY, S_LIGHT = (
    "8A", "82", "80", "85", "86", "84")

HVAC_MODES = ("off", "heat", "cool", "auto")
HVAC_ACTIONS = ("off", "heating", "cooling")
LOCK_STATES = ("unlocked", "locked", "jammed", "unknown")
POSITION_STATES = ("closing", "opening", "stopped")
PRESSES = ("single", "double", "long")


class MalformedValue(ValueError):
    """A value from an accessory (or for one) that its characteristic does not allow."""


def short_uuid(uuid: str) -> str:
    """'00000025-0000-1000-8000-0026BB765291' -> '25'; other UUIDs are kept whole."""
    u = uuid.upper()
    if u.endswith("-0000-1000-8000-0026BB765291"):
        return u.split("-", 1)[0].lstrip("0") or "0"
    return u


def _enum(names: tuple[str, ...]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    def to_hub(v: Any) -> str:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(names):
            raise MalformedValue(f"expected 0..{len(names) - 1}, got {v!r}")
        return names[v]

    def to_hap(v: Any) -> int:
        if v not in names:
            raise MalformedValue(f"expected one of {', '.join(names)}")
        return names.index(v)

    return to_hub, to_hap


def _flag(v: Any) -> bool:  # 0/1 uint8 characteristics that mean yes/no
    if isinstance(v, bool):
        return v
    if v in (0, 1):
        return bool(v)
    raise MalformedValue(f"expected 0 or 1, got {v!r}")


@dataclass(frozen=True, slots=True)
class Attr:
    """How one characteristic (in one kind of service) appears as a hub attribute."""

    name: str
    to_hub: Callable[[Any], Any] | None = None  # after the metadata check; None: as is
    to_hap: Callable[[Any], Any] | None = None  # set only for writable ones


_HVAC = _enum(HVAC_MODES)
_LOCK_TARGET = _enum(LOCK_STATES[:2])
# service -> characteristic -> attribute
SERVICES: dict[str, dict[str, Attr]] = {
    S_LIGHTBULB: {"25": Attr("on", None, bool), "8": Attr("brightness", None, int),
                  "CE": Attr("color_temp", None, int), "13": Attr("hue", None, float),
                  "2F": Attr("saturation", None, float)},
    S_OUTLET: {"25": Attr("on", None, bool), "26": Attr("in_use")},
    S_SWITCH: {"25": Attr("on", None, bool)},
    S_THERMOSTAT: {"11": Attr("temperature"), "35": Attr("target_temperature", None, float),
                   "F": Attr("hvac_action", _enum(HVAC_ACTIONS)[0]),
                   "33": Attr("hvac_mode", _HVAC[0], _HVAC[1]),
                   "10": Attr("humidity")},
    S_LOCK: {"1D": Attr("lock_state", _enum(LOCK_STATES)[0]),
             "1E": Attr("lock_target", _LOCK_TARGET[0], _LOCK_TARGET[1])},
    S_COVERING: {"6D": Attr("position"), "7C": Attr("target_position", None, int),
                 "72": Attr("moving", _enum(POSITION_STATES)[0])},
    S_TEMPERATURE: {"11": Attr("temperature")},
    S_HUMIDITY: {"10": Attr("humidity")},
    S_CONTACT: {"6A": Attr("open", _flag)},  # 0 = contact detected (closed)
    S_MOTION: {"22": Attr("motion", _flag)},
    S_OCCUPANCY: {"71": Attr("occupancy", _flag)},
    S_LIGHT: {"6B": Attr("illuminance")},
}
INPUT_EVENT = "73"  # of a stateless programmable switch: an event, not state

# commands -> (attribute written, parameter); the parameterless ones write a constant
COMMANDS: dict[str, tuple[str, str | None, Any]] = {
    "turn_on": ("on", None, True), "turn_off": ("on", None, False),
    "set_brightness": ("brightness", "brightness", None),
    "set_color_temp": ("color_temp", "mireds", None),
    "set_target_temperature": ("target_temperature", "temperature", None),
    "set_hvac_mode": ("hvac_mode", "mode", None),
    "lock": ("lock_target", None, "locked"), "unlock": ("lock_target", None, "unlocked"),
    "set_position": ("target_position", "position", None),
}
PARAM_TYPES = {"brightness": "number", "mireds": "number", "temperature": "number",
               "mode": "string", "position": "number"}


@dataclass(slots=True)
class Point:
    """One mapped characteristic of a paired accessory."""

    aid: int
    iid: int
    attr: Attr
    name: str  # hub attribute name (suffixed when a name repeats)
    fmt: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    valid: tuple[Any, ...] | None = None
    writable: bool = False
    events: bool = False

    def check(self, value: Any) -> Any:
        """An accessory's value as hub state, or MalformedValue."""
        return (self.attr.to_hub or (lambda v: v))(check_format(self, value))

    def encode(self, value: Any) -> Any:
        """A hub value for this characteristic, or MalformedValue (names the limits)."""
        to_hap = self.attr.to_hap
        raw: Any
        if to_hap is None or not self.writable:
            raise MalformedValue(f"{self.name} cannot be written")
        if to_hap is bool:
            if not isinstance(value, bool):
                raise MalformedValue(f"{self.name}: expected true or false")
            raw = value
        elif to_hap in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MalformedValue(f"{self.name}: expected a number")
            raw = value
        else:
            raw = to_hap(value)
        return check_format(self, raw)


@dataclass(slots=True)
class Mapping:
    """A paired accessory (or bridge) as one hub device."""

    points: dict[tuple[int, int], Point] = field(default_factory=dict)
    by_name: dict[str, Point] = field(default_factory=dict)
    buttons: dict[tuple[int, int], str] = field(default_factory=dict)  # -> event name
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    firmware: str | None = None

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.buttons.values()))

    def commands(self) -> list[tuple[str, dict[str, str], tuple[str, ...]]]:
        """(name, params, required) of every command this accessory can carry out."""
        out: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        for name, (attr, param, _const) in COMMANDS.items():
            point = self.by_name.get(attr)
            if point is None or not point.writable:
                continue
            params = {param: PARAM_TYPES[param]} if param else {}
            out.append((name, params, (param,) if param else ()))
        if "on" in self.by_name and self.by_name["on"].writable:
            out.append(("toggle", {}, ()))
        if "hue" in self.by_name and "saturation" in self.by_name:
            out.append(("set_hue_saturation", {"hue": "number", "saturation": "number"},
                        ("hue", "saturation")))
        return out

    def writes(self, command: str, params: dict[str, Any], current: Callable[[str], Any]
               ) -> list[tuple[Point, Any, str]]:
        """(point, HAP value, field) to put for a validated command; MalformedValue (with
        the field) when a parameter is out of the characteristic's range."""
        if command == "toggle":
            pairs = [("on", not current("on"), "command")]
        elif command == "set_hue_saturation":
            pairs = [("hue", params["hue"], "params.hue"),
                     ("saturation", params["saturation"], "params.saturation")]
        else:
            attr, param, const = COMMANDS[command]
            value = params[param] if param else const
            pairs = [(attr, value, f"params.{param}" if param else "command")]
        out = []
        for attr, value, where in pairs:
            point = self.by_name[attr]
            try:
                out.append((point, point.encode(value), where))
            except MalformedValue as exc:
                raise MalformedValue(f"{where}: {exc}") from None
        return out


def check_format(point: Point, value: Any) -> Any:
    """The value if it fits the characteristic's format and limits, else MalformedValue."""
    fmt = point.fmt
    if fmt == "bool":
        if isinstance(value, bool):
            return value
        if value in (0, 1) and not isinstance(value, float):
            return bool(value)
        raise MalformedValue(f"{point.name}: expected a boolean, got {value!r}")
    if fmt in ("uint8", "uint16", "uint32", "uint64", "int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise MalformedValue(f"{point.name}: expected a number, got {value!r}")
        if fmt != "float" and value != int(value):
            raise MalformedValue(f"{point.name}: expected an integer, got {value!r}")
        if point.minimum is not None and value < point.minimum:
            raise MalformedValue(f"{point.name}: {value} is below {point.minimum}")
        if point.maximum is not None and value > point.maximum:
            raise MalformedValue(f"{point.name}: {value} is above {point.maximum}")
        if point.valid is not None and value not in point.valid:
            raise MalformedValue(f"{point.name}: {value} is not one of {list(point.valid)}")
        return int(value) if fmt != "float" else value
    if fmt == "string" and not isinstance(value, str):
        raise MalformedValue(f"{point.name}: expected a string, got {value!r}")
    return value


def build(accessories: list[dict[str, Any]]) -> Mapping:
    """Map the accessory database (`/accessories` JSON) to hub attributes and events."""
    mapping = Mapping()
    for acc in accessories:
        aid = int(acc["aid"])
        for service in acc.get("services", []):
            stype = short_uuid(str(service.get("type", "")))
            chars = service.get("characteristics", [])
            if stype == "3E" and aid == 1:  # accessory information
                info = {short_uuid(str(c.get("type", ""))): c.get("value") for c in chars}
                mapping.name = _text(info.get("23"))
                mapping.manufacturer = _text(info.get("20"))
                mapping.model = _text(info.get("21"))
                mapping.firmware = _text(info.get("52"))
                continue
            if stype == S_BUTTON:
                for c in chars:
                    if short_uuid(str(c.get("type", ""))) == INPUT_EVENT:
                        taken = set(mapping.buttons.values())
                        mapping.buttons[(aid, int(c["iid"]))] = _unique("button", taken)
                continue
            table = SERVICES.get(stype)
            if table is None:
                continue
            for c in chars:
                attr = table.get(short_uuid(str(c.get("type", ""))))
                if attr is None:
                    continue
                perms = c.get("perms") or []
                valid = c.get("valid-values")
                point = Point(aid, int(c["iid"]), attr, _unique(attr.name, mapping.by_name),
                              c.get("format"), c.get("minValue"), c.get("maxValue"),
                              tuple(valid) if isinstance(valid, list) else None,
                              "pw" in perms and attr.to_hap is not None, "ev" in perms)
                mapping.points[(aid, point.iid)] = point
                mapping.by_name[point.name] = point
    return mapping


def press(value: Any) -> str:
    """A programmable switch event's kind (0 single, 1 double, 2 long)."""
    return _enum(PRESSES)[0](value)


def _unique(name: str, taken: Any) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
