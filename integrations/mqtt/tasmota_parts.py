"""hatasmota's entities as parts of a hub device: the attributes each reports, the commands
it takes, and how a command becomes hatasmota's call (which publishes what Tasmota expects:
`cmnd/<topic>/POWER1 ON`, a Backlog of `Dimmer`/`CT`/`Color2`..., `FanSpeed 2`,
`ShutterPosition1 40`).

A part's key is stable for the device: `relay_1`, `light_1`, `fan`, `shutter_1`,
`switch_1` (binary sensors), a sensor's path (`energy_power`, `am2301_temperature`) and the
status sensors (`rssi`, `signal`, `ip`, ...). Its main value is the attribute `<key>`, the
others `<key>_<part>` as for the convention's entities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hatasmota import const as hc
from hatasmota.entity import TasmotaEntity
from hatasmota.fan import TasmotaFan
from hatasmota.light import (
    LIGHT_TYPE_COLDWARM,
    LIGHT_TYPE_NONE,
    LIGHT_TYPE_RGB,
    LIGHT_TYPE_RGBCW,
    LIGHT_TYPE_RGBW,
    TasmotaLight,
)
from hatasmota.relay import TasmotaRelay
from hatasmota.sensor import TasmotaSensor
from hatasmota.shutter import TasmotaShutter
from hatasmota.status_sensor import TasmotaStatusSensor
from hatasmota.switch import TasmotaSwitch

from integrations.mqtt.entities import CommandError, parse_rgb
from integrations.mqtt.thirdparty import entity_config

Values = dict[str, Any]
Meta = dict[str, Any]


class Part:
    """One hatasmota entity of a device (hubdevice.EntityLike, as the convention's)."""

    component = ""
    commands: dict[str, dict[str, str]] = {}
    required: dict[str, tuple[str, ...]] = {}

    def __init__(self, entity: TasmotaEntity, key: str) -> None:
        self.entity = entity
        self.key = key
        self.origin = "config"  # or "sensors": which discovery message announced it

    def attribute(self, part: str = "") -> str:
        return f"{self.key}_{part}" if part else self.key

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): {}}

    def accepts(self) -> dict[str, dict[str, str]]:
        return self.commands

    def all_attributes(self) -> dict[str, Meta]:
        return self.attributes()

    def events(self) -> tuple[str, ...]:
        return ()  # Tasmota's triggers are the device's, not a part's

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """command -> string parameter -> the values this part takes (none listed: any)."""
        return {}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        """hatasmota's state callback -> attribute values."""
        return {self.attribute(): args[0] if args else None}

    async def command(self, name: str, params: dict[str, Any]) -> Values:
        """Carry out a command through hatasmota; returns values to assume at once (none:
        Tasmota answers every command on stat/RESULT)."""
        raise CommandError("command", f"{self.key} does not accept {name}")


class RelayPart(Part):
    """A relay as a switch, or as an on/off light (SetOption30, the iFan's light)."""

    component = "switch"

    commands = {"turn_on": {}, "turn_off": {}, "toggle": {}}
    entity: TasmotaRelay | TasmotaLight

    def __init__(self, entity: TasmotaEntity, key: str) -> None:
        super().__init__(entity, key)
        self.is_on: bool | None = None

    def state(self, *args: Any, **kwargs: Any) -> Values:
        self.is_on = bool(args[0])
        return {self.attribute(): self.is_on}

    async def command(self, name: str, params: dict[str, Any]) -> Values:
        on = {"turn_on": True, "turn_off": False}.get(name, not self.is_on)
        if isinstance(self.entity, TasmotaLight):  # a relay light (hatasmota's light class)
            await self.entity.set_state(on, {})
        else:
            await self.entity.set_state(on)
        return {}


class LightPart(Part):
    """A PWM light: dimmer, CT, RGB, RGBW, RGBCCT (brightness is Tasmota's Dimmer, 0-100)."""

    component = "light"

    entity: TasmotaLight

    def __init__(self, entity: TasmotaEntity, key: str) -> None:
        super().__init__(entity, key)
        self.is_on: bool | None = None
        kind = self.entity.light_type
        self.dims = kind != LIGHT_TYPE_NONE
        self.ct = kind in (LIGHT_TYPE_COLDWARM, LIGHT_TYPE_RGBCW)
        self.color = kind in (LIGHT_TYPE_RGB, LIGHT_TYPE_RGBW, LIGHT_TYPE_RGBCW)
        self.white = kind == LIGHT_TYPE_RGBW
        on: dict[str, str] = {}
        if self.dims:
            on.update(brightness="number", transition="number")
        if self.ct:
            on["color_temp"] = "number"
        if self.color:
            on.update(rgb="string", hue="number", saturation="number", effect="string")
        if self.white:
            on["white"] = "number"
        self.commands = {"turn_on": on, "turn_off": {"transition": "number"} if self.dims
                         else {}, "toggle": {}}

    def attributes(self) -> dict[str, Meta]:
        attrs: dict[str, Meta] = {self.attribute(): {}}
        if self.dims:
            attrs[self.attribute("brightness")] = {"unit": "%", "min": 0, "max": 100,
                                                   "step": 1}
        if self.ct:
            attrs[self.attribute("color_temp")] = {"unit": "mired",
                                                   "min": self.entity.min_mireds,
                                                   "max": self.entity.max_mireds}
        if self.color:
            attrs[self.attribute("rgb")] = {}
            attrs[self.attribute("hs")] = {}
            attrs[self.attribute("effect")] = {"options": list(self.entity.effect_list or [])}
        if self.white:
            attrs[self.attribute("white")] = {"unit": "%", "min": 0, "max": 100}
        return attrs

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        on: dict[str, tuple[float, float]] = {"brightness": (0, 100), "transition": (0, 40),
                                              "hue": (0, 360), "saturation": (0, 100),
                                              "white": (0, 100)}
        if self.ct:
            on["color_temp"] = (self.entity.min_mireds, self.entity.max_mireds)
        return {"turn_on": on, "turn_off": {"transition": (0, 40)}}

    def choices(self) -> dict[str, dict[str, tuple[str, ...]]]:
        effects = tuple(self.entity.effect_list or ())
        return {"turn_on": {"effect": effects}} if self.color and effects else {}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        self.is_on = bool(args[0])
        values: Values = {self.attribute(): self.is_on}
        attrs = kwargs.get("attributes") or {}
        for name, part, convert in (
                ("brightness", "brightness", _number),
                ("color_temp", "color_temp", _number),
                ("color", "rgb", lambda v: [round(_number(c)) for c in v]),
                ("color_hs", "hs", lambda v: [float(_number(c)) for c in v]),
                ("effect", "effect", str),
                ("white_value", "white", _number)):
            if name in attrs and self.attribute(part) in self.attributes():
                values[self.attribute(part)] = convert(attrs[name])
        return values

    async def command(self, name: str, params: dict[str, Any]) -> Values:
        if name == "toggle":
            await self.entity.set_state(not self.is_on, {})
            return {}
        attributes: dict[str, Any] = {}
        if "transition" in params:
            attributes["transition"] = params["transition"]
        if name == "turn_on":
            if "brightness" in params:
                attributes["brightness"] = round(params["brightness"])
            if "color_temp" in params:
                attributes["color_temp"] = round(params["color_temp"])
            if "rgb" in params:
                attributes["color"] = parse_rgb(params["rgb"])
            if ("hue" in params) != ("saturation" in params):
                raise CommandError("params.hue" if "hue" not in params else "params.saturation",
                                "hue and saturation go together")
            if "hue" in params:
                attributes["color_hs"] = (params["hue"], params["saturation"])
            if "effect" in params:
                if params["effect"] not in (self.entity.effect_list or []):
                    raise CommandError("params.effect", f"unknown effect {params['effect']!r}")
                attributes["effect"] = params["effect"]
            if "white" in params:
                attributes["white_value"] = round(params["white"])
        await self.entity.set_state(name == "turn_on", attributes)
        return {}


class FanPart(Part):
    """The Sonoff iFan's fan: FanSpeed 0-3, as a percentage (0, 33, 67, 100)."""

    component = "fan"

    commands = {"turn_on": {"percentage": "number"}, "turn_off": {}, "toggle": {},
                "set_percentage": {"percentage": "number"}}
    required = {"set_percentage": ("percentage",)}
    entity: TasmotaFan

    def __init__(self, entity: TasmotaEntity, key: str) -> None:
        super().__init__(entity, key)
        self.speed: int | None = None

    def attributes(self) -> dict[str, Meta]:
        return {self.attribute(): {},
                self.attribute("percentage"): {"unit": "%", "min": 0, "max": 100,
                                               "step": 100 / 3}}

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {"turn_on": {"percentage": (0, 100)}, "set_percentage": {"percentage": (0, 100)}}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        self.speed = int(args[0])
        return {self.attribute(): self.speed > 0,
                self.attribute("percentage"): round(self.speed * 100 / 3)}

    async def command(self, name: str, params: dict[str, Any]) -> Values:
        if "percentage" in params:  # the nearest speed; any percentage above 0 runs it
            pct = params["percentage"]
            speed = max(hc.FAN_SPEED_LOW, round(pct * 3 / 100)) if pct > 0 else 0
        elif name == "turn_on" or (name == "toggle" and not self.speed):
            speed = hc.FAN_SPEED_MEDIUM
        else:
            speed = hc.FAN_SPEED_OFF
        await self.entity.set_speed(speed)
        return {}


class ShutterPart(Part):
    """A shutter (two relays): open/close/stop, position, tilt when configured."""

    component = "cover"

    required = {"set_position": ("position",), "set_tilt": ("tilt",)}
    entity: TasmotaShutter

    def __init__(self, entity: TasmotaEntity, key: str) -> None:
        super().__init__(entity, key)
        self.position: float | None = None
        self.commands = {"open": {}, "close": {}, "stop": {},
                         "set_position": {"position": "number"}}
        if self.entity.supports_tilt:
            self.commands["set_tilt"] = {"tilt": "number"}

    def attributes(self) -> dict[str, Meta]:
        attrs: dict[str, Meta] = {
            self.attribute(): {"options": ["open", "opening", "closed", "closing"]},
            self.attribute("position"): {"unit": "%", "min": 0, "max": 100}}
        if self.entity.supports_tilt:
            attrs[self.attribute("tilt")] = {"unit": "%", "min": 0, "max": 100}
        return attrs

    def ranges(self) -> dict[str, dict[str, tuple[float, float]]]:
        return {"set_position": {"position": (0, 100)}, "set_tilt": {"tilt": (0, 100)}}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        values: Values = {}
        direction, position = kwargs.get("direction"), kwargs.get("position")
        if position is not None:
            self.position = _number(position)
            values[self.attribute("position")] = self.position
        if kwargs.get("tilt") is not None and self.entity.supports_tilt:
            values[self.attribute("tilt")] = round(kwargs["tilt"])
        if direction is not None or position is not None:
            moving = {hc.SHUTTER_DIRECTION_UP: "opening",
                      hc.SHUTTER_DIRECTION_DOWN: "closing"}.get(direction or 0)
            values[self.attribute()] = moving or ("closed" if self.position == 0 else "open")
        return values

    async def command(self, name: str, params: dict[str, Any]) -> Values:
        entity = self.entity
        calls: dict[str, Callable[[], Any]] = {
            "open": entity.open, "close": entity.close, "stop": entity.stop,
            "set_position": lambda: entity.set_position(round(params["position"])),
            "set_tilt": lambda: entity.set_tilt_position(round(params["tilt"]))}
        await calls[name]()
        return {}


class BinaryPart(Part):
    """A switch input (SetOption114) in a mode Tasmota reports as a binary sensor."""

    component = "binary_sensor"

    def state(self, *args: Any, **kwargs: Any) -> Values:
        return {self.attribute(): bool(args[0])}


class SensorPart(Part):
    """A reading of the `sensors` message (ENERGY Power, AM2301 Temperature...)."""

    component = "sensor"

    entity: TasmotaSensor

    def attributes(self) -> dict[str, Meta]:
        meta: Meta = dict(_QUANTITY.get(self.entity.quantity, {}))
        unit = self.entity.unit
        if unit and unit.strip():  # TempUnit "C"/"F" as the hub writes them
            meta["unit"] = {"C": "°C", "F": "°F"}.get(unit, unit)
        return {self.attribute(): meta}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        value = args[0] if args else None
        if isinstance(value, str) and self.entity.discovered_as_numeric:
            value = _number(value)  # SetOption4 decimal text: "23.5"
        elif isinstance(value, float):
            value = _number(value)  # refuses NaN and infinities
        return {self.attribute(): value if isinstance(value, (int, float, type(None)))
                else str(value)[:255]}


class StatusPart(Part):
    """One of Tasmota's status sensors (RSSI, signal, IP, SSID, version, restart...)."""

    component = "sensor"

    entity: TasmotaStatusSensor

    def attributes(self) -> dict[str, Meta]:
        meta: Meta = dict(_QUANTITY.get(self.entity.quantity, {}))
        if self.entity.unit:
            meta["unit"] = self.entity.unit
        return {self.attribute(): meta}

    def state(self, *args: Any, **kwargs: Any) -> Values:
        value = args[0] if args else None
        if isinstance(value, datetime):
            value = value.isoformat(timespec="seconds")
        elif isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)  # Tasmota sends RSSI and Signal as text
        elif isinstance(value, float):
            value = _number(value)
        elif not isinstance(value, (str, int, type(None))):
            value = str(value)[:255]
        return {self.attribute(): value}


def make_part(entity: TasmotaEntity) -> Part:
    """The part for a hatasmota entity, with its key."""
    cfg: Any = entity_config(entity)
    if isinstance(entity, TasmotaLight):
        if cfg.endpoint == "relay":
            part: Part = RelayPart(entity, f"light_{cfg.idx + 1}")
            part.component = "light"
            return part
        return LightPart(entity, f"light_{cfg.idx + 1}")
    if isinstance(entity, TasmotaRelay):
        return RelayPart(entity, f"relay_{cfg.idx + 1}")
    if isinstance(entity, TasmotaFan):
        return FanPart(entity, "fan")
    if isinstance(entity, TasmotaShutter):
        return ShutterPart(entity, f"shutter_{cfg.idx + 1}")
    if isinstance(entity, TasmotaSwitch):
        return BinaryPart(entity, f"switch_{cfg.idx + 1}")
    if isinstance(entity, TasmotaStatusSensor):
        return StatusPart(entity, cfg.sensor.removeprefix("status_"))
    if isinstance(entity, TasmotaSensor):
        path = [str(p + 1) if isinstance(p, int) else p for p in cfg.value_path]
        sensor = SensorPart(entity, slug("_".join(path)))
        sensor.origin = "sensors"
        return sensor
    raise TypeError(f"no part for {type(entity).__name__}")


# Tasmota's quantities -> device class and state class (units come from hatasmota)
_M = "measurement"
_QUANTITY: dict[str, Meta] = {
    hc.SENSOR_TEMPERATURE: {"device_class": "temperature", "state_class": _M},
    hc.SENSOR_DEWPOINT: {"device_class": "temperature", "state_class": _M},
    hc.SENSOR_HUMIDITY: {"device_class": "humidity", "state_class": _M},
    hc.SENSOR_PRESSURE: {"device_class": "pressure", "state_class": _M},
    hc.SENSOR_PRESSURE_AT_SEA_LEVEL: {"device_class": "pressure", "state_class": _M},
    hc.SENSOR_ILLUMINANCE: {"device_class": "illuminance", "state_class": _M},
    hc.SENSOR_AMBIENT: {"device_class": "illuminance", "state_class": _M},
    hc.SENSOR_CO2: {"device_class": "carbon_dioxide", "state_class": _M},
    hc.SENSOR_ECO2: {"device_class": "carbon_dioxide", "state_class": _M},
    hc.SENSOR_TVOC: {"device_class": "volatile_organic_compounds_parts", "state_class": _M},
    hc.SENSOR_PM1: {"device_class": "pm1", "state_class": _M},
    hc.SENSOR_PM2_5: {"device_class": "pm25", "state_class": _M},
    hc.SENSOR_PM10: {"device_class": "pm10", "state_class": _M},
    hc.SENSOR_POWER: {"device_class": "power", "state_class": _M},
    hc.SENSOR_POWER_ACTIVE: {"device_class": "power", "state_class": _M},
    hc.SENSOR_POWER_APPARENT: {"device_class": "apparent_power", "state_class": _M},
    hc.SENSOR_POWER_REACTIVE: {"device_class": "reactive_power", "state_class": _M},
    hc.SENSOR_POWER_FACTOR: {"device_class": "power_factor", "state_class": _M},
    hc.SENSOR_VOLTAGE: {"device_class": "voltage", "state_class": _M},
    hc.SENSOR_CURRENT: {"device_class": "current", "state_class": _M},
    hc.SENSOR_CURRENT_NEUTRAL: {"device_class": "current", "state_class": _M},
    hc.SENSOR_FREQUENCY: {"device_class": "frequency", "state_class": _M},
    hc.SENSOR_BATTERY: {"device_class": "battery", "state_class": _M},
    hc.SENSOR_DISTANCE: {"device_class": "distance", "state_class": _M},
    hc.SENSOR_WEIGHT: {"device_class": "weight", "state_class": _M},
    hc.SENSOR_SPEED: {"device_class": "wind_speed", "state_class": _M},
    hc.SENSOR_MOISTURE: {"device_class": "moisture", "state_class": _M},
    # the meter since TotalStartTime; today's resets at midnight; yesterday's is fixed
    hc.SENSOR_ENERGY_IMPORT_TOTAL: {"device_class": "energy", "state_class": "total"},
    hc.SENSOR_ENERGY_IMPORT_TOTAL_TARIFF: {"device_class": "energy", "state_class": "total"},
    hc.SENSOR_ENERGY_IMPORT_TODAY: {"device_class": "energy",
                                    "state_class": "total_increasing"},
    hc.SENSOR_ENERGY_IMPORT_YESTERDAY: {"device_class": "energy"},
    hc.SENSOR_ENERGY_IMPORT_ACTIVE: {"device_class": "energy", "state_class": "total"},
    hc.SENSOR_ENERGY_EXPORT_ACTIVE: {"device_class": "energy", "state_class": "total"},
    hc.SENSOR_ENERGY_EXPORT_TARIFF: {"device_class": "energy", "state_class": "total"},
    hc.SENSOR_ENERGY_TOTAL_START_TIME: {"device_class": "timestamp"},
    hc.SENSOR_STATUS_RSSI: {"state_class": _M},
    hc.SENSOR_STATUS_SIGNAL: {"device_class": "signal_strength", "state_class": _M},
    hc.SENSOR_STATUS_LAST_RESTART_TIME: {"device_class": "timestamp"},
    hc.SENSOR_STATUS_LINK_COUNT: {"state_class": "total_increasing"},
    hc.SENSOR_STATUS_MQTT_COUNT: {"state_class": "total_increasing"},
}


def _number(value: Any) -> float | int:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(p for p in out.split("_") if p)
