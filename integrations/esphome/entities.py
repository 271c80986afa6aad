"""ESPHome entities as parts of a hub device: attributes they report, commands they take.

Attributes are named after the entity's object id: `<key>` for its main value (on/off, the
reading, the cover's or the lock's state, the HVAC mode) and `<key>_<part>` for the others
(`strip_brightness`). Commands are shared by the device (`turn_on`, `set_position`...); the
optional `entity` parameter picks the entity when several accept the same command (default:
the first one). The names and ranges follow the MQTT integration's, so the dashboard's
controls and automations read both alike.

aioesphomeapi's model classes are the input (unknown enum values already read as None); a
value a device should not send (NaN, a brightness above 1) is dropped or clamped and counted,
never raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aioesphomeapi as api

from hub.facade import CommandSpec, ValidationError

Values = dict[str, Any]
Meta = dict[str, Any]
MAX_TEXT = 255


class EntityError(ValueError):
    """A command the entity cannot carry out as asked."""


@dataclass
class Entity:
    """One entity of a device (base: what every kind shares)."""

    info: Any  # aioesphomeapi.EntityInfo subclass
    key: str  # attribute key (object id)
    malformed: Callable[[str], None] = field(default=lambda _what: None)
    commands: dict[str, dict[str, str]] = field(default_factory=dict)
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # command -> string parameter -> the values this entity takes (the hub checks them
    # before the entity does, and the dashboard lists them)
    choices: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Kinds set their commands here, from what the entity info says it supports."""

    def attribute(self, part: str = "") -> str:
        return f"{self.key}_{part}" if part else self.key

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): {}}

    def events(self) -> tuple[str, ...]:
        return ()

    def state(self, state: Any) -> Values:
        if getattr(state, "missing_state", False):
            return {self.attribute(): None}
        return {self.attribute(): state.state}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        raise EntityError(f"{self.key} does not accept {name}")  # not declared: unreachable

    def _number(self, value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            if value is not None:
                self.malformed(f"{self.key}: non-finite value")
            return None
        return value

    def _fraction(self, value: float, what: str) -> float:
        if not math.isfinite(value):
            self.malformed(f"{self.key}: non-finite {what}")
            return 0.0
        if not 0.0 <= value <= 1.0:
            self.malformed(f"{self.key}: {what} {value} outside 0..1")
        return min(1.0, max(0.0, value))


def _device_class(info: Any) -> Meta:
    dc = getattr(info, "device_class", "")
    return {"device_class": dc} if dc else {}


class Switch(Entity):
    def __post_init__(self) -> None:
        self.commands = {"turn_on": {}, "turn_off": {}, "toggle": {}}

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): _device_class(self.info)}

    def state(self, state: Any) -> Values:
        self.is_on = None if state.missing_state else bool(state.state)
        return {self.attribute(): self.is_on}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        on = {"turn_on": True, "turn_off": False}.get(name)
        if on is None:
            on = not getattr(self, "is_on", False)
        client.switch_command(self.info.key, on, device_id=self.info.device_id)


class BinarySensor(Entity):
    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): _device_class(self.info)}


class Sensor(Entity):
    def attributes(self) -> dict[str, Meta]:
        info = self.info
        meta: Meta = _device_class(info)
        if info.unit_of_measurement:
            meta["unit"] = info.unit_of_measurement
        if info.state_class:
            meta["state_class"] = info.state_class.name.lower()
        meta["precision"] = info.accuracy_decimals
        return {self.attribute(): meta}

    def state(self, state: Any) -> Values:
        if state.missing_state:
            return {self.attribute(): None}
        value = self._number(state.state)
        if value is not None:  # the device sends float32: drop its noise (0.1 not 0.100000001)
            value = float(f"{value:.7g}")
        return {self.attribute(): value}


class TextSensor(Entity):
    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): _device_class(self.info)}

    def state(self, state: Any) -> Values:
        if state.missing_state:
            return {self.attribute(): None}
        text = state.state
        if len(text) > MAX_TEXT:
            self.malformed(f"{self.key}: text longer than {MAX_TEXT}")
            text = text[:MAX_TEXT]
        return {self.attribute(): text}


class Button(Entity):
    def __post_init__(self) -> None:
        self.commands = {"press": {}}

    def attributes(self) -> dict[str, Meta]:
        return {}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        client.button_command(self.info.key, device_id=self.info.device_id)


class Event(Entity):
    """Event entities fire hub device events (`<event_type>`, data: the entity)."""

    def attributes(self) -> dict[str, Meta]:
        return {}

    def events(self) -> tuple[str, ...]:
        return tuple(self.info.event_types)

    def state(self, state: Any) -> Values:
        return {}


class Light(Entity):
    def __post_init__(self) -> None:
        modes = set(self.info.supported_color_modes or [])
        caps = 0
        for mode in modes:
            caps |= int(mode)
        cap = api.LightColorCapability
        self.brightness = bool(caps & cap.BRIGHTNESS) or self.info.legacy_supports_brightness
        self.color_temp = bool(caps & (cap.COLOR_TEMPERATURE | cap.COLD_WARM_WHITE))
        self.rgb = bool(caps & cap.RGB)
        on: dict[str, str] = {"transition": "number"}
        if self.brightness:
            on["brightness"] = "number"
        if self.color_temp:
            on["color_temp"] = "number"
        if self.rgb:
            on["rgb"] = "string"
        if self.info.effects:
            on["effect"] = "string"
        self.commands = {"turn_on": on, "turn_off": {"transition": "number"}, "toggle": {}}
        self.is_on: bool | None = None

    def attributes(self) -> dict[str, Meta]:
        attrs: dict[str, Meta] = {self.attribute(): {}}
        if self.brightness:
            attrs[self.attribute("brightness")] = {"min": 0, "max": 255, "step": 1}
        if self.color_temp:
            attrs[self.attribute("color_temp")] = {
                "unit": "mired", "min": round(self.info.min_mireds),
                "max": round(self.info.max_mireds), "step": 1}
        if self.rgb:
            attrs[self.attribute("rgb")] = {}
        if self.info.effects:
            attrs[self.attribute("effect")] = {"options": list(self.info.effects)}
        return attrs

    def state(self, state: Any) -> Values:
        self.is_on = bool(state.state)
        values: Values = {self.attribute(): self.is_on}
        if self.brightness:
            values[self.attribute("brightness")] = round(
                self._fraction(state.brightness, "brightness") * 255)
        if self.color_temp and state.color_temperature:
            values[self.attribute("color_temp")] = round(state.color_temperature)
        if self.rgb:
            values[self.attribute("rgb")] = [
                round(self._fraction(c, "colour") * 255)
                for c in (state.red, state.green, state.blue)]
        if self.info.effects:
            effect = state.effect
            values[self.attribute("effect")] = None if not effect or effect == "None" else (
                effect[:MAX_TEXT])
        return values

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        transition = params.get("transition")
        if transition is not None and not 0 <= transition <= 3600:
            raise ValidationError("params.transition", "expected seconds within 0..3600")
        if name == "turn_off" or (name == "toggle" and self.is_on):
            client.light_command(self.info.key, state=False, transition_length=transition,
                                 device_id=self.info.device_id)
            return
        kw: dict[str, Any] = {}
        if (b := params.get("brightness")) is not None:
            if not 0 <= b <= 255:
                raise ValidationError("params.brightness", "expected 0..255")
            kw["brightness"] = b / 255
        if (ct := params.get("color_temp")) is not None:
            lo, hi = self.info.min_mireds, self.info.max_mireds
            if not lo <= ct <= hi:
                raise ValidationError("params.color_temp",
                                      f"expected {round(lo)}..{round(hi)} mireds")
            kw["color_temperature"] = ct
            kw["color_mode"] = self._mode(api.LightColorCapability.COLOR_TEMPERATURE
                                          | api.LightColorCapability.COLD_WARM_WHITE)
        if (rgb := params.get("rgb")) is not None:
            kw["rgb"] = tuple(c / 255 for c in _rgb(rgb))
            kw["color_mode"] = self._mode(api.LightColorCapability.RGB)
            kw["color_brightness"] = 1.0
        if (effect := params.get("effect")) is not None:
            if effect not in self.info.effects and effect.lower() != "none":
                raise ValidationError("params.effect",
                                      f"expected one of: {', '.join(self.info.effects)}")
            kw["effect"] = effect
        client.light_command(self.info.key, state=True, transition_length=transition,
                             device_id=self.info.device_id, **kw)


    def _mode(self, wanted: int) -> int | None:
        """The device's simplest colour mode with one of the `wanted` capabilities (the
        firmware keeps its current mode, and ignores the value, unless told)."""
        modes = [int(m) for m in self.info.supported_color_modes or [] if int(m) & wanted]
        return min(modes, key=lambda m: bin(m).count("1")) if modes else None


class Cover(Entity):
    def __post_init__(self) -> None:
        self.commands = {"open": {}, "close": {}}
        if self.info.supports_stop:
            self.commands["stop"] = {}
        if self.info.supports_position:
            self.commands["set_position"] = {"position": "number"}
            self.required["set_position"] = ("position",)
        if self.info.supports_tilt:
            self.commands["set_tilt"] = {"tilt": "number"}
            self.required["set_tilt"] = ("tilt",)

    def attributes(self) -> dict[str, Meta]:
        attrs: dict[str, Meta] = {self.attribute(): {
            **_device_class(self.info),
            "options": ["open", "opening", "closed", "closing", "stopped"]}}
        if self.info.supports_position:
            attrs[self.attribute("position")] = {"unit": "%", "min": 0, "max": 100, "step": 1}
        if self.info.supports_tilt:
            attrs[self.attribute("tilt")] = {"unit": "%", "min": 0, "max": 100, "step": 1}
        return attrs

    def state(self, state: Any) -> Values:
        position = self._fraction(state.position, "position")
        op = state.current_operation
        if op == api.CoverOperation.IS_OPENING:
            main = "opening"
        elif op == api.CoverOperation.IS_CLOSING:
            main = "closing"
        else:
            main = "closed" if position <= 0.0 else "open"
        values: Values = {self.attribute(): main}
        if self.info.supports_position:
            values[self.attribute("position")] = round(position * 100)
        if self.info.supports_tilt:
            values[self.attribute("tilt")] = round(self._fraction(state.tilt, "tilt") * 100)
        return values

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        key, dev = self.info.key, self.info.device_id
        if name == "stop":
            client.cover_command(key, stop=True, device_id=dev)
        elif name in ("open", "close"):
            client.cover_command(key, position=1.0 if name == "open" else 0.0, device_id=dev)
        else:
            part = "position" if name == "set_position" else "tilt"
            value = params[part]
            if not 0 <= value <= 100:
                raise ValidationError(f"params.{part}", "expected 0..100")
            client.cover_command(key, device_id=dev, **{part: value / 100})


class Fan(Entity):
    def __post_init__(self) -> None:
        info = self.info
        on: dict[str, str] = {}
        self.commands = {"turn_on": on, "turn_off": {}, "toggle": {}}
        if info.supports_speed and info.supported_speed_count:
            on["percentage"] = "number"
            self.commands["set_percentage"] = {"percentage": "number"}
            self.required["set_percentage"] = ("percentage",)
        if info.supported_preset_modes:
            on["preset_mode"] = "string"
            self.commands["set_preset_mode"] = {"preset_mode": "string"}
            self.required["set_preset_mode"] = ("preset_mode",)
            presets = tuple(info.supported_preset_modes)
            self.choices["turn_on"] = {"preset_mode": presets}
            self.choices["set_preset_mode"] = {"preset_mode": presets}
        if info.supports_oscillation:
            self.commands["oscillate"] = {"oscillating": "boolean"}
            self.required["oscillate"] = ("oscillating",)
        if info.supports_direction:
            self.commands["set_direction"] = {"direction": "string"}
            self.required["set_direction"] = ("direction",)
            self.choices["set_direction"] = {"direction": ("forward", "reverse")}
        self.is_on: bool | None = None

    def attributes(self) -> dict[str, Meta]:
        info = self.info
        attrs: dict[str, Meta] = {self.attribute(): {}}
        if "percentage" in self.commands["turn_on"]:
            step = round(100 / info.supported_speed_count, 2)
            attrs[self.attribute("percentage")] = {"unit": "%", "min": 0, "max": 100,
                                                   "step": step}
        if info.supported_preset_modes:
            attrs[self.attribute("preset_mode")] = {"options": list(info.supported_preset_modes)}
        if info.supports_oscillation:
            attrs[self.attribute("oscillating")] = {}
        if info.supports_direction:
            attrs[self.attribute("direction")] = {"options": ["forward", "reverse"]}
        return attrs

    def state(self, state: Any) -> Values:
        info = self.info
        self.is_on = bool(state.state)
        values: Values = {self.attribute(): self.is_on}
        if "percentage" in self.commands["turn_on"]:
            level = max(0, min(state.speed_level, info.supported_speed_count))
            values[self.attribute("percentage")] = round(
                level * 100 / info.supported_speed_count)
        if info.supported_preset_modes:
            values[self.attribute("preset_mode")] = state.preset_mode or None
        if info.supports_oscillation:
            values[self.attribute("oscillating")] = bool(state.oscillating)
        if info.supports_direction:
            values[self.attribute("direction")] = (
                None if state.direction is None else state.direction.name.lower())
        return values

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        key, dev = self.info.key, self.info.device_id
        if name == "turn_off" or (name == "toggle" and self.is_on):
            client.fan_command(key, state=False, device_id=dev)
            return
        kw: dict[str, Any] = {}
        if (pct := params.get("percentage")) is not None:
            if not 0 <= pct <= 100:
                raise ValidationError("params.percentage", "expected 0..100")
            kw["speed_level"] = math.ceil(pct * self.info.supported_speed_count / 100)
        if (preset := params.get("preset_mode")) is not None:
            if preset not in self.info.supported_preset_modes:
                raise ValidationError("params.preset_mode", "expected one of: "
                                      + ", ".join(self.info.supported_preset_modes))
            kw["preset_mode"] = preset
        if name == "oscillate":
            client.fan_command(key, oscillating=params["oscillating"], device_id=dev)
            return
        if name == "set_direction":
            direction = {"forward": api.FanDirection.FORWARD,
                         "reverse": api.FanDirection.REVERSE}.get(params["direction"])
            if direction is None:
                raise ValidationError("params.direction", "expected forward or reverse")
            client.fan_command(key, direction=direction, device_id=dev)
            return
        if name in ("set_percentage", "set_preset_mode"):
            client.fan_command(key, device_id=dev, **kw)
            return
        client.fan_command(key, state=True, device_id=dev, **kw)


_HVAC = {api.ClimateMode.OFF: "off", api.ClimateMode.HEAT_COOL: "heat_cool",
         api.ClimateMode.COOL: "cool", api.ClimateMode.HEAT: "heat",
         api.ClimateMode.FAN_ONLY: "fan_only", api.ClimateMode.DRY: "dry",
         api.ClimateMode.AUTO: "auto"}
_HVAC_BY_NAME = {v: k for k, v in _HVAC.items()}


class Climate(Entity):
    def __post_init__(self) -> None:
        info = self.info
        self.modes = [_HVAC[m] for m in info.supported_modes if m in _HVAC]
        self.presets = [p.name.lower() for p in info.supported_presets if p is not None] + list(
            info.supported_custom_presets)
        flags = info.feature_flags or info.supported_feature_flags_compat(api.APIVersion(1, 0))
        feature = api.ClimateFeature
        self.current = bool(flags & feature.SUPPORTS_CURRENT_TEMPERATURE)
        self.action = bool(flags & feature.SUPPORTS_ACTION)
        self.two_point = bool(flags & feature.REQUIRES_TWO_POINT_TARGET_TEMPERATURE)
        temps = ({"temperature": "number"} if not self.two_point else
                 {"target_temp_low": "number", "target_temp_high": "number"})
        self.commands = {"set_hvac_mode": {"hvac_mode": "string"},
                         "set_temperature": temps}
        self.required = {"set_hvac_mode": ("hvac_mode",)}
        self.choices = {"set_hvac_mode": {"hvac_mode": tuple(self.modes)}}
        if not self.two_point:
            self.required["set_temperature"] = ("temperature",)
        if self.presets:
            self.commands["set_preset_mode"] = {"preset_mode": "string"}
            self.required["set_preset_mode"] = ("preset_mode",)
            self.choices["set_preset_mode"] = {"preset_mode": tuple(self.presets)}

    def _range(self) -> Meta:
        info = self.info
        return {"unit": "°C", "min": info.visual_min_temperature,
                "max": info.visual_max_temperature,
                "step": info.visual_target_temperature_step or 0.5}

    def attributes(self) -> dict[str, Meta]:
        attrs: dict[str, Meta] = {self.attribute(): {"options": self.modes}}
        if self.current:
            attrs[self.attribute("current_temperature")] = {"unit": "°C",
                                                            "device_class": "temperature"}
        if self.two_point:
            attrs[self.attribute("target_temp_low")] = self._range()
            attrs[self.attribute("target_temp_high")] = self._range()
        else:
            attrs[self.attribute("target_temperature")] = self._range()
        if self.action:
            attrs[self.attribute("action")] = {}
        if self.presets:
            attrs[self.attribute("preset_mode")] = {"options": self.presets}
        return attrs

    def state(self, state: Any) -> Values:
        values: Values = {self.attribute(): _HVAC.get(state.mode)}
        if self.current:
            values[self.attribute("current_temperature")] = self._number(
                state.current_temperature)
        if self.two_point:
            values[self.attribute("target_temp_low")] = self._number(
                state.target_temperature_low)
            values[self.attribute("target_temp_high")] = self._number(
                state.target_temperature_high)
        else:
            values[self.attribute("target_temperature")] = self._number(
                state.target_temperature)
        if self.action:
            values[self.attribute("action")] = (
                None if state.action is None else state.action.name.lower())
        if self.presets:
            values[self.attribute("preset_mode")] = (
                state.custom_preset or (state.preset.name.lower() if state.preset else None))
        return values

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        key, dev = self.info.key, self.info.device_id
        if name == "set_hvac_mode":
            mode = params["hvac_mode"]
            if mode not in self.modes:
                raise ValidationError("params.hvac_mode", f"expected one of: "
                                      f"{', '.join(self.modes)}")
            client.climate_command(key, mode=_HVAC_BY_NAME[mode], device_id=dev)
        elif name == "set_temperature":
            lo, hi = self.info.visual_min_temperature, self.info.visual_max_temperature
            kw = {}
            for param, arg in (("temperature", "target_temperature"),
                               ("target_temp_low", "target_temperature_low"),
                               ("target_temp_high", "target_temperature_high")):
                if (value := params.get(param)) is not None:
                    if not lo <= value <= hi:
                        raise ValidationError(f"params.{param}", f"expected {lo:g}..{hi:g}")
                    kw[arg] = value
            if not kw:
                raise ValidationError("params", "give a temperature")
            client.climate_command(key, device_id=dev, **kw)
        else:
            preset = params["preset_mode"]
            if preset not in self.presets:
                raise ValidationError("params.preset_mode",
                                      f"expected one of: {', '.join(self.presets)}")
            standard = {p.name.lower(): p for p in api.ClimatePreset}
            if preset in standard and preset not in self.info.supported_custom_presets:
                client.climate_command(key, preset=standard[preset], device_id=dev)
            else:
                client.climate_command(key, custom_preset=preset, device_id=dev)


class Number(Entity):
    def __post_init__(self) -> None:
        self.commands = {"set_value": {"value": "number"}}
        self.required = {"set_value": ("value",)}

    def attributes(self) -> dict[str, Meta]:
        info = self.info
        meta: Meta = {**_device_class(info), "min": info.min_value, "max": info.max_value,
                      "step": info.step}
        if info.unit_of_measurement:
            meta["unit"] = info.unit_of_measurement
        return {self.attribute(): meta}

    def state(self, state: Any) -> Values:
        if state.missing_state:
            return {self.attribute(): None}
        return {self.attribute(): self._number(state.state)}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        info, value = self.info, params["value"]
        if not info.min_value <= value <= info.max_value:
            raise ValidationError("params.value",
                                  f"expected {info.min_value:g}..{info.max_value:g}")
        if info.step and not math.isclose(
                (value - info.min_value) / info.step,
                round((value - info.min_value) / info.step), abs_tol=1e-6):
            raise ValidationError("params.value", f"expected a multiple of {info.step:g} "
                                  f"from {info.min_value:g}")
        client.number_command(info.key, value, device_id=info.device_id)


class Select(Entity):
    def __post_init__(self) -> None:
        self.commands = {"select_option": {"option": "string"}}
        self.required = {"select_option": ("option",)}
        self.choices = {"select_option": {"option": tuple(self.info.options)}}

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): {"options": list(self.info.options)}}

    def state(self, state: Any) -> Values:
        if state.missing_state:
            return {self.attribute(): None}
        if state.state not in self.info.options:
            self.malformed(f"{self.key}: option {state.state[:40]!r} not announced")
        return {self.attribute(): state.state[:MAX_TEXT]}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        option = params["option"]
        if option not in self.info.options:
            raise ValidationError("params.option",
                                  f"expected one of: {', '.join(self.info.options)}")
        client.select_command(self.info.key, option, device_id=self.info.device_id)


class Lock(Entity):
    _STATES = {api.LockState.LOCKED: "locked", api.LockState.UNLOCKED: "unlocked",
               api.LockState.JAMMED: "jammed", api.LockState.LOCKING: "locking",
               api.LockState.UNLOCKING: "unlocking"}

    def __post_init__(self) -> None:
        self.commands = {"lock": {}, "unlock": {}}
        if self.info.supports_open:
            self.commands["open"] = {}

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): {"options": sorted(set(self._STATES.values()))}}

    def state(self, state: Any) -> Values:
        return {self.attribute(): self._STATES.get(state.state)}

    def command(self, client: api.APIClient, name: str, params: dict[str, Any]) -> None:
        cmd = {"lock": api.LockCommand.LOCK, "unlock": api.LockCommand.UNLOCK,
               "open": api.LockCommand.OPEN}[name]
        client.lock_command(self.info.key, cmd, device_id=self.info.device_id)


KINDS: dict[type, type[Entity]] = {
    api.SwitchInfo: Switch, api.BinarySensorInfo: BinarySensor, api.SensorInfo: Sensor,
    api.TextSensorInfo: TextSensor, api.ButtonInfo: Button, api.EventInfo: Event,
    api.LightInfo: Light, api.CoverInfo: Cover, api.FanInfo: Fan, api.ClimateInfo: Climate,
    api.NumberInfo: Number, api.SelectInfo: Select, api.LockInfo: Lock,
}


@dataclass
class EntitySet:
    """All entities of one device, indexed by their API key, with what they add up to."""

    by_key: dict[int, Entity] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # "camera: Doorbell"

    @classmethod
    def build(cls, infos: list[Any], malformed: Callable[[str], None]) -> EntitySet:
        out = cls()
        used: set[str] = set()
        for info in infos:
            kind = KINDS.get(type(info))
            if kind is None:
                out.unsupported.append(
                    f"{type(info).__name__.removesuffix('Info').lower()}: {info.name}"[:80])
                continue
            key = _unique(_attribute_key(info), used)
            out.by_key[info.key] = kind(info, key, malformed)
        return out

    def attributes(self) -> dict[str, Meta]:
        out: dict[str, Meta] = {}
        for e in self.by_key.values():
            out.update(e.attributes())
        return out

    def events(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for e in self.by_key.values():
            seen.update(dict.fromkeys(e.events()))
        return tuple(seen)

    def command_specs(self) -> tuple[CommandSpec, ...]:
        """The device's commands: each shared by the entities that take it, `entity`
        choosing among them (its choices: their keys, in the device's order). A string
        parameter has choices when every entity taking it lists its values (their union:
        each entity still checks its own)."""
        params: dict[str, dict[str, str]] = {}
        required: dict[str, set[str]] = {}
        entities: dict[str, list[str]] = {}
        values: dict[tuple[str, str], dict[str, None]] = {}  # (command, param) -> values
        free: set[tuple[str, str]] = set()  # an entity takes any value there
        for e in self.by_key.values():
            for name, p in e.commands.items():
                merged = params.setdefault(name, {"entity": "string"})
                merged.update(p)
                req = set(e.required.get(name, ()))
                required[name] = req if name not in required else required[name] & req
                entities.setdefault(name, []).append(e.key)
                own = e.choices.get(name, {})
                for param in p:
                    if param in own:
                        values.setdefault((name, param), {}).update(dict.fromkeys(own[param]))
                    else:
                        free.add((name, param))
        specs = []
        for name in sorted(params):
            choices = {"entity": tuple(entities[name])}
            choices.update({param: tuple(v) for (command, param), v in values.items()
                            if command == name and (command, param) not in free})
            specs.append(CommandSpec(name, params[name], tuple(sorted(required[name])),
                                     choices=choices))
        return tuple(specs)

    def for_command(self, name: str, params: dict[str, Any]) -> Entity:
        """The entity a command is for: the one named by `entity`, else the first that
        accepts the command with all the given parameters."""
        entity = params.get("entity")
        given = set(params) - {"entity"}
        candidates = [e for e in self.by_key.values() if name in e.commands]
        if entity is None:
            fits = [e for e in candidates if given <= set(e.commands[name])]
            if not fits:
                raise ValidationError("command", f"no entity accepts {name!r} with "
                                      f"{', '.join(sorted(given)) or 'no parameters'}")
            return fits[0]
        for e in candidates:
            if e.key == entity:
                for param in sorted(given - set(e.commands[name])):
                    raise ValidationError(f"params.{param}", f"{entity} does not take it")
                return e
        keys = ", ".join(e.key for e in candidates)
        raise ValidationError("params.entity", f"no entity {entity!r} accepts {name!r} "
                              f"(these do: {keys})")


def _attribute_key(info: Any) -> str:
    from aioesphomeapi.object_id import sanitize, snake_case

    raw = info.object_id or sanitize(snake_case(info.name or "")) or f"entity_{info.key}"
    return "".join(c if c.isalnum() or c == "_" else "_" for c in raw.lower())[:64]


def _unique(key: str, used: set[str]) -> str:
    out, n = key, 2
    while out in used:
        out, n = f"{key}_{n}", n + 1
    used.add(out)
    return out


def _rgb(text: str) -> tuple[int, int, int]:
    """'255,128,0' or '#ff8000' -> (r, g, b)."""
    raw = text.strip()
    try:
        if raw.startswith("#") and len(raw) == 7:
            parts = [int(raw[i:i + 2], 16) for i in (1, 3, 5)]
        else:
            parts = [int(p) for p in raw.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise ValidationError("params.rgb", "expected 'r,g,b' (0..255 each) or '#rrggbb'")
    return parts[0], parts[1], parts[2]
