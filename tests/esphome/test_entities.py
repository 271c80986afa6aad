"""Unit tests of integrations/esphome/entities.py: the sub-commands neither the firmware test
nor the double exercises, and values a device should not send.

The input is aioesphomeapi's own model classes (the Info and State objects the client hands
over); the client is a recorder that binds every call to the real `APIClient` method's
signature (a keyword the library does not take fails here) and keeps the calls, so each test
asserts exactly what would go on the wire.
"""

from __future__ import annotations

import inspect
from typing import Any

import aioesphomeapi as api
import pytest

from hub.devices import CommandSpec
from hub.errors import ValidationError
from integrations.esphome.entities import EntitySet

Call = tuple[str, dict[str, Any]]


class RecordingClient:
    """Records `<kind>_command` calls, each checked against aioesphomeapi.APIClient."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(api.APIClient, name)

        def record(*args: Any, **kwargs: Any) -> None:
            bound = inspect.signature(real).bind(None, *args, **kwargs)
            self.calls.append((name, {k: v for k, v in bound.arguments.items()
                                      if k != "self"}))

        return record


def build(*infos: Any) -> tuple[EntitySet, list[str]]:
    bad: list[str] = []
    return EntitySet.build(list(infos), bad.append), bad


def run(entities: EntitySet, command: str, **params: Any) -> list[Call]:
    client = RecordingClient()
    entity = entities.for_command(command, params)
    entity.command(client, command,  # type: ignore[arg-type]
                   {k: v for k, v in params.items() if k != "entity"})
    return client.calls


COVER = api.CoverInfo(object_id="blind", key=11, name="Blind", supports_stop=True,
                      supports_position=True, supports_tilt=True, device_id=3)


def test_cover_stop_open_close_position_and_tilt() -> None:
    entities, _ = build(COVER)
    assert {c.name for c in entities.command_specs()} == {
        "open", "close", "stop", "set_position", "set_tilt"}
    assert run(entities, "stop") == [
        ("cover_command", {"key": 11, "stop": True, "device_id": 3})]
    assert run(entities, "open") == [
        ("cover_command", {"key": 11, "position": 1.0, "device_id": 3})]
    assert run(entities, "close") == [
        ("cover_command", {"key": 11, "position": 0.0, "device_id": 3})]
    assert run(entities, "set_position", position=40) == [
        ("cover_command", {"key": 11, "device_id": 3, "position": 0.4})]
    assert run(entities, "set_tilt", tilt=25) == [
        ("cover_command", {"key": 11, "device_id": 3, "tilt": 0.25})]
    with pytest.raises(ValidationError) as err:
        run(entities, "set_tilt", tilt=101)
    assert err.value.field == "params.tilt"


def test_cover_without_stop_or_tilt_does_not_offer_them() -> None:
    entities, _ = build(api.CoverInfo(object_id="garage", key=12, name="Garage"))
    assert {c.name for c in entities.command_specs()} == {"open", "close"}
    with pytest.raises(ValidationError):
        run(entities, "stop")


THERMOSTAT = api.ClimateInfo(
    object_id="thermostat", key=21, name="Thermostat",
    feature_flags=int(api.ClimateFeature.SUPPORTS_CURRENT_TEMPERATURE
                      | api.ClimateFeature.SUPPORTS_TWO_POINT_TARGET_TEMPERATURE
                      | api.ClimateFeature.REQUIRES_TWO_POINT_TARGET_TEMPERATURE
                      | api.ClimateFeature.SUPPORTS_ACTION),
    supported_modes=[api.ClimateMode.OFF, api.ClimateMode.HEAT_COOL],
    visual_min_temperature=7.0, visual_max_temperature=30.0,
    visual_target_temperature_step=0.5,
    supported_presets=[api.ClimatePreset.HOME, api.ClimatePreset.AWAY],
    supported_custom_presets=["Party"])


def test_climate_two_point_setpoints_and_presets() -> None:
    entities, _ = build(THERMOSTAT)
    spec = {c.name: c for c in entities.command_specs()}
    assert spec["set_temperature"].params == {"entity": "string", "target_temp_low": "number",
                                              "target_temp_high": "number"}
    assert set(entities.attributes()) == {
        "thermostat", "thermostat_current_temperature", "thermostat_target_temp_low",
        "thermostat_target_temp_high", "thermostat_action", "thermostat_preset_mode"}
    assert entities.attributes()["thermostat"] == {"options": ["off", "heat_cool"]}
    assert run(entities, "set_temperature", target_temp_low=19, target_temp_high=24.5) == [
        ("climate_command", {"key": 21, "device_id": 0, "target_temperature_low": 19,
                             "target_temperature_high": 24.5})]
    assert run(entities, "set_temperature", target_temp_high=26) == [
        ("climate_command", {"key": 21, "device_id": 0, "target_temperature_high": 26})]
    with pytest.raises(ValidationError) as err:
        run(entities, "set_temperature", target_temp_low=5)
    assert err.value.field == "params.target_temp_low"
    with pytest.raises(ValidationError) as err:
        run(entities, "set_temperature")
    assert err.value.field == "params"
    # a standard preset goes as the enum, a custom one by name
    assert run(entities, "set_preset_mode", preset_mode="away") == [
        ("climate_command", {"key": 21, "preset": api.ClimatePreset.AWAY, "device_id": 0})]
    assert run(entities, "set_preset_mode", preset_mode="Party") == [
        ("climate_command", {"key": 21, "custom_preset": "Party", "device_id": 0})]
    with pytest.raises(ValidationError) as err:
        run(entities, "set_preset_mode", preset_mode="boost")
    assert err.value.field == "params.preset_mode"
    assert run(entities, "set_hvac_mode", hvac_mode="heat_cool") == [
        ("climate_command", {"key": 21, "mode": api.ClimateMode.HEAT_COOL, "device_id": 0})]

    entity = entities.by_key[21]
    values = entity.state(api.ClimateState(
        key=21, mode=api.ClimateMode.HEAT_COOL, action=api.ClimateAction.HEATING,
        current_temperature=20.5, target_temperature_low=19.0, target_temperature_high=24.5,
        preset=api.ClimatePreset.NONE, custom_preset="Party"))
    assert values == {"thermostat": "heat_cool", "thermostat_current_temperature": 20.5,
                      "thermostat_target_temp_low": 19.0, "thermostat_target_temp_high": 24.5,
                      "thermostat_action": "heating", "thermostat_preset_mode": "Party"}


def test_lock_open_lock_unlock() -> None:
    entities, _ = build(api.LockInfo(object_id="door", key=31, name="Door", supports_open=True))
    assert run(entities, "open") == [
        ("lock_command", {"key": 31, "command": api.LockCommand.OPEN, "device_id": 0})]
    assert run(entities, "lock") == [
        ("lock_command", {"key": 31, "command": api.LockCommand.LOCK, "device_id": 0})]
    assert run(entities, "unlock") == [
        ("lock_command", {"key": 31, "command": api.LockCommand.UNLOCK, "device_id": 0})]
    plain, _ = build(api.LockInfo(object_id="shed", key=32, name="Shed"))
    assert "open" not in {c.name for c in plain.command_specs()}


FAN = api.FanInfo(object_id="fan", key=41, name="Fan", supports_speed=True,
                  supported_speed_count=3, supports_oscillation=True,
                  supported_preset_modes=["eco"])


def test_fan_turn_off_toggle_and_percentage() -> None:
    entities, _ = build(FAN)
    fan = entities.by_key[41]
    assert run(entities, "turn_off") == [
        ("fan_command", {"key": 41, "state": False, "device_id": 0})]
    # toggle follows the state the device last reported
    assert run(entities, "toggle") == [
        ("fan_command", {"key": 41, "state": True, "device_id": 0})]
    fan.state(api.FanState(key=41, state=True, speed_level=2))
    assert run(entities, "toggle") == [
        ("fan_command", {"key": 41, "state": False, "device_id": 0})]
    # a percentage is the speed level that reaches it (3 speeds: 34 % -> level 2)
    assert run(entities, "set_percentage", percentage=34) == [
        ("fan_command", {"key": 41, "device_id": 0, "speed_level": 2})]
    assert run(entities, "set_percentage", percentage=0) == [
        ("fan_command", {"key": 41, "device_id": 0, "speed_level": 0})]
    assert run(entities, "turn_on", percentage=100, preset_mode="eco") == [
        ("fan_command", {"key": 41, "state": True, "device_id": 0, "speed_level": 3,
                         "preset_mode": "eco"})]
    assert run(entities, "oscillate", oscillating=False) == [
        ("fan_command", {"key": 41, "oscillating": False, "device_id": 0})]
    with pytest.raises(ValidationError) as err:
        run(entities, "set_percentage", percentage=120)
    assert err.value.field == "params.percentage"


LIGHT = api.LightInfo(
    object_id="strip", key=51, name="Strip",
    supported_color_modes=[api.ColorMode.RGB_COLOR_TEMPERATURE, api.ColorMode.RGB,
                           api.ColorMode.COLOR_TEMPERATURE],
    min_mireds=153.0, max_mireds=370.0, effects=["Strobe"])


def test_light_toggle_and_transition() -> None:
    entities, _ = build(LIGHT)
    light = entities.by_key[51]
    assert run(entities, "toggle") == [  # state unknown yet: on
        ("light_command", {"key": 51, "state": True, "transition_length": None,
                           "device_id": 0})]
    light.state(api.LightState(key=51, state=True, brightness=0.5))
    assert run(entities, "toggle") == [
        ("light_command", {"key": 51, "state": False, "transition_length": None,
                           "device_id": 0})]
    assert run(entities, "turn_off", transition=2.5) == [
        ("light_command", {"key": 51, "state": False, "transition_length": 2.5,
                           "device_id": 0})]
    assert run(entities, "turn_on", brightness=51, transition=1) == [
        ("light_command", {"key": 51, "state": True, "transition_length": 1,
                           "device_id": 0, "brightness": 0.2})]
    # RGB picks the simplest colour mode with RGB, at full colour brightness
    assert run(entities, "turn_on", rgb="#ff8000") == [
        ("light_command", {"key": 51, "state": True, "transition_length": None,
                           "device_id": 0, "rgb": (1.0, 128 / 255, 0.0),
                           "color_mode": int(api.ColorMode.RGB), "color_brightness": 1.0})]
    assert run(entities, "turn_on", effect="None") == [
        ("light_command", {"key": 51, "state": True, "transition_length": None,
                           "device_id": 0, "effect": "None"})]
    with pytest.raises(ValidationError) as err:
        run(entities, "turn_on", transition=4000)
    assert err.value.field == "params.transition"


def test_out_of_range_fractions_are_clamped_and_counted() -> None:
    entities, bad = build(LIGHT, COVER)
    light = entities.by_key[51].state(api.LightState(key=51, state=True, brightness=1.7,
                                                     red=-0.5, green=0.5, blue=2.0))
    assert light["strip_brightness"] == 255 and light["strip_rgb"] == [0, 128, 255]
    cover = entities.by_key[11].state(api.CoverState(key=11, position=-0.2, tilt=float("nan")))
    assert cover == {"blind": "closed", "blind_position": 0, "blind_tilt": 0}
    assert bad == ["strip: brightness 1.7 outside 0..1", "strip: colour -0.5 outside 0..1",
                   "strip: colour 2.0 outside 0..1", "blind: position -0.2 outside 0..1",
                   "blind: non-finite tilt"]


def test_two_switches_each_reached_by_entity() -> None:
    entities, _ = build(api.SwitchInfo(object_id="relay_1", key=61, name="Relay 1"),
                        api.SwitchInfo(object_id="relay_2", key=62, name="Relay 2"))
    assert run(entities, "turn_on") == [
        ("switch_command", {"key": 61, "state": True, "device_id": 0})]
    assert run(entities, "turn_on", entity="relay_2") == [
        ("switch_command", {"key": 62, "state": True, "device_id": 0})]


def test_commands_name_the_entities_that_take_them_and_their_values() -> None:
    """What a client (the dashboard) needs to aim a shared command: `choices.entity` lists
    the entities taking it; a string parameter lists its values when every entity taking it
    does. The hub checks both before the entity is asked."""
    entities, _ = build(
        LIGHT, FAN, THERMOSTAT,
        api.SwitchInfo(object_id="relay_1", key=61, name="Relay 1"),
        api.SwitchInfo(object_id="relay_2", key=62, name="Relay 2"),
        api.SelectInfo(object_id="scene", key=71, name="Scene", options=["day", "night"]))
    specs = {c.name: c for c in entities.command_specs()}
    assert specs["turn_on"].choices == {"entity": ("strip", "fan", "relay_1", "relay_2"),
                                        "preset_mode": ("eco",)}  # the fan's, all it takes
    assert specs["toggle"].choices["entity"] == ("strip", "fan", "relay_1", "relay_2")
    assert specs["oscillate"].choices == {"entity": ("fan",)}
    assert specs["set_hvac_mode"].choices == {"entity": ("thermostat",),
                                              "hvac_mode": ("off", "heat_cool")}
    assert specs["set_preset_mode"].choices == {"entity": ("fan", "thermostat"),
                                                "preset_mode": ("eco", "home", "away",
                                                                "Party")}  # the union
    assert specs["select_option"].choices == {"entity": ("scene",),
                                              "option": ("day", "night")}
    # the light's effect is free (it also takes "None"): turn_on lists no effect values
    assert "effect" not in specs["turn_on"].choices
    assert specs["turn_on"].to_json()["choices"]["entity"] == [
        "strip", "fan", "relay_1", "relay_2"]
    assert CommandSpec.from_json(specs["set_hvac_mode"].to_json()) == specs["set_hvac_mode"]
    with pytest.raises(ValidationError) as err:
        specs["turn_on"].validate({"entity": "relay_3"})
    assert err.value.field == "params.entity"
    with pytest.raises(ValidationError) as err:
        specs["set_hvac_mode"].validate({"hvac_mode": "cool"})
    assert err.value.field == "params.hvac_mode"
    assert specs["turn_on"].validate({"entity": "relay_2"}) == {"entity": "relay_2"}
