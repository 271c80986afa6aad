"""The components of the convention as entities of a hub device: what each reports (state
topics -> attribute values), what it accepts (commands -> outgoing messages) and its metadata.

Attributes of an entity are named after its key: `<key>` for its main value (on/off, the
reading, the cover's state...) and `<key>_<part>` for the others (`light_brightness`). Commands
are shared by the device (`turn_on`, `set_position`...); the optional `entity` parameter picks
the entity when several accept the same command (default: the first announced).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from integrations.mqtt.discovery import EntityConfig
from integrations.mqtt.templates import TemplateError, Templates

Values = dict[str, Any]
Handler = Callable[[str], Values]


class StateError(ValueError):
    """A state message that does not parse for its entity."""


class CommandError(ValueError):
    """A command the entity cannot carry out as asked (bad value for it)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: str
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Timer:
    """Values an entity takes by itself `seconds` after a state message, unless another
    message comes first (expire_after, off_delay)."""

    seconds: float
    values: Values


@dataclass(slots=True)
class Outcome:
    """What a command sends, and the values it sets at once in optimistic mode."""

    messages: list[Publish] = field(default_factory=list)
    optimistic: Values = field(default_factory=dict)


class Entity:
    """Base: one announced entity of a device."""

    component = ""
    commands: dict[str, dict[str, str]] = {}
    required: dict[str, tuple[str, ...]] = {}  # command -> parameters it cannot do without

    def __init__(self, config: EntityConfig, key: str, templates: Templates) -> None:
        self.config = config
        self.key = key
        self.templates = templates
        self.error: str | None = None  # a failing template, shown to the owner
        self.qos = int(config.get("qos", 0))
        self.retain = bool(config.get("retain", False))

    # what the hub device gets

    def attribute(self, part: str = "") -> str:
        return f"{self.key}_{part}" if part else self.key

    def attributes(self) -> dict[str, dict[str, Any]]:
        """Attribute name -> metadata (unit, device_class, state_class when known)."""
        return {}

    def all_attributes(self) -> dict[str, dict[str, Any]]:
        """`attributes()` plus `<key>_attributes` for a json_attributes_topic."""
        attrs = self.attributes()
        if self.config.get("json_attributes_topic"):
            attrs[self.attribute("attributes")] = {}
        return attrs

    def events(self) -> tuple[str, ...]:
        return ()

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        """command -> number parameter -> (min, max) it accepts (the hub checks them)."""
        return {}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """command -> string parameter -> the values this entity takes, as announced (the
        hub checks them and the dashboard lists them); none listed: any value."""
        return {}

    def accepts(self) -> dict[str, dict[str, str]]:
        """The commands this entity takes as announced (a cover without tilt has no
        set_tilt), with their parameters."""
        needs = _COMMAND_TOPICS.get(self.component, {})
        return {name: params for name, params in self.commands.items()
                if all(self.config.get(t) for t in needs.get(name, ()))}

    def routes(self) -> dict[str, Handler]:
        """State topic -> handler(payload) -> attribute values."""
        out: dict[str, Handler] = {}
        topic = self.config.get("json_attributes_topic")
        if topic:
            _merge(out, topic, self._json_attributes)
        return out

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        raise CommandError("command", f"{self.component} {self.key} does not accept {name}")

    def timers(self, values: Values) -> dict[str, Timer | None]:
        """After a state message gave `values`: timers to arm (name -> Timer; one already
        running under that name starts over) or to cancel (None). See expire_after and
        off_delay."""
        return {}

    def _expiry(self, values: Values) -> dict[str, Timer | None]:
        """expire_after (sensor, binary_sensor), as Home Assistant does: every value
        received starts the time over; none for that long and the value is unknown (None)."""
        seconds = self.config.get("expire_after")
        if seconds and self.attribute() in values:
            return {"expire": Timer(float(seconds), {self.attribute(): None})}
        return {}

    # helpers

    @property
    def optimistic(self) -> bool:
        return bool(self.config.get("optimistic", False)) or not self.config.get("state_topic")

    def render(self, template_key: str, payload: str) -> str:
        source = self.config.get(template_key)
        if source is None:
            return payload
        try:
            value = self.templates.render_value(source, payload)
        except TemplateError as exc:
            self.error = f"{template_key}: {exc}"
            raise
        self.error = None
        return value

    def render_command(self, template_key: str, value: Any, default: str, **extra: Any) -> str:
        source = self.config.get(template_key)
        if source is None:
            return default
        try:
            text = self.templates.render(source, value=value, **extra)
        except TemplateError as exc:
            self.error = f"{template_key}: {exc}"
            raise
        if self.error is not None and self.error.startswith(f"{template_key}: "):
            self.error = None  # the same template works now
        return text

    def publish(self, topic_key: str, payload: str) -> Publish:
        topic = self.config.get(topic_key)
        if not topic:
            raise CommandError("command", f"{self.component} {self.key} has no {topic_key}")
        return Publish(topic, payload, self.qos, self.retain)

    def send(self, payload: str, assumed: Any) -> Outcome:
        """Publish `payload` on the command topic; in optimistic mode (no state topic) the
        hub takes `assumed` as the new value at once."""
        out = Outcome([self.publish("command_topic", payload)])
        if self.optimistic:
            out.optimistic[self.attribute()] = assumed
        return out

    def _chain(self, previous: Handler | None, part: str, template: str,
               convert: Callable[[str], Any]) -> Handler:
        """A handler for one more part read from a topic (one topic may carry several:
        Zigbee2MQTT sends one JSON per device); an empty value leaves the part alone."""
        def handle(payload: str) -> Values:
            values = previous(payload) if previous is not None else {}
            text = self.render(template, payload).strip()
            if text in ("", "None"):
                return values
            value = convert(text)
            values[self.attribute(part)] = value[:64] if isinstance(value, str) else value
            return values
        return handle

    def _json_attributes(self, payload: str) -> Values:
        text = self.render("json_attributes_template", payload)
        try:
            data = json.loads(text)
        except ValueError:
            raise StateError("json attributes are not JSON") from None
        if not isinstance(data, dict):
            raise StateError("json attributes are not an object")
        data = {str(k)[:64]: v for k, v in list(data.items())[:64]}
        if len(json.dumps(data)) > 4096:
            raise StateError("json attributes larger than 4 KB")
        return {self.attribute("attributes"): data}

    def _meta(self, **extra: Any) -> dict[str, Any]:
        meta = {k: self.config.get(k) for k in ("unit_of_measurement", "device_class",
                                                "state_class")
                if self.config.get(k) is not None}
        if "unit_of_measurement" in meta:
            meta["unit"] = meta.pop("unit_of_measurement")
        return {**meta, **extra}


class _OnOff(Entity):
    """switch and binary_sensor: a boolean from payload_on/off (or state_on/off)."""

    def _on_off(self, payload: str, template: str = "value_template") -> bool | None:
        value = self.render(template, payload).strip()
        on = self.config.get("state_on", self.config.get("payload_on", "ON"))
        off = self.config.get("state_off", self.config.get("payload_off", "OFF"))
        if value == on:
            return True
        if value == off:
            return False
        if value in ("", "None", "unknown"):
            return None
        raise StateError(f"{value[:40]!r} is neither {on!r} nor {off!r}")

    def attributes(self) -> dict[str, dict[str, Any]]:
        return {self.attribute(): self._meta()}

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        topic = self.config.get("state_topic")
        if topic:
            _merge(out, topic, lambda p: {self.attribute(): self._on_off(p)})
        return out


class Switch(_OnOff):
    component = "switch"
    commands = {"turn_on": {}, "turn_off": {}, "toggle": {}}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.is_on: bool | None = None

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        if self.config.get("state_topic"):
            def handle(payload: str) -> Values:
                self.is_on = self._on_off(payload)
                return {self.attribute(): self.is_on}
            out[self.config.get("state_topic")] = handle  # replaces _OnOff's
        return out

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name not in self.commands:
            return super().command(name, params)
        on = {"turn_on": True, "turn_off": False}.get(name, not self.is_on)
        payload = self.config.get("payload_on" if on else "payload_off", "ON" if on else "OFF")
        payload = self.render_command("command_template", payload, payload)
        out = Outcome([self.publish("command_topic", payload)])
        if self.optimistic:
            self.is_on = on
            out.optimistic[self.attribute()] = on
        return out


class BinarySensor(_OnOff):
    component = "binary_sensor"

    def timers(self, values: Values) -> dict[str, Timer | None]:
        """expire_after, and off_delay as Home Assistant does: every state message cancels
        the pending off; `on` sets it again, so the sensor turns off that many seconds after
        the last `on` (motion sensors that only ever send `on`)."""
        out = self._expiry(values)
        seconds = self.config.get("off_delay")
        if seconds and self.attribute() in values:
            out["off"] = Timer(float(seconds), {self.attribute(): False}) \
                if values[self.attribute()] is True else None
        return out


class Sensor(Entity):
    component = "sensor"

    def timers(self, values: Values) -> dict[str, Timer | None]:
        return self._expiry(values)

    def attributes(self) -> dict[str, dict[str, Any]]:
        return {self.attribute(): self._meta()}

    @property
    def numeric(self) -> bool:
        return (self.config.get("unit_of_measurement") is not None
                or self.config.get("state_class") is not None)

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        topic = self.config.get("state_topic")
        if topic:
            _merge(out, topic, self._state)
        return out

    def _state(self, payload: str) -> Values:
        value = self.render("value_template", payload).strip()
        if value in ("", "None", "unknown", "unavailable"):
            return {self.attribute(): None}
        if self.numeric or self.config.get("device_class") not in (None, "enum", "timestamp",
                                                                 "date"):
            return {self.attribute(): _number(value, numeric_required=self.numeric)}
        return {self.attribute(): value[:255]}


class Light(Entity):
    """Default schema (a topic per feature) and JSON schema (one JSON command/state)."""

    component = "light"
    commands = {
        "turn_on": {"brightness": "number", "color_temp": "number", "rgb": "string",
                    "hue": "number", "saturation": "number", "x": "number", "y": "number",
                    "effect": "string", "transition": "number"},
        "turn_off": {"transition": "number"},
        "toggle": {},
    }

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.json = self.config.get("schema", "default") == "json"
        self.is_on: bool | None = None
        self.scale = float(self.config.get("brightness_scale", 255)) or 255.0
        modes = set(self.config.get("supported_color_modes") or ())
        get = self.config.get
        if self.json:
            self.features = {
                "brightness": bool(get("brightness")) or bool(modes - {"onoff"}),
                "color_temp": bool(get("color_temp")) or "color_temp" in modes,
                "rgb": bool(get("rgb")) or bool(modes & {"rgb", "rgbw", "rgbww"}),
                "hs": bool(get("hs")) or "hs" in modes,
                "xy": bool(get("xy")) or "xy" in modes,
                "effect": bool(get("effect")) and bool(get("effect_list")),
            }
        else:
            self.features = {
                "brightness": bool(get("brightness_command_topic")),
                "color_temp": bool(get("color_temp_command_topic")),
                "rgb": bool(get("rgb_command_topic")),
                "hs": bool(get("hs_command_topic")),
                "xy": bool(get("xy_command_topic")),
                "effect": bool(get("effect_command_topic")),
            }

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        on: dict[str, tuple[float, float]] = {"brightness": (0, 255), "transition": (0, 3600)}
        if self.features["color_temp"]:
            on["color_temp"] = (self.config.get("min_mireds", 153),
                                self.config.get("max_mireds", 500))
        return {"turn_on": on, "turn_off": {"transition": (0, 3600)}}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        effects = tuple(self.config.get("effect_list") or ())
        return {"turn_on": {"effect": effects}} if self.features["effect"] and effects else {}

    def accepts(self) -> dict[str, dict[str, str]]:
        wanted = {"brightness": "brightness", "color_temp": "color_temp", "rgb": "rgb",
                  "hue": "hs", "saturation": "hs", "x": "xy", "y": "xy", "effect": "effect"}
        on = {p: t for p, t in self.commands["turn_on"].items()
              if p not in wanted or self.features[wanted[p]]}
        if not self.json:
            on.pop("transition", None)
            return {"turn_on": on, "turn_off": {}, "toggle": {}}
        return {"turn_on": on, "turn_off": {"transition": "number"}, "toggle": {}}

    def attributes(self) -> dict[str, dict[str, Any]]:
        attrs: dict[str, dict[str, Any]] = {self.attribute(): {}}
        if self.features["brightness"]:
            attrs[self.attribute("brightness")] = {"min": 0, "max": 255}
        if self.features["color_temp"]:
            attrs[self.attribute("color_temp")] = {
                "unit": "mired", "min": self.config.get("min_mireds", 153),
                "max": self.config.get("max_mireds", 500)}
        for part in ("rgb", "hs", "xy"):
            if self.features[part]:
                attrs[self.attribute(part)] = {}
        if self.features["effect"]:
            attrs[self.attribute("effect")] = {"options": self.config.get("effect_list") or []}
        if self.json and self.config.get("supported_color_modes"):
            attrs[self.attribute("color_mode")] = {}
        return attrs

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        get = self.config.get
        if self.json:
            if get("state_topic"):
                _merge(out, get("state_topic"), self._json_state)
            return out
        if get("state_topic"):
            _merge(out, get("state_topic"), self._on_state)
        simple = [("brightness", "brightness_state_topic", "brightness_value_template",
                   self._brightness_in),
                  ("color_temp", "color_temp_state_topic", "color_temp_value_template",
                   lambda v: round(_number(v))),
                  ("rgb", "rgb_state_topic", "rgb_value_template", lambda v: _ints(v, 3)),
                  ("hs", "hs_state_topic", "hs_value_template", lambda v: _floats(v, 2)),
                  ("xy", "xy_state_topic", "xy_value_template", lambda v: _floats(v, 2)),
                  ("effect", "effect_state_topic", "effect_value_template", lambda v: v)]
        for part, topic_key, template, convert in simple:
            topic = get(topic_key)
            if topic:
                out[topic] = self._chain(out.get(topic), part, template, convert)
        return out

    def _on_state(self, payload: str) -> Values:
        value = self.render("state_value_template", payload).strip()
        on, off = self.config.get("payload_on", "ON"), self.config.get("payload_off", "OFF")
        if value not in (on, off):
            raise StateError(f"{value[:40]!r} is neither {on!r} nor {off!r}")
        self.is_on = value == on
        return {self.attribute(): self.is_on}

    def _brightness_in(self, value: str) -> int:
        return round(_number(value) * 255 / self.scale)

    def _json_state(self, payload: str) -> Values:
        try:
            data = json.loads(payload)
        except ValueError:
            raise StateError("state is not JSON") from None
        if not isinstance(data, dict):
            raise StateError("state is not a JSON object")
        values: Values = {}
        state = data.get("state")
        if state is not None:
            if state not in ("ON", "OFF"):
                raise StateError(f"state {str(state)[:20]!r} is neither 'ON' nor 'OFF'")
            self.is_on = state == "ON"
            values[self.attribute()] = self.is_on
        if self.features["brightness"] and data.get("brightness") is not None:
            values[self.attribute("brightness")] = self._brightness_in(str(data["brightness"]))
        if self.features["color_temp"] and data.get("color_temp") is not None:
            values[self.attribute("color_temp")] = round(_number(str(data["color_temp"])))
        color = data.get("color")
        if isinstance(color, dict):
            if self.features["rgb"] and all(k in color for k in "rgb"):
                values[self.attribute("rgb")] = [int(_number(str(color[k]))) for k in "rgb"]
            if self.features["hs"] and "h" in color and "s" in color:
                values[self.attribute("hs")] = [_number(str(color["h"])),
                                                _number(str(color["s"]))]
            if self.features["xy"] and "x" in color and "y" in color:
                values[self.attribute("xy")] = [_number(str(color["x"])),
                                                _number(str(color["y"]))]
        if self.features["effect"] and isinstance(data.get("effect"), str):
            values[self.attribute("effect")] = data["effect"][:64]
        if self.json and isinstance(data.get("color_mode"), str) and self.config.get(
                "supported_color_modes"):
            values[self.attribute("color_mode")] = data["color_mode"][:32]
        return values

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name not in self.commands:
            return super().command(name, params)
        on = {"turn_on": True, "turn_off": False}.get(name, not self.is_on)
        for p in params:
            feature = {"hue": "hs", "saturation": "hs", "x": "xy", "y": "xy"}.get(p, p)
            if feature in self.features and not self.features[feature]:
                raise CommandError(f"params.{p}", f"light {self.key} has no {feature}")
        _check_pairs(params)
        brightness = params.get("brightness")
        if brightness is not None and not 0 <= brightness <= 255:
            raise CommandError("params.brightness", "must be within [0, 255]")
        effect = params.get("effect")
        if effect is not None and effect not in (self.config.get("effect_list") or []):
            raise CommandError("params.effect", f"unknown effect {effect!r}")
        rgb = parse_rgb(params["rgb"]) if "rgb" in params else None
        out = self._json_command(on, params, rgb) if self.json else \
            self._default_command(on, params, rgb)
        if self.optimistic:
            self.is_on = on
            out.optimistic[self.attribute()] = on
            if brightness is not None:
                out.optimistic[self.attribute("brightness")] = round(brightness)
            if "color_temp" in params:
                out.optimistic[self.attribute("color_temp")] = round(params["color_temp"])
            if rgb is not None:
                out.optimistic[self.attribute("rgb")] = list(rgb)
            if "hue" in params:
                out.optimistic[self.attribute("hs")] = [params["hue"], params["saturation"]]
            if "x" in params:
                out.optimistic[self.attribute("xy")] = [params["x"], params["y"]]
            if effect is not None:
                out.optimistic[self.attribute("effect")] = effect
        return out

    def _scaled(self, brightness: float) -> int:
        return round(brightness * self.scale / 255)

    def _json_command(self, on: bool, params: dict[str, Any],
                      rgb: tuple[int, int, int] | None) -> Outcome:
        body: dict[str, Any] = {"state": "ON" if on else "OFF"}
        if on and "brightness" in params:
            body["brightness"] = self._scaled(params["brightness"])
        if on and "color_temp" in params:
            body["color_temp"] = round(params["color_temp"])
        if on and rgb is not None:
            body["color"] = {"r": rgb[0], "g": rgb[1], "b": rgb[2]}
        if on and "hue" in params:
            body["color"] = {"h": params["hue"], "s": params["saturation"]}
        if on and "x" in params:
            body["color"] = {"x": params["x"], "y": params["y"]}
        if on and "effect" in params:
            body["effect"] = params["effect"]
        if "transition" in params:
            body["transition"] = params["transition"]
        return Outcome([self.publish("command_topic", json.dumps(body))])

    def _default_command(self, on: bool, params: dict[str, Any],
                         rgb: tuple[int, int, int] | None) -> Outcome:
        messages: list[Publish] = []
        get = self.config.get
        if not on:
            payload = get("payload_off", "OFF")
            return Outcome([self.publish("command_topic", payload)])
        only_brightness = get("on_command_type") == "brightness" and "brightness" in params
        if get("on_command_type") == "first" and not only_brightness:
            messages.append(self.publish("command_topic", get("payload_on", "ON")))
        if "brightness" in params:
            value = self._scaled(params["brightness"])
            messages.append(self.publish("brightness_command_topic", self.render_command(
                "brightness_command_template", value, str(value))))
        if "color_temp" in params:
            value = round(params["color_temp"])
            messages.append(self.publish("color_temp_command_topic", self.render_command(
                "color_temp_command_template", value, str(value))))
        # the colour templates get the convention's variables besides `value` ("r,g,b",
        # "h,s", "x,y"): red/green/blue, hue/sat, x/y
        if rgb is not None:
            text = ",".join(map(str, rgb))
            messages.append(self.publish("rgb_command_topic", self.render_command(
                "rgb_command_template", text, text, red=rgb[0], green=rgb[1], blue=rgb[2])))
        if "hue" in params:
            hue, sat = params["hue"], params["saturation"]
            text = f"{hue},{sat}"
            messages.append(self.publish("hs_command_topic", self.render_command(
                "hs_command_template", text, text, hue=hue, sat=sat)))
        if "x" in params:
            x, y = params["x"], params["y"]
            text = f"{x},{y}"
            messages.append(self.publish("xy_command_topic", self.render_command(
                "xy_command_template", text, text, x=x, y=y)))
        if "effect" in params:
            messages.append(self.publish("effect_command_topic", self.render_command(
                "effect_command_template", params["effect"], params["effect"])))
        if get("on_command_type", "last") == "last" and not only_brightness:
            messages.append(self.publish("command_topic", get("payload_on", "ON")))
        return Outcome(messages)


class Cover(Entity):
    component = "cover"
    commands = {"open": {}, "close": {}, "stop": {}, "set_position": {"position": "number"},
                "set_tilt": {"tilt": "number"}}
    required = {"set_position": ("position",), "set_tilt": ("tilt",)}

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {"set_position": {"position": (0, 100)}, "set_tilt": {"tilt": (0, 100)}}

    def attributes(self) -> dict[str, dict[str, Any]]:
        attrs = {self.attribute(): self._meta(options=["open", "opening", "closed", "closing",
                                                       "stopped"])}
        if self.config.get("position_topic") or self.config.get("set_position_topic"):
            attrs[self.attribute("position")] = {"unit": "%", "min": 0, "max": 100}
        if self.config.get("tilt_status_topic") or self.config.get("tilt_command_topic"):
            attrs[self.attribute("tilt")] = {"unit": "%", "min": 0, "max": 100}
        return attrs

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        get = self.config.get
        if get("state_topic"):
            _merge(out, get("state_topic"), self._state)
        if get("position_topic"):
            _merge(out, get("position_topic"), self._position)
        if get("tilt_status_topic"):
            _merge(out, get("tilt_status_topic"), self._tilt)
        return out

    def _state(self, payload: str) -> Values:
        value = self.render("value_template", payload).strip()
        names = {self.config.get(f"state_{s}", s): s
                 for s in ("open", "opening", "closed", "closing", "stopped")}
        names.setdefault(self.config.get("payload_stop", "STOP"), "stopped")
        if value not in names:
            if value in ("", "None"):
                return {self.attribute(): None}
            raise StateError(f"{value[:40]!r} is not a cover state")
        return {self.attribute(): names[value]}

    def _percent(self, value: float, lo: float, hi: float) -> int:
        if hi == lo:
            raise StateError("position range is empty")
        return max(0, min(100, round((value - lo) * 100 / (hi - lo))))

    def _position(self, payload: str) -> Values:
        value = _number(self.render("position_template", payload).strip())
        lo, hi = self.config.get("position_closed", 0), self.config.get("position_open", 100)
        pct = self._percent(value, lo, hi)
        values: Values = {self.attribute("position"): pct}
        if not self.config.get("state_topic"):
            values[self.attribute()] = "closed" if pct == 0 else "open"
        return values

    def _tilt(self, payload: str) -> Values:
        value = _number(self.render("tilt_status_template", payload).strip())
        lo, hi = self.config.get("tilt_min", 0), self.config.get("tilt_max", 100)
        return {self.attribute("tilt"): self._percent(value, lo, hi)}

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        get = self.config.get
        if name in ("open", "close", "stop"):
            payload = get(f"payload_{name}", name.upper())
            out = Outcome([self.publish("command_topic", payload)])
            if self.optimistic and name != "stop":
                out.optimistic[self.attribute()] = "open" if name == "open" else "closed"
            return out
        if name == "set_position":
            return self._move(params, "position", ("position_closed", 0, "position_open", 100),
                              "set_position_template", "set_position_topic", "position_topic",
                              "position")
        if name == "set_tilt":
            return self._move(params, "tilt", ("tilt_min", 0, "tilt_max", 100),
                              "tilt_command_template", "tilt_command_topic",
                              "tilt_status_topic", "tilt_position")
        return super().command(name, params)


    def _move(self, params: dict[str, Any], part: str, bounds: tuple[str, int, str, int],
              template: str, topic: str, status_topic: str, variable: str) -> Outcome:
        """set_position / set_tilt: a percentage scaled to the device's range; the template
        gets it as `value` and as `position` / `tilt_position` (the convention's names)."""
        pct = _percent_param(params, part)
        lo, hi = self.config.get(bounds[0], bounds[1]), self.config.get(bounds[2], bounds[3])
        value = round(lo + (hi - lo) * pct / 100)
        payload = self.render_command(template, value, str(value), **{variable: value})
        out = Outcome([self.publish(topic, payload)])
        if not self.config.get(status_topic):
            out.optimistic[self.attribute(part)] = round(pct)
        return out


class Lock(Entity):
    component = "lock"
    commands = {"lock": {}, "unlock": {}, "open": {}}  # open: only with payload_open
    _STATES = ("locked", "unlocked", "locking", "unlocking", "jammed", "open", "opening")

    def attributes(self) -> dict[str, dict[str, Any]]:
        return {self.attribute(): {"options": list(self._STATES)}}

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        if self.config.get("state_topic"):
            _merge(out, self.config.get("state_topic"), self._state)
        return out

    def _state(self, payload: str) -> Values:
        value = self.render("value_template", payload).strip()
        names = {self.config.get(f"state_{s}", s.upper()): s for s in self._STATES}
        if value not in names:
            raise StateError(f"{value[:40]!r} is not a lock state")
        return {self.attribute(): names[value]}

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name not in self.commands:
            return super().command(name, params)
        if name == "open" and self.config.get("payload_open") is None:
            raise CommandError("command", f"lock {self.key} cannot open (no payload_open)")
        payload = self.config.get(f"payload_{name}", name.upper())
        payload = self.render_command("command_template", payload, payload)
        return self.send(payload, {"lock": "locked", "unlock": "unlocked"}.get(name, "open"))


class Button(Entity):
    component = "button"
    commands = {"press": {}}

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name != "press":
            return super().command(name, params)
        payload = self.config.get("payload_press", "PRESS")
        payload = self.render_command("command_template", payload, payload)
        return Outcome([self.publish("command_topic", payload)])


class Number(Entity):
    component = "number"
    commands = {"set_value": {"value": "number"}}
    required = {"set_value": ("value",)}

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {"set_value": {"value": (self.config.get("min", 1), self.config.get("max", 100))}}

    def attributes(self) -> dict[str, dict[str, Any]]:
        get = self.config.get
        return {self.attribute(): self._meta(min=get("min", 1), max=get("max", 100),
                                             step=get("step", 1))}

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        if self.config.get("state_topic"):
            _merge(out, self.config.get("state_topic"), lambda p: {
                self.attribute(): _number(self.render("value_template", p).strip())})
        return out

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name != "set_value":
            return super().command(name, params)
        value = params.get("value")
        lo, hi = self.config.get("min", 1), self.config.get("max", 100)
        if value is None or not lo <= value <= hi:
            raise CommandError("params.value", f"must be within [{lo}, {hi}]")
        if isinstance(value, float) and value.is_integer() and isinstance(
                self.config.get("step", 1), int):
            value = int(value)
        payload = self.render_command("command_template", value, str(value))
        return self.send(payload, value)


class Select(Entity):
    component = "select"
    commands = {"select_option": {"option": "string"}}
    required = {"select_option": ("option",)}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        return {"select_option": {"option": tuple(self.config.get("options") or ())}}

    def attributes(self) -> dict[str, dict[str, Any]]:
        return {self.attribute(): {"options": list(self.config.get("options") or [])}}

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        if self.config.get("state_topic"):
            _merge(out, self.config.get("state_topic"), self._state)
        return out

    def _state(self, payload: str) -> Values:
        value = self.render("value_template", payload).strip()
        if value not in (self.config.get("options") or []):
            raise StateError(f"{value[:40]!r} is not one of the options")
        return {self.attribute(): value}

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        if name != "select_option":
            return super().command(name, params)
        option = params.get("option")
        if option not in (self.config.get("options") or []):
            raise CommandError("params.option", f"unknown option {option!r}")
        payload = self.render_command("command_template", option, str(option))
        return self.send(payload, option)


class Fan(Entity):
    component = "fan"
    commands = {"turn_on": {"percentage": "number", "preset_mode": "string"},
                "turn_off": {}, "toggle": {},
                "set_percentage": {"percentage": "number"},
                "set_preset_mode": {"preset_mode": "string"}}
    required = {"set_percentage": ("percentage",), "set_preset_mode": ("preset_mode",)}

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {"turn_on": {"percentage": (0, 100)}, "set_percentage": {"percentage": (0, 100)}}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        presets = tuple(self.config.get("preset_modes") or ())
        return {"turn_on": {"preset_mode": presets},
                "set_preset_mode": {"preset_mode": presets}} if presets else {}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.is_on: bool | None = None

    def attributes(self) -> dict[str, dict[str, Any]]:
        attrs: dict[str, dict[str, Any]] = {self.attribute(): {}}
        if self.config.get("percentage_command_topic"):
            attrs[self.attribute("percentage")] = {"unit": "%", "min": 0, "max": 100}
        if self.config.get("preset_mode_command_topic"):
            attrs[self.attribute("preset_mode")] = {
                "options": list(self.config.get("preset_modes") or [])}
        return attrs

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        get = self.config.get
        if get("state_topic"):
            def state(payload: str) -> Values:
                value = self.render("state_value_template", payload).strip()
                on, off = get("payload_on", "ON"), get("payload_off", "OFF")
                if value not in (on, off):
                    raise StateError(f"{value[:40]!r} is neither {on!r} nor {off!r}")
                self.is_on = value == on
                return {self.attribute(): self.is_on}
            _merge(out, get("state_topic"), state)
        if get("percentage_state_topic"):
            lo, hi = get("speed_range_min", 1), get("speed_range_max", 100)

            def percentage(payload: str) -> Values:
                value = _number(self.render("percentage_value_template", payload).strip())
                pct = 0 if value <= 0 else round((value - lo + 1) * 100 / (hi - lo + 1))
                return {self.attribute("percentage"): max(0, min(100, pct))}
            _merge(out, get("percentage_state_topic"), percentage)
        if get("preset_mode_state_topic"):
            _merge(out, get("preset_mode_state_topic"), lambda p: {
                self.attribute("preset_mode"): self.render("preset_mode_value_template",
                                                           p).strip()[:64]})
        return out

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        get = self.config.get
        out = Outcome()
        if name in ("turn_on", "turn_off", "toggle"):
            on = {"turn_on": True, "turn_off": False}.get(name, not self.is_on)
            payload = get("payload_on" if on else "payload_off", "ON" if on else "OFF")
            out.messages.append(self.publish("command_topic", self.render_command(
                "command_template", payload, payload)))
            if self.optimistic:
                self.is_on = on
                out.optimistic[self.attribute()] = on
        elif name not in self.commands:
            return super().command(name, params)
        if "percentage" in params:
            pct = _percent_param(params, "percentage")
            lo, hi = get("speed_range_min", 1), get("speed_range_max", 100)
            value = 0 if pct == 0 else math.ceil(lo - 1 + pct * (hi - lo + 1) / 100)
            out.messages.append(self.publish("percentage_command_topic", self.render_command(
                "percentage_command_template", value, str(value))))
            if not get("percentage_state_topic"):
                out.optimistic[self.attribute("percentage")] = round(pct)
        if "preset_mode" in params:
            mode = params["preset_mode"]
            if mode not in (get("preset_modes") or []):
                raise CommandError("params.preset_mode", f"unknown preset {mode!r}")
            out.messages.append(self.publish("preset_mode_command_topic", self.render_command(
                "preset_mode_command_template", mode, mode)))
            if not get("preset_mode_state_topic"):
                out.optimistic[self.attribute("preset_mode")] = mode
        return out


class Climate(Entity):
    component = "climate"
    commands = {"set_hvac_mode": {"hvac_mode": "string"},
                "set_temperature": {"temperature": "number", "target_temp_low": "number",
                                    "target_temp_high": "number"},
                "set_preset_mode": {"preset_mode": "string"}}
    _MODES = ["auto", "off", "cool", "heat", "dry", "fan_only"]
    # set_temperature's parameters (Home Assistant's names) -> (attribute part, command
    # topic, its template, state topic)
    _SETPOINTS = {
        "temperature": ("target_temperature", "temperature_command_topic",
                        "temperature_command_template", "temperature_state_topic"),
        "target_temp_low": ("target_temperature_low", "temperature_low_command_topic",
                            "temperature_low_command_template", "temperature_low_state_topic"),
        "target_temp_high": ("target_temperature_high", "temperature_high_command_topic",
                             "temperature_high_command_template",
                             "temperature_high_state_topic"),
    }

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # a thermostat with a low/high range may be given either end alone
        ranged = any(self.config.get(self._SETPOINTS[p][1])
                     for p in ("target_temp_low", "target_temp_high"))
        self.required = {"set_hvac_mode": ("hvac_mode",), "set_preset_mode": ("preset_mode",),
                         "set_temperature": () if ranged else ("temperature",)}

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        span = (self.config.get("min_temp", 7), self.config.get("max_temp", 35))
        return {"set_temperature": dict.fromkeys(self._SETPOINTS, span)}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        out = {"set_hvac_mode": {"hvac_mode": tuple(self.config.get("modes") or self._MODES)}}
        presets = tuple(self.config.get("preset_modes") or ())
        if presets:
            out["set_preset_mode"] = {"preset_mode": presets}
        return out

    def accepts(self) -> dict[str, dict[str, str]]:
        out = super().accepts()
        out.pop("set_temperature", None)
        setpoints = {p: "number" for p, (_, topic, _, _) in self._SETPOINTS.items()
                     if self.config.get(topic)}
        if setpoints:
            out["set_temperature"] = setpoints
        return out

    def attributes(self) -> dict[str, dict[str, Any]]:
        get = self.config.get
        unit = "°F" if get("temperature_unit") == "F" else "°C"
        attrs: dict[str, dict[str, Any]] = {
            self.attribute(): {"options": list(get("modes") or self._MODES)}}
        for part, command_topic, _, state_topic in self._SETPOINTS.values():
            if get(command_topic) or get(state_topic):
                attrs[self.attribute(part)] = {
                    "unit": unit, "min": get("min_temp", 7), "max": get("max_temp", 35),
                    "step": get("temp_step", get("precision", 0.5))}
        if get("current_temperature_topic"):
            attrs[self.attribute("current_temperature")] = {"unit": unit,
                                                            "device_class": "temperature"}
        if get("current_humidity_topic"):
            attrs[self.attribute("current_humidity")] = {"unit": "%",
                                                         "device_class": "humidity"}
        if get("action_topic"):
            attrs[self.attribute("action")] = {}
        if get("preset_mode_command_topic"):
            attrs[self.attribute("preset_mode")] = {"options": list(get("preset_modes") or [])}
        return attrs

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        get = self.config.get
        parts: list[tuple[str, str, str, Callable[[str], Any]]] = [
            ("mode_state_topic", "mode_state_template", "", self._mode),
            ("temperature_state_topic", "temperature_state_template", "target_temperature",
             _number),
            ("temperature_low_state_topic", "temperature_low_state_template",
             "target_temperature_low", _number),
            ("temperature_high_state_topic", "temperature_high_state_template",
             "target_temperature_high", _number),
            ("current_temperature_topic", "current_temperature_template",
             "current_temperature", _number),
            ("current_humidity_topic", "current_humidity_template", "current_humidity",
             _number),
            ("action_topic", "action_template", "action", str),
            ("preset_mode_state_topic", "preset_mode_value_template", "preset_mode", str)]
        for topic_key, template, part, convert in parts:
            topic = get(topic_key)
            if topic:
                out[topic] = self._chain(out.get(topic), part, template, convert)
        return out

    def _mode(self, text: str) -> str:
        if text not in (self.config.get("modes") or self._MODES):
            raise StateError(f"{text[:40]!r} is not one of the modes")
        return text

    def command(self, name: str, params: dict[str, Any]) -> Outcome:
        get = self.config.get
        if name == "set_hvac_mode":
            mode = params.get("hvac_mode")
            if mode not in (get("modes") or self._MODES):
                raise CommandError("params.hvac_mode", f"unknown mode {mode!r}")
            out = Outcome([self.publish("mode_command_topic", self.render_command(
                "mode_command_template", mode, str(mode)))])
            if not get("mode_state_topic"):
                out.optimistic[self.attribute()] = mode
            return out
        if name == "set_temperature":
            return self._set_temperature(params)
        if name == "set_preset_mode":
            mode = params.get("preset_mode")
            if mode not in (get("preset_modes") or []):
                raise CommandError("params.preset_mode", f"unknown preset {mode!r}")
            return Outcome([self.publish("preset_mode_command_topic", self.render_command(
                "preset_mode_command_template", mode, str(mode)))])
        return super().command(name, params)

    def _set_temperature(self, params: dict[str, Any]) -> Outcome:
        """One message per setpoint given (temperature, target_temp_low, target_temp_high),
        each on its own topic, as Home Assistant sends them."""
        get = self.config.get
        lo, hi = get("min_temp", 7), get("max_temp", 35)
        given = [p for p in self._SETPOINTS if params.get(p) is not None]
        if not given:
            raise CommandError("params.temperature", "give temperature, or target_temp_low "
                                                     "and/or target_temp_high")
        out = Outcome()
        for param in given:
            part, topic, template, state_topic = self._SETPOINTS[param]
            value = params[param]
            if not get(topic):
                raise CommandError(f"params.{param}", f"climate {self.key} has no {topic}")
            if not lo <= value <= hi:
                raise CommandError(f"params.{param}", f"must be within [{lo}, {hi}]")
            text = _plain(value)
            out.messages.append(self.publish(topic, self.render_command(template, value,
                                                                        text)))
            if not get(state_topic):
                out.optimistic[self.attribute(part)] = value
        return out


class Trigger(Entity):
    """device_automation: a message on `topic` (matching `payload`) is a device event."""

    component = "device_automation"

    @property
    def event(self) -> str:
        parts = [self.config.get("type"), self.config.get("subtype")]
        return "_".join(_slug(p) for p in parts if p)[:64] or "trigger"

    def events(self) -> tuple[str, ...]:
        return (self.event,)

    def routes(self) -> dict[str, Handler]:
        return {self.config.get("topic"): self._fired}

    def _fired(self, payload: str) -> Values:
        value = self.render("value_template", payload).strip()
        wanted = self.config.get("payload")
        if wanted is not None and value != wanted:
            return {}
        return {"__event__": (self.event, {"type": self.config.get("type"),
                                           "subtype": self.config.get("subtype")})}


class EventEntity(Entity):
    """event: a JSON message with `event_type` on the state topic is a device event."""

    component = "event"

    def events(self) -> tuple[str, ...]:
        return tuple(_slug(t)[:64] for t in self.config.get("event_types") or ())

    def routes(self) -> dict[str, Handler]:
        out = super().routes()
        if self.config.get("state_topic"):
            _merge(out, self.config.get("state_topic"), self._fired)
        return out

    def _fired(self, payload: str) -> Values:
        text = self.render("value_template", payload)
        try:
            data = json.loads(text)
        except ValueError:
            raise StateError("event is not JSON") from None
        if not isinstance(data, dict) or data.get("event_type") not in (
                self.config.get("event_types") or []):
            raise StateError("event_type missing or not announced")
        extra = {str(k)[:64]: v for k, v in list(data.items())[:16] if k != "event_type"}
        return {"__event__": (_slug(data["event_type"])[:64], {"entity": self.key, **extra})}


# command -> the topics it needs, per component (commands not listed need nothing more)
_COMMAND_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "cover": {"open": ("command_topic",), "close": ("command_topic",),
              "stop": ("command_topic",), "set_position": ("set_position_topic",),
              "set_tilt": ("tilt_command_topic",)},
    "fan": {"set_percentage": ("percentage_command_topic",),
            "set_preset_mode": ("preset_mode_command_topic",)},
    "climate": {"set_hvac_mode": ("mode_command_topic",),
                "set_temperature": ("temperature_command_topic",),
                "set_preset_mode": ("preset_mode_command_topic",)},
    "switch": {"turn_on": ("command_topic",), "turn_off": ("command_topic",),
               "toggle": ("command_topic",)},
    "lock": {"lock": ("command_topic",), "unlock": ("command_topic",),
             "open": ("command_topic", "payload_open")},
    "button": {"press": ("command_topic",)},
    "number": {"set_value": ("command_topic",)},
    "select": {"select_option": ("command_topic",)},
}


KINDS: dict[str, type[Entity]] = {
    cls.component: cls for cls in (Switch, BinarySensor, Sensor, Light, Cover, Lock, Button,
                                   Number, Select, Fan, Climate, Trigger, EventEntity)
}


def _merge(out: dict[str, Handler], topic: str, handler: Handler) -> None:
    """Several parts of one entity may share a topic (Zigbee2MQTT sends one JSON per device)."""
    previous = out.get(topic)
    if previous is None:
        out[topic] = handler
        return

    def both(payload: str) -> Values:
        return {**previous(payload), **handler(payload)}
    out[topic] = both


def make_entity(config: EntityConfig, key: str, templates: Templates) -> Entity:
    return KINDS[config.component](config, key, templates)


# -- value helpers ---------------------------------------------------------------------------


@overload
def _number(text: str, numeric_required: Literal[True] = True) -> float: ...
@overload
def _number(text: str, numeric_required: bool) -> float | str: ...


def _number(text: str, numeric_required: bool = True) -> float | str:
    """A number (an int when the text is one), or with `numeric_required=False` the text."""
    try:
        value = float(text)
    except ValueError:
        if not numeric_required:
            return text[:255]
        raise StateError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise StateError(f"{text[:40]!r} is not a finite number")
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() \
        else value


def _ints(text: str, n: int) -> list[int]:
    parts = text.split(",")
    if len(parts) != n:
        raise StateError(f"expected {n} comma-separated numbers, got {text[:40]!r}")
    return [round(float(_number(p.strip()))) for p in parts]


def _floats(text: str, n: int) -> list[float]:
    parts = text.split(",")
    if len(parts) != n:
        raise StateError(f"expected {n} comma-separated numbers, got {text[:40]!r}")
    return [float(_number(p.strip())) for p in parts]


def parse_rgb(text: str) -> tuple[int, int, int]:
    t = text.strip()
    try:
        if t.startswith("#") and len(t) == 7:
            return int(t[1:3], 16), int(t[3:5], 16), int(t[5:7], 16)
        parts = [int(p) for p in t.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise CommandError("params.rgb", "expected #rrggbb or r,g,b with 0-255 each")
    return parts[0], parts[1], parts[2]


def _check_pairs(params: dict[str, Any]) -> None:
    for a, b in (("hue", "saturation"), ("x", "y")):
        if (a in params) != (b in params):
            raise CommandError(f"params.{b if a in params else a}", f"{a} and {b} go together")


def _percent_param(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if value is None or not 0 <= value <= 100:
        raise CommandError(f"params.{name}", "must be within [0, 100]")
    return value


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _slug(text: Any) -> str:
    out = "".join(c if c.isalnum() else "_" for c in str(text).lower())
    return "_".join(p for p in out.split("_") if p)
