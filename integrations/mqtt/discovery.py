"""Discovery messages: topics, payloads, abbreviations, the device block, validation.

`<prefix>/<component>/[<node_id>/]<object_id>/config`, retained, carries one entity's
configuration as JSON (an empty payload removes it). `<prefix>/device/<id>/config` carries a
whole device with its entities under `components` (device-based discovery). Everything here is
pure and raises `DiscoveryError` with the offending key: the caller counts and logs it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hub.facade import normalize_mac
from integrations.mqtt.abbreviations import (
    ABBREVIATIONS,
    AVAILABILITY_ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
)

COMPONENTS = frozenset({
    "switch", "light", "sensor", "binary_sensor", "cover", "lock", "button", "number",
    "select", "fan", "climate", "device_automation", "event",
})
# Components of the convention the hub does not model (yet): announced, counted, ignored.
KNOWN_UNSUPPORTED = frozenset({
    "alarm_control_panel", "camera", "device_tracker", "humidifier", "image", "lawn_mower",
    "notify", "scene", "siren", "tag", "text", "update", "vacuum", "valve", "water_heater",
})
MAX_CONFIG_BYTES = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MODES = ("all", "any", "latest")


class DiscoveryError(ValueError):
    """A discovery message the hub refuses; `key` names what was wrong."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)


@dataclass(frozen=True, slots=True)
class DiscoveryTopic:
    component: str
    node_id: str | None
    object_id: str

    @property
    def key(self) -> str:
        """Identifies the announcement: a new config on the same topic replaces it."""
        node = f"{self.node_id}/" if self.node_id else ""
        return f"{self.component}/{node}{self.object_id}"


@dataclass(frozen=True, slots=True)
class DeviceBlock:
    """The `device` block: what groups entities into one hub device."""

    identifiers: tuple[str, ...] = ()
    connections: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    model_id: str | None = None
    sw_version: str | None = None
    hw_version: str | None = None
    serial_number: str | None = None
    suggested_area: str | None = None
    via_device: str | None = None

    @property
    def key(self) -> str | None:
        """A stable key for the device: its first identifier, else its first connection."""
        if self.identifiers:
            return "id:" + self.identifiers[0]
        if self.connections:
            kind, value = self.connections[0]
            if kind == "mac":  # one device whichever way a MAC is written (AA-BB..., aa:bb...)
                value = normalize_mac(value) or value
            return f"{kind}:{value.lower()}"
        return None

    @property
    def mac(self) -> str | None:
        for kind, value in self.connections:
            if kind == "mac":
                return normalize_mac(value)
        return None


@dataclass(frozen=True, slots=True)
class Availability:
    topic: str
    payload_available: str = "online"
    payload_not_available: str = "offline"
    value_template: str | None = None


@dataclass(frozen=True, slots=True)
class EntityConfig:
    """One entity's validated configuration (full key names)."""

    component: str
    discovery: DiscoveryTopic
    options: dict[str, Any]
    device: DeviceBlock | None
    availability: tuple[Availability, ...] = ()
    availability_mode: str = "latest"
    ignored_keys: tuple[str, ...] = ()
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def unique_id(self) -> str | None:
        return self.options.get("unique_id")

    @property
    def name(self) -> str | None:
        name = self.options.get("name")
        return name if isinstance(name, str) else None

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


def parse_topic(prefix: str, topic: str) -> DiscoveryTopic | None:
    """The parts of a discovery topic, or None if `topic` is not one."""
    if not topic.startswith(prefix + "/") or not topic.endswith("/config"):
        return None
    parts = topic[len(prefix) + 1:-len("/config")].split("/")
    if len(parts) == 2:
        component, node_id, object_id = parts[0], None, parts[1]
    elif len(parts) == 3:
        component, node_id, object_id = parts
    else:
        raise DiscoveryError("topic", f"expected {prefix}/<component>/[<node_id>/]<object_id>"
                                      f"/config, got {_clip(topic)!r}")
    for name, value in (("node_id", node_id), ("object_id", object_id)):
        if value is not None and not _ID.match(value):
            raise DiscoveryError("topic", f"{name} must be letters, digits, _ or -, "
                                          f"got {_clip(value)!r}")
    return DiscoveryTopic(component, node_id, object_id)


def decode(payload: bytes, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any] | None:
    """The JSON object of a config payload; None for an empty payload (a removal)."""
    if not payload:
        return None
    if len(payload) > max_bytes:
        raise DiscoveryError("payload", f"{len(payload)} bytes is over the {max_bytes}-byte "
                                        "limit")
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DiscoveryError("payload", f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DiscoveryError("payload", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def parse_config(topic: DiscoveryTopic, raw: dict[str, Any]) -> EntityConfig:
    """Expand abbreviations and `~`, check the types of known keys, read the device block."""
    if topic.component not in COMPONENTS:
        what = "not supported by the hub" if topic.component in KNOWN_UNSUPPORTED else "unknown"
        raise DiscoveryError("component", f"{_clip(topic.component)!r} is {what}")
    options = expand(raw)
    origin = options.pop("origin", None)
    device = parse_device(options.pop("device", None))
    options.pop("components", None)
    options.pop("platform", None)
    ignored: list[str] = []
    for key in list(options):
        check = _CHECKS.get(key)
        if check is None:
            if key.endswith("_topic"):
                check = _topic
            elif key.endswith("_template"):
                check = _template
            else:
                ignored.append(key)
                continue
        try:
            options[key] = check(options[key])
        except DiscoveryError as exc:
            raise DiscoveryError(key, exc.reason) from None
    availability, mode = _availability(options)
    if topic.component == "device_automation":
        for key in ("topic", "type", "subtype"):
            if not isinstance(options.get(key), str):
                raise DiscoveryError(key, "required for a device trigger")
    return EntityConfig(topic.component, topic, options, device, availability, mode,
                        tuple(sorted(ignored)), origin if isinstance(origin, dict) else {})


def parse_device_message(object_id: str, raw: dict[str, Any]) -> list[EntityConfig]:
    """Device-based discovery: one message with the device, its origin and `components`."""
    options = expand(raw)
    components = options.get("components")
    if not isinstance(components, dict) or not components:
        raise DiscoveryError("components", "device discovery needs a non-empty object")
    shared = {k: v for k, v in raw.items() if k not in ("cmps", "components")}
    out = []
    for entity_id, entity in components.items():
        if not isinstance(entity, dict):
            raise DiscoveryError(f"components.{entity_id}", "expected an object")
        platform = entity.get("p", entity.get("platform"))
        if not isinstance(platform, str):
            raise DiscoveryError(f"components.{entity_id}.platform", "required")
        if not _ID.match(str(entity_id)):
            raise DiscoveryError(f"components.{entity_id}", "bad component id")
        merged = {**{k: v for k, v in shared.items() if k not in ("o", "origin")}, **entity}
        out.append(parse_config(DiscoveryTopic(platform, object_id, str(entity_id)), merged))
    return out


def expand(raw: dict[str, Any]) -> dict[str, Any]:
    """Full key names, `~` replaced in every topic (the convention's base topic)."""
    options = {ABBREVIATIONS.get(k, k): v for k, v in raw.items()}
    base = options.pop("~", None)
    if base is not None and not isinstance(base, str):
        raise DiscoveryError("~", "the base topic must be a string")
    device = options.get("device")
    if isinstance(device, dict):
        options["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in device.items()}
    origin = options.get("origin")
    if isinstance(origin, dict):
        options["origin"] = {ORIGIN_ABBREVIATIONS.get(k, k): v for k, v in origin.items()}
    avail = options.get("availability")
    if isinstance(avail, list):
        options["availability"] = [
            {AVAILABILITY_ABBREVIATIONS.get(k, k): v for k, v in a.items()}
            if isinstance(a, dict) else a for a in avail]
    if base:
        for key, value in options.items():
            if (key.endswith("_topic") or key == "topic") and isinstance(value, str):
                options[key] = _tilde(value, base)
        for a in options.get("availability") or ():
            if isinstance(a, dict) and isinstance(a.get("topic"), str):
                a["topic"] = _tilde(a["topic"], base)
    return options


def parse_device(raw: Any) -> DeviceBlock | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DiscoveryError("device", "expected an object")
    ids = raw.get("identifiers")
    if isinstance(ids, (str, int)):
        ids = [ids]
    if ids is not None and not (isinstance(ids, list)
                                and all(isinstance(i, (str, int)) for i in ids)):
        raise DiscoveryError("device.identifiers", "expected a string or a list of strings")
    conns = raw.get("connections") or []
    if not isinstance(conns, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
            for c in conns):
        raise DiscoveryError("device.connections", "expected a list of [type, value] pairs")
    texts: dict[str, str | None] = {}
    for key in ("name", "manufacturer", "model", "model_id", "sw_version", "hw_version",
                "serial_number", "suggested_area", "via_device"):
        value = raw.get(key)
        if value is not None and not isinstance(value, (str, int, float)):
            raise DiscoveryError(f"device.{key}", "expected a string")
        texts[key] = _clip(str(value), 200) if value is not None else None
    block = DeviceBlock(tuple(_clip(str(i), 200) for i in ids or ()),
                        tuple((k.lower(), v) for k, v in conns), **texts)
    return block if block.key is not None else None


# -- value checks ---------------------------------------------------------------------------

_MAX_TOPIC = 512


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise DiscoveryError("", "expected a topic (a non-empty string)")
    if len(value) > _MAX_TOPIC:
        raise DiscoveryError("", f"topic longer than {_MAX_TOPIC} characters")
    if "+" in value or "#" in value or "\0" in value:
        raise DiscoveryError("", f"wildcards are not allowed in {_clip(value)!r}")
    return value


def _template(value: Any) -> str:
    if not isinstance(value, str):
        raise DiscoveryError("", "expected a template (a string)")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise DiscoveryError("", f"expected a string, got {type(value).__name__}")
    return value


def _name(value: Any) -> str | None:
    if value is None:
        return None  # "name": null: the entity is the device's main feature
    return _clip(_text(value), 200)


def _payload(value: Any) -> str:
    """Payloads may be written as strings, numbers or booleans; compared as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DiscoveryError("", f"expected a payload (string or number), got "
                             f"{type(value).__name__}")


def _number(value: Any) -> float:
    """Numbers; numeric strings too (Zigbee2MQTT sends "min_temp": "5")."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise DiscoveryError("", f"expected a number, got {value[:20]!r}") from None
        return int(number) if number.is_integer() else number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DiscoveryError("", f"expected a number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise DiscoveryError("", "expected a finite number")
    return value


def _seconds(value: Any) -> float:
    """A delay in seconds (expire_after, off_delay): a number, not negative."""
    number = _number(value)
    if number < 0:
        raise DiscoveryError("", f"expected seconds (0 or more), got {number}")
    return number


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DiscoveryError("", f"expected an integer, got {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise DiscoveryError("", f"expected true or false, got {type(value).__name__}")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float))
                                              for v in value):
        raise DiscoveryError("", "expected a list of strings")
    if len(value) > 256:
        raise DiscoveryError("", "more than 256 entries")
    return [str(v) for v in value]


def _qos(value: Any) -> int:
    if value not in (0, 1, 2) or isinstance(value, bool):
        raise DiscoveryError("", f"expected 0, 1 or 2, got {value!r}")
    return value


def _passthrough(value: Any) -> Any:
    return value


def _one_of(*allowed: str):
    def check(value: Any) -> str:
        if value not in allowed:
            raise DiscoveryError("", f"expected one of {', '.join(allowed)}, got {value!r}")
        return value
    return check


_PAYLOADS = ("payload_on", "payload_off", "payload_press", "payload_open", "payload_close",
             "payload_stop", "payload_lock", "payload_unlock", "payload_available",
             "payload_not_available", "state_on", "state_off", "state_open", "state_closed",
             "state_opening", "state_closing", "state_stopped", "state_locked",
             "state_unlocked", "state_locking", "state_unlocking", "state_jammed",
             "payload_oscillation_on", "payload_oscillation_off", "payload_reset",
             "payload_reset_percentage", "payload_reset_preset_mode", "payload")
_CHECKS: dict[str, Any] = {
    **{k: _payload for k in _PAYLOADS},
    "name": _name, "unique_id": lambda v: _clip(_payload(v), 200), "object_id": _text,
    "topic": _topic, "type": _text, "subtype": _text, "automation_type": _text,
    "device_class": _text, "state_class": _text, "unit_of_measurement": _text,
    "entity_category": _text, "icon": _text, "encoding": _text, "schema": _one_of(
        "default", "basic", "json", "template"),
    "command_on_template": _template, "command_off_template": _template,
    "qos": _qos, "retain": _bool, "optimistic": _bool, "force_update": _bool,
    "enabled_by_default": _bool, "brightness": _bool, "color_temp": _bool,
    "effect": _bool, "rgb": _bool, "xy": _bool, "hs": _bool,
    "brightness_scale": _number, "min": _number, "max": _number, "step": _number,
    "min_mireds": _number, "max_mireds": _number, "min_kelvin": _number,
    "max_kelvin": _number, "min_temp": _number, "max_temp": _number, "temp_step": _number,
    "precision": _number, "position_open": _number, "position_closed": _number,
    "tilt_min": _number, "tilt_max": _number, "tilt_opened_value": _number,
    "tilt_closed_value": _number, "speed_range_min": _number, "speed_range_max": _number,
    "expire_after": _seconds, "off_delay": _seconds, "suggested_display_precision": _int,
    "options": _strings, "effect_list": _strings, "modes": _strings, "preset_modes": _strings,
    "fan_modes": _strings, "swing_modes": _strings, "supported_color_modes": _strings,
    "event_types": _strings,
    "mode": _text, "temperature_unit": _one_of("C", "F"),
    "color_temp_kelvin": _bool, "on_command_type": _one_of("last", "first", "brightness"),
    "reports_position": _bool, "tilt_optimistic": _bool, "tilt_invert_state": _bool,
    "availability": _passthrough, "availability_mode": _passthrough,
    "json_attributes": _passthrough, "value_template": _template,
}


def _availability(options: dict[str, Any]) -> tuple[tuple[Availability, ...], str]:
    out: list[Availability] = []
    single = options.get("availability_topic")
    if single is not None:
        out.append(Availability(single, options.get("payload_available", "online"),
                                options.get("payload_not_available", "offline"),
                                options.get("availability_template")))
    entries = options.get("availability")
    if entries is not None:
        if not isinstance(entries, list):
            raise DiscoveryError("availability", "expected a list")
        for i, entry in enumerate(entries[:16]):
            if not isinstance(entry, dict):
                raise DiscoveryError(f"availability[{i}]", "expected an object")
            try:
                topic = _topic(entry.get("topic"))
                out.append(Availability(
                    topic, _payload(entry.get("payload_available", "online")),
                    _payload(entry.get("payload_not_available", "offline")),
                    _template(entry["value_template"]) if "value_template" in entry else None))
            except DiscoveryError as exc:
                raise DiscoveryError(f"availability[{i}]", exc.reason) from None
    mode = options.get("availability_mode", "latest")
    if mode not in _MODES:
        raise DiscoveryError("availability_mode", f"expected one of {', '.join(_MODES)}, "
                                                  f"got {_clip(str(mode))!r}")
    return tuple(out), mode


def _tilde(value: str, base: str) -> str:
    if value.startswith("~"):
        value = base + value[1:]
    if value.endswith("~"):
        value = value[:-1] + base
    return value


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
