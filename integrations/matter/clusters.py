"""Matter clusters -> hub attributes, commands and events.

Each supported cluster says which of its attributes become hub attributes (converted to the
hub's units), which hub commands it offers and how each becomes a Matter command or attribute
write. A cluster on more than one endpoint of a node is addressed by the lowest endpoint
unless a command names another (`endpoint` parameter); attributes of the other endpoints get
an `_<endpoint>` suffix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.facade import AttributeMeta, CommandSpec, ValidationError
from integrations.matter.client import NodeView

ON_OFF, LEVEL, COLOR, BOOLEAN_STATE, OCCUPANCY = 6, 8, 768, 69, 1030
TEMPERATURE, HUMIDITY, THERMOSTAT, DOOR_LOCK, WINDOW_COVERING, SWITCH = (
    1026, 1029, 513, 257, 258, 59)
BASIC_INFORMATION = 40

HVAC_MODES = {0: "off", 1: "auto", 3: "cool", 4: "heat", 5: "emergency_heat", 7: "fan_only",
              8: "dry", 9: "sleep"}
SWITCH_EVENTS = {0: "switch_latched", 1: "initial_press", 2: "long_press", 3: "short_release",
                 4: "long_release", 5: "multi_press_ongoing", 6: "multi_press_complete"}
FEATURE_MAP = 65532
# Switch features (Matter 1.x 1.13.4): momentary release, long press, multi press
SWITCH_RELEASE, SWITCH_LONG, SWITCH_MULTI = 0x04, 0x08, 0x10
COLOR_MODES = {0: "hs", 1: "xy", 2: "color_temp"}
XY_SCALE = 65536  # ColorControl CurrentX/Y: the CIE 1931 coordinate x 65536


@dataclass(frozen=True, slots=True)
class Action:
    """What a hub command becomes: a cluster command, or an attribute write."""

    cluster: int
    command: str | None = None  # Matter command name (wire form)
    payload: dict[str, Any] = field(default_factory=dict)
    attribute: int | None = None  # written instead when set
    value: Any = None
    timed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Cluster:
    cluster: int
    attributes: dict[int, tuple[str, Callable[[Any], Any]]]
    meta: dict[str, AttributeMeta] = field(default_factory=dict)
    commands: tuple[CommandSpec, ...] = ()
    build: Callable[[str, dict[str, Any]], Action] | None = None
    events: tuple[str, ...] = ()
    # hub command -> the attribute it needs on the endpoint (a colour light without the XY
    # feature has no CurrentX and is offered no set_xy)
    needs: dict[str, int] = field(default_factory=dict)


def _xy(v: Any) -> float | None:
    return None if v is None else round(v / XY_SCALE, 4)


def _hundredths(v: Any) -> float | None:
    return None if v is None else round(v / 100, 2)


def _level_percent(v: Any) -> int | None:
    return None if v is None else round(v * 100 / 254)


def _on_off(command: str, _params: dict[str, Any]) -> Action:
    return Action(ON_OFF, {"turn_on": "On", "turn_off": "Off", "toggle": "Toggle"}[command])


def _level(_command: str, params: dict[str, Any]) -> Action:
    level = max(1, round(params["brightness"] * 254 / 100))
    return Action(LEVEL, "MoveToLevelWithOnOff", {"level": level, "transitionTime": 0,
                                                  "optionsMask": 0, "optionsOverride": 0})


# ColorControl's ExecuteIfOff option, set for this command: an off light takes the new colour
# (shown when it is next turned on) instead of ignoring the command (Matter 3.2.6.4)
_EVEN_IF_OFF = {"optionsMask": 1, "optionsOverride": 1}


def _color(command: str, params: dict[str, Any]) -> Action:
    if command == "set_color_temp":
        return Action(COLOR, "MoveToColorTemperature", {
            "colorTemperatureMireds": int(params["mireds"]), "transitionTime": 0,
            **_EVEN_IF_OFF})
    if command == "set_xy":
        return Action(COLOR, "MoveToColor", {
            "colorX": min(65279, round(params["x"] * XY_SCALE)),
            "colorY": min(65279, round(params["y"] * XY_SCALE)), "transitionTime": 0,
            **_EVEN_IF_OFF})
    return Action(COLOR, "MoveToHueAndSaturation", {
        "hue": round(params["hue"] * 254 / 360), "saturation": round(
            params["saturation"] * 254 / 100), "transitionTime": 0,
        **_EVEN_IF_OFF})


def _thermostat(command: str, params: dict[str, Any]) -> Action:
    if command == "set_hvac_mode":
        modes = {name: code for code, name in HVAC_MODES.items()}
        mode = params["mode"]
        if mode not in modes:
            raise ValidationError("params.mode", f"one of {', '.join(sorted(modes))}")
        return Action(THERMOSTAT, attribute=28, value=modes[mode])
    attribute = 18 if command == "set_heating_setpoint" else 17
    return Action(THERMOSTAT, attribute=attribute, value=round(params["temperature"] * 100))


def _lock(command: str, _params: dict[str, Any]) -> Action:
    # DoorLock commands must be timed (Matter 1.0, 5.2.3)
    return Action(DOOR_LOCK, "LockDoor" if command == "lock" else "UnlockDoor",
                  timed_ms=1000)


def _cover(command: str, params: dict[str, Any]) -> Action:
    if command == "set_position":  # hub: 100 = open; Matter: 10000 = fully closed
        return Action(WINDOW_COVERING, "GoToLiftPercentage",
                      {"liftPercent100thsValue": round((100 - params["position"]) * 100)})
    return Action(WINDOW_COVERING, {"open": "UpOrOpen", "close": "DownOrClose",
                                    "stop": "StopMotion"}[command])


def _command(name: str, **params: tuple[str, float | None, float | None]) -> CommandSpec:
    spec = {k: v[0] for k, v in params.items()}
    ranges = {k: (v[1], v[2]) for k, v in params.items() if v[0] == "number"}
    return CommandSpec(name, {**spec, "endpoint": "number"}, tuple(params), {
        **ranges, "endpoint": (0, 65534)})


_PERCENT = AttributeMeta(unit="%", minimum=0, maximum=100, step=1)
CLUSTERS: dict[int, Cluster] = {c.cluster: c for c in (
    Cluster(ON_OFF, {0: ("on", bool)},
            commands=(_command("turn_on"), _command("turn_off"), _command("toggle")),
            build=_on_off),
    Cluster(LEVEL, {0: ("brightness", _level_percent)}, {"brightness": _PERCENT},
            (_command("set_brightness", brightness=("number", 0, 100)),), _level),
    Cluster(COLOR, {0: ("hue", lambda v: None if v is None else round(v * 360 / 254)),
                    1: ("saturation", _level_percent),
                    3: ("color_x", _xy), 4: ("color_y", _xy),
                    7: ("color_temp_mireds", lambda v: v),
                    8: ("color_mode", lambda v: COLOR_MODES.get(v, v))},
            {"color_temp_mireds": AttributeMeta(unit="mired"),
             "hue": AttributeMeta(unit="°", minimum=0, maximum=360, step=1),
             "saturation": _PERCENT},
            (_command("set_color_temp", mireds=("number", 1, 65279)),
             _command("set_hue_saturation", hue=("number", 0, 360),
                      saturation=("number", 0, 100)),
             _command("set_xy", x=("number", 0, 0.996), y=("number", 0, 0.996))), _color,
            needs={"set_color_temp": 7, "set_hue_saturation": 0, "set_xy": 3}),
    Cluster(BOOLEAN_STATE, {0: ("contact", bool)}),
    Cluster(OCCUPANCY, {0: ("occupied", lambda v: bool(v & 1) if v is not None else None)}),
    Cluster(TEMPERATURE, {0: ("temperature", _hundredths)},
            {"temperature": AttributeMeta(unit="°C", device_class="temperature")}),
    Cluster(HUMIDITY, {0: ("humidity", _hundredths)},
            {"humidity": AttributeMeta(unit="%", device_class="humidity")}),
    Cluster(THERMOSTAT, {0: ("current_temperature", _hundredths),
                         17: ("cooling_setpoint", _hundredths),
                         18: ("heating_setpoint", _hundredths),
                         28: ("hvac_mode", lambda v: HVAC_MODES.get(v, v))},
            {"current_temperature": AttributeMeta(unit="°C", device_class="temperature"),
             "heating_setpoint": AttributeMeta(unit="°C", device_class="temperature"),
             "cooling_setpoint": AttributeMeta(unit="°C", device_class="temperature")},
            (_command("set_heating_setpoint", temperature=("number", 5, 35)),
             _command("set_cooling_setpoint", temperature=("number", 10, 40)),
             _command("set_hvac_mode", mode=("string", None, None))), _thermostat),
    Cluster(DOOR_LOCK, {0: ("locked", lambda v: None if v is None else v == 1)},
            commands=(_command("lock"), _command("unlock")), build=_lock),
    Cluster(WINDOW_COVERING, {14: ("position", lambda v: None if v is None
                                   else round(100 - v / 100))}, {"position": _PERCENT},
            (_command("open"), _command("close"), _command("stop"),
             _command("set_position", position=("number", 0, 100))), _cover),
    Cluster(SWITCH, {1: ("switch_position", lambda v: v)},
            events=("button", "press", "long_press", "multi_press")),
)}


@dataclass(frozen=True, slots=True)
class NodeModel:
    """What a node offers the hub, worked out from its attributes."""

    attributes: tuple[str, ...]
    meta: dict[str, AttributeMeta]
    commands: tuple[CommandSpec, ...]
    events: tuple[str, ...]
    targets: dict[str, tuple[int, Cluster]]  # hub command -> (default endpoint, cluster)


def model(node: NodeView) -> NodeModel:
    attributes: list[str] = []
    meta: dict[str, AttributeMeta] = {}
    commands: list[CommandSpec] = []
    events: list[str] = []
    targets: dict[str, tuple[int, Cluster]] = {}
    for cluster in CLUSTERS.values():
        endpoints = [ep for ep in node.endpoints_with(cluster.cluster) if ep != 0]
        for i, ep in enumerate(endpoints):
            for attr_id, (name, _) in cluster.attributes.items():
                if not node.has(ep, cluster.cluster, attr_id):
                    continue
                full = _name(name, ep, i)
                attributes.append(full)
                if name in cluster.meta:
                    meta[full] = cluster.meta[name]
        if endpoints:
            for spec in cluster.commands:
                needed = cluster.needs.get(spec.name)
                if needed is not None and not node.has(endpoints[0], cluster.cluster, needed):
                    continue
                commands.append(spec)
                targets[spec.name] = (endpoints[0], cluster)
            events.extend(e for e in cluster.events if e not in events)
    return NodeModel(tuple(attributes), meta, tuple(commands), tuple(events), targets)


def state(node: NodeView) -> dict[str, Any]:
    """The node's current values under the hub's attribute names."""
    out: dict[str, Any] = {}
    for cluster in CLUSTERS.values():
        endpoints = [ep for ep in node.endpoints_with(cluster.cluster) if ep != 0]
        for i, ep in enumerate(endpoints):
            for attr_id, (name, convert) in cluster.attributes.items():
                raw = node.value(ep, cluster.cluster, attr_id)
                if raw is not None:
                    out[_name(name, ep, i)] = convert(raw)
    return out


def action(node_model: NodeModel, command: str, params: dict[str, Any]) -> tuple[int, Action]:
    """The endpoint and Matter action a validated hub command becomes."""
    endpoint, cluster = node_model.targets[command]
    params = dict(params)
    endpoint = int(params.pop("endpoint", endpoint))
    assert cluster.build is not None
    return endpoint, cluster.build(command, params)


def events(node: NodeView, endpoint: int, cluster: int, event_id: int, data: Any
           ) -> list[tuple[str, dict[str, Any]]]:
    """The hub events (type, data) a node event becomes; [] for events the hub ignores.

    A Switch event is passed on as `button` (every step, `action` names it) and, once a
    gesture is complete, as the one event an automation wants: `press`, `long_press` or
    `multi_press` (`presses` >= 2). Which step completes a press depends on the switch's
    features: with multi-press, a press is only known to be single when the sequence ends."""
    if cluster != SWITCH:
        return []
    fields = data if isinstance(data, dict) else {}
    action = SWITCH_EVENTS.get(event_id, str(event_id))
    out: dict[str, Any] = {"endpoint": endpoint, "action": action}
    position = fields.get("newPosition", fields.get("previousPosition"))
    if position is not None:
        out["position"] = position
    presses = fields.get("totalNumberOfPressesCounted")
    if presses is not None:
        out["presses"] = presses
    found = [("button", out)]
    features = node.value(endpoint, SWITCH, FEATURE_MAP) or 0
    gesture = None
    if action == "long_press":
        gesture = "long_press"
    elif features & SWITCH_MULTI:
        if action == "multi_press_complete" and presses:
            gesture = "press" if presses == 1 else "multi_press"
    elif action == "short_release" or (action == "initial_press" and
                                       not features & SWITCH_RELEASE):
        gesture = "press"
    if gesture is not None:
        found.append((gesture, {k: v for k, v in out.items() if k != "action"}))
    return found


def _name(name: str, endpoint: int, index: int) -> str:
    return name if index == 0 else f"{name}_{endpoint}"
