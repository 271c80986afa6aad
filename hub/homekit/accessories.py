"""Which HomeKit services a hub device becomes, and how values cross in both directions.

A device is described to Apple Home only through what it already declares (attributes,
commands, events) and only within its privacy scope: an attribute the scope hides never
becomes a characteristic. Pure data and functions; HAP-python is used by bridge.py only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.devices import Device

HVAC_MODES = ("off", "heat", "cool", "auto")
HVAC_ACTIONS = ("off", "heating", "cooling")
LOCK_STATES = ("unlocked", "locked", "jammed", "unknown")
POSITION_STATES = ("closing", "opening", "stopped")
PRESSES = {"single": 0, "double": 1, "long": 2}


@dataclass(frozen=True, slots=True)
class Link:
    """One hub attribute as one HomeKit characteristic of one service."""

    service: str  # HAP-python service name
    char: str  # HAP-python characteristic name
    attribute: str
    to_hap: Callable[[Any], Any]
    command: Callable[[Any], tuple[str, dict[str, Any]]] | None = None  # a phone's write


@dataclass(frozen=True, slots=True)
class Plan:
    """A device as an accessory: its characteristics and its button events."""

    category: str  # HAP-python category constant name
    links: tuple[Link, ...]
    buttons: tuple[str, ...]  # device event types shown as a programmable switch

    @property
    def signature(self) -> tuple[Any, ...]:
        """What Apple Home sees of it (a change means the bridge must be rebuilt)."""
        return (self.category, self.buttons, tuple(
            (lk.service, lk.char, lk.attribute, lk.command is not None) for lk in self.links))


def plan(device: Device) -> Plan | None:
    """What Apple Home would see of `device` (None: nothing it can show)."""
    attrs = {a for a in device.attributes if device.scope.allows_attribute(a)}
    commands = {c.name for c in device.commands}
    links: list[Link] = []
    category = "CATEGORY_OTHER"

    def add(service: str, char: str, attribute: str, to_hap: Callable[[Any], Any] = _same,
            command: Callable[[Any], tuple[str, dict[str, Any]]] | None = None,
            needs: tuple[str, ...] = ()) -> None:
        if attribute in attrs:
            writable = command if command is not None and set(needs) <= commands else None
            links.append(Link(service, char, attribute, to_hap, writable))

    if "on" in attrs and {"turn_on", "turn_off"} <= commands:
        light = "brightness" in attrs and "set_brightness" in commands
        service = "Lightbulb" if light else "Switch"
        category = "CATEGORY_LIGHTBULB" if light else "CATEGORY_SWITCH"
        add(service, "On", "on", bool, _on, ("turn_on", "turn_off"))
        if light:
            add(service, "Brightness", "brightness", _int,
                lambda v: ("set_brightness", {"brightness": v}), ("set_brightness",))
            add(service, "ColorTemperature", "color_temp", _int,
                lambda v: ("set_color_temp", {"mireds": v}), ("set_color_temp",))
    if "target_temperature" in attrs and "set_target_temperature" in commands:
        category = "CATEGORY_THERMOSTAT"
        add("Thermostat", "CurrentTemperature", "temperature", float)
        add("Thermostat", "TargetTemperature", "target_temperature", float,
            lambda v: ("set_target_temperature", {"temperature": v}),
            ("set_target_temperature",))
        add("Thermostat", "TargetHeatingCoolingState", "hvac_mode", _index(HVAC_MODES),
            lambda v: ("set_hvac_mode", {"mode": HVAC_MODES[v]}), ("set_hvac_mode",))
        add("Thermostat", "CurrentHeatingCoolingState", "hvac_action", _index(HVAC_ACTIONS))
    else:
        add("TemperatureSensor", "CurrentTemperature", "temperature", float)
        if category == "CATEGORY_OTHER" and "temperature" in attrs:
            category = "CATEGORY_SENSOR"
    if "lock_state" in attrs and {"lock", "unlock"} <= commands:
        category = "CATEGORY_DOOR_LOCK"
        add("LockMechanism", "LockCurrentState", "lock_state", _index(LOCK_STATES))
        add("LockMechanism", "LockTargetState", "lock_target", _index(LOCK_STATES[:2]),
            lambda v: ("lock" if v else "unlock", {}), ("lock", "unlock"))
    if "position" in attrs and "set_position" in commands:
        category = "CATEGORY_WINDOW_COVERING"
        add("WindowCovering", "CurrentPosition", "position", _int)
        add("WindowCovering", "TargetPosition", "target_position", _int,
            lambda v: ("set_position", {"position": v}), ("set_position",))
        add("WindowCovering", "PositionState", "moving", _index(POSITION_STATES))
    add("HumiditySensor", "CurrentRelativeHumidity", "humidity", float)
    add("ContactSensor", "ContactSensorState", "open", _int_bool)
    add("MotionSensor", "MotionDetected", "motion", bool)
    add("OccupancySensor", "OccupancyDetected", "occupancy", _int_bool)
    add("LightSensor", "CurrentAmbientLightLevel", "illuminance", float)
    buttons = tuple(e for e in device.events
                    if e in ("press", "button") and device.scope.allows_event(e))
    if not links and not buttons:
        return None
    if category == "CATEGORY_OTHER":
        category = "CATEGORY_PROGRAMMABLE_SWITCH" if buttons and not links else (
            "CATEGORY_SENSOR")
    return Plan(category, tuple(links), buttons)


def press_value(data: dict[str, Any]) -> int:
    """A device event's press kind as the programmable switch's value (single by default)."""
    return PRESSES.get(str(data.get("press", "single")), 0)


def _same(v: Any) -> Any:
    return v


def _int(v: Any) -> int:
    return round(v)


def _int_bool(v: Any) -> int:
    return 1 if v else 0


def _index(names: tuple[str, ...]) -> Callable[[Any], int]:
    def to_hap(v: Any) -> int:
        if v not in names:
            raise ValueError(f"{v!r} is not one of {', '.join(names)}")
        return names.index(v)

    return to_hap


def _on(v: Any) -> tuple[str, dict[str, Any]]:
    return ("turn_on" if v else "turn_off", {})
