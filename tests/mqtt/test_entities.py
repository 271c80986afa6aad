"""Each component on its own (no broker): state payloads -> attribute values and commands ->
the exact messages, including optimistic mode and the refusals of bad values."""

from __future__ import annotations

import json

import pytest

from integrations.mqtt.discovery import DiscoveryTopic, parse_config
from integrations.mqtt.entities import (
    CommandError,
    Publish,
    StateError,
    Timer,
    make_entity,
)
from integrations.mqtt.hubdevice import capabilities
from integrations.mqtt.templates import Templates


def entity(component: str, raw: dict, key: str = "e"):
    return make_entity(parse_config(DiscoveryTopic(component, None, key), raw), key,
                       Templates())


def state(e, topic: str, payload: str) -> dict:
    return e.routes()[topic](payload)


def test_lock() -> None:
    e = entity("lock", {"stat_t": "l/state", "cmd_t": "l/set", "pl_lock": "L", "pl_unlk": "U",
                        "stat_locked": "is_locked", "stat_unlocked": "is_open"})
    assert state(e, "l/state", "is_locked") == {"e": "locked"}
    assert state(e, "l/state", "JAMMED") == {"e": "jammed"}
    with pytest.raises(StateError):
        state(e, "l/state", "ajar")
    out = e.command("unlock", {})
    assert out.messages == [Publish("l/set", "U")] and out.optimistic == {}
    assert set(e.accepts()) == {"lock", "unlock"}


def test_lock_open_with_payload_open() -> None:
    """payload_open: the lock can open (unlatch); without it, it cannot."""
    e = entity("lock", {"stat_t": "l/state", "cmd_t": "l/set", "pl_open": "UNLATCH",
                        "cmd_tpl": '{"state": "{{ value }}"}'})
    assert set(e.accepts()) == {"lock", "unlock", "open"}
    out = e.command("open", {})
    assert out.messages == [Publish("l/set", '{"state": "UNLATCH"}')] and out.optimistic == {}
    assert state(e, "l/state", "OPEN") == {"e": "open"}
    assert state(e, "l/state", "OPENING") == {"e": "opening"}
    optimistic = entity("lock", {"cmd_t": "l/set", "pl_open": "O"})
    assert optimistic.command("open", {}).optimistic == {"e": "open"}
    plain = entity("lock", {"cmd_t": "l/set"})
    assert set(plain.accepts()) == {"lock", "unlock"}
    with pytest.raises(CommandError, match="no payload_open"):
        plain.command("open", {})


def test_optimistic_number_and_select() -> None:
    n = entity("number", {"cmd_t": "n/set", "min": 0, "max": 10, "step": 0.5,
                          "cmd_tpl": '{"level": {{ value }}}'})
    out = n.command("set_value", {"value": 2.5})
    assert out.messages == [Publish("n/set", '{"level": 2.5}')] and out.optimistic == {"e": 2.5}
    with pytest.raises(CommandError, match=r"within \[0, 10\]"):
        n.command("set_value", {"value": 11})
    s = entity("select", {"cmd_t": "s/set", "stat_t": "s/state", "ops": ["a", "b"]})
    assert s.command("select_option", {"option": "b"}).messages == [Publish("s/set", "b")]
    with pytest.raises(CommandError):
        s.command("select_option", {"option": "c"})
    with pytest.raises(StateError):
        state(s, "s/state", "c")


def test_default_schema_light() -> None:
    e = entity("light", {
        "cmd_t": "l/set", "stat_t": "l/state", "bri_cmd_t": "l/bri/set", "bri_stat_t": "l/bri",
        "bri_scl": 100, "rgb_cmd_t": "l/rgb/set", "rgb_stat_t": "l/rgb", "fx_cmd_t": "l/fx/set",
        "fx_list": ["rainbow", "none"], "on_cmd_type": "first", "qos": 1, "ret": True})
    assert state(e, "l/bri", "50") == {"e_brightness": 128}
    assert state(e, "l/rgb", "255,128,0") == {"e_rgb": [255, 128, 0]}
    out = e.command("turn_on", {"brightness": 255, "rgb": "#00ff10", "effect": "rainbow"})
    assert out.messages == [Publish("l/set", "ON", 1, True), Publish("l/bri/set", "100", 1, True),
                            Publish("l/rgb/set", "0,255,16", 1, True),
                            Publish("l/fx/set", "rainbow", 1, True)]
    with pytest.raises(CommandError, match="has no color_temp"):
        e.command("turn_on", {"color_temp": 300})
    with pytest.raises(CommandError, match="unknown effect"):
        e.command("turn_on", {"effect": "disco"})
    assert "color_temp" not in e.accepts()["turn_on"]


def test_default_schema_light_colour_templates_and_optimistic() -> None:
    """hs/xy/rgb command templates get `value` ("h,s", "x,y", "r,g,b") and the convention's
    variables (hue/sat, x/y, red/green/blue); without a state topic every part is set at
    once."""
    e = entity("light", {
        "cmd_t": "l/set", "hs_cmd_t": "l/hs/set", "xy_cmd_t": "l/xy/set", "rgb_cmd_t": "l/rgb",
        "hs_cmd_tpl": '{"h": {{ hue }}, "s": {{ sat }}, "v": "{{ value }}"}',
        "xy_cmd_tpl": "{{ x }}|{{ y }}",
        "rgb_cmd_tpl": "{{ '%02x%02x%02x' % (red, green, blue) }}"})
    out = e.command("turn_on", {"hue": 10, "saturation": 20})
    assert out.messages == [Publish("l/hs/set", '{"h": 10, "s": 20, "v": "10,20"}'),
                            Publish("l/set", "ON")]
    assert out.optimistic == {"e": True, "e_hs": [10, 20]}
    out = e.command("turn_on", {"x": 0.31, "y": 0.32})
    assert out.messages == [Publish("l/xy/set", "0.31|0.32"), Publish("l/set", "ON")]
    assert out.optimistic == {"e": True, "e_xy": [0.31, 0.32]}
    out = e.command("turn_on", {"rgb": "#ff8000"})
    assert out.messages == [Publish("l/rgb", "ff8000"), Publish("l/set", "ON")]
    assert out.optimistic == {"e": True, "e_rgb": [255, 128, 0]}
    plain = entity("light", {"cmd_t": "p/set", "hs_cmd_t": "p/hs", "stat_t": "p/state",
                             "hs_stat_t": "p/hs/state"})
    out = plain.command("turn_on", {"hue": 10.5, "saturation": 20})
    assert out.messages == [Publish("p/hs", "10.5,20"), Publish("p/set", "ON")]
    assert out.optimistic == {}  # it reports its own state


def test_json_light_colors_and_optimistic() -> None:
    e = entity("light", {"schema": "json", "cmd_t": "j/set", "brightness": True,
                         "sup_clrm": ["hs", "xy", "rgb"]})
    out = e.command("turn_on", {"hue": 120, "saturation": 50})
    assert json.loads(out.messages[0].payload) == {"state": "ON", "color": {"h": 120, "s": 50}}
    assert out.optimistic == {"e": True, "e_hs": [120, 50]}  # no state topic: optimistic
    out = e.command("turn_on", {"x": 0.3, "y": 0.4, "brightness": 10})
    assert json.loads(out.messages[0].payload) == {"state": "ON", "brightness": 10,
                                                   "color": {"x": 0.3, "y": 0.4}}
    assert out.optimistic == {"e": True, "e_brightness": 10, "e_xy": [0.3, 0.4]}
    with pytest.raises(CommandError, match="go together"):
        e.command("turn_on", {"hue": 1})


def test_fan_and_climate_commands() -> None:
    f = entity("fan", {"cmd_t": "f/set", "pct_cmd_t": "f/pct", "spd_rng_min": 1,
                       "spd_rng_max": 3, "pr_mode_cmd_t": "f/preset", "pr_modes": ["auto"]})
    assert f.command("set_percentage", {"percentage": 50}).messages == [Publish("f/pct", "2")]
    assert f.command("turn_on", {"preset_mode": "auto"}).messages == [
        Publish("f/set", "ON"), Publish("f/preset", "auto")]
    c = entity("climate", {"mode_cmd_t": "c/mode", "temp_cmd_t": "c/temp", "min_temp": 5,
                           "max_temp": 30, "modes": ["off", "heat"]})
    assert c.command("set_temperature", {"temperature": 20}).messages == [
        Publish("c/temp", "20")]
    with pytest.raises(CommandError):
        c.command("set_hvac_mode", {"hvac_mode": "cool"})
    assert set(c.accepts()) == {"set_hvac_mode", "set_temperature"}


def test_command_choices_name_entities_and_announced_values() -> None:
    """The device's commands say which entities take them (in announcement order) and, for
    a string parameter, the values every entity taking it announced (their union); one
    entity that takes any value leaves the parameter free. A parameter is required only when
    every entity taking the command needs it."""
    def light(key: str, effects: list[str] | None) -> object:
        raw = {"schema": "json", "cmd_t": f"{key}/set", "stat_t": key, "effect": True,
               **({"effect_list": effects} if effects is not None else {})}
        return entity("light", raw, key)

    fan = entity("fan", {"cmd_t": "f/set", "pr_mode_cmd_t": "f/p", "pr_modes": ["eco", "max"]},
                 "fan")
    select = entity("select", {"cmd_t": "s/set", "ops": ["a", "b"]}, "mode")
    single = entity("climate", {"mode_cmd_t": "c/mode", "temp_cmd_t": "c/t",
                                "modes": ["off", "heat"], "pr_mode_cmd_t": "c/p",
                                "pr_modes": ["away"]}, "room")
    ranged = entity("climate", {"mode_cmd_t": "d/mode", "temp_lo_cmd_t": "d/lo",
                                "temp_hi_cmd_t": "d/hi"}, "hall")
    specs = {c.name: c for c in capabilities(
        [light("one", ["blink"]), light("two", ["pulse", "blink"]), fan, select, single,
         ranged])["commands"]}
    assert specs["turn_on"].choices == {"entity": ("one", "two", "fan"),
                                        "effect": ("blink", "pulse"),
                                        "preset_mode": ("eco", "max")}
    assert specs["set_preset_mode"].choices == {"entity": ("fan", "room"),
                                                "preset_mode": ("eco", "max", "away")}
    assert specs["select_option"].choices == {"entity": ("mode",), "option": ("a", "b")}
    assert specs["set_hvac_mode"].choices["hvac_mode"] == (
        "off", "heat", "auto", "cool", "dry", "fan_only")  # hall announced no modes: all six
    assert specs["set_temperature"].required == ()  # hall takes low/high alone
    # a light without effects does not take one (the other's list stands); a fan without
    # presets takes any preset_mode in turn_on as far as the hub knows (it refuses them)
    plain = entity("fan", {"cmd_t": "g/set"}, "plain")
    specs = {c.name: c for c in capabilities([light("one", ["blink"]), light("bare", None),
                                              fan, plain])["commands"]}
    assert specs["turn_on"].choices == {"entity": ("one", "bare", "fan", "plain"),
                                        "effect": ("blink",)}
    assert specs["turn_on"].to_json()["choices"] == {"entity": ["one", "bare", "fan", "plain"],
                                                     "effect": ["blink"]}


def test_climate_range_setpoints_and_humidity() -> None:
    """temperature_low/high (a heating and a cooling setpoint) and current_humidity, as a
    Zigbee2MQTT room thermostat announces them (one JSON state topic for all)."""
    c = entity("climate", {
        "mode_cmd_t": "t/set/mode", "modes": ["off", "heat", "cool"], "min_temp": "5",
        "max_temp": "30", "temp_lo_cmd_t": "t/set/heat", "temp_hi_cmd_t": "t/set/cool",
        "temp_lo_stat_t": "t", "temp_lo_stat_tpl": "{{ value_json.heat }}",
        "temp_hi_stat_t": "t", "temp_hi_stat_tpl": "{{ value_json.cool }}",
        "curr_hum_t": "t", "curr_hum_tpl": "{{ value_json.humidity }}",
        "temp_hi_cmd_tpl": '{"cool": {{ value }}}'})
    assert state(c, "t", json.dumps({"heat": 20.5, "cool": 26, "humidity": 48})) == {
        "e_target_temperature_low": 20.5, "e_target_temperature_high": 26,
        "e_current_humidity": 48}
    attrs = c.attributes()
    assert attrs["e_current_humidity"] == {"unit": "%", "device_class": "humidity"}
    assert attrs["e_target_temperature_low"]["min"] == 5
    assert "e_target_temperature" not in attrs  # no single setpoint announced
    assert c.accepts()["set_temperature"] == {"target_temp_low": "number",
                                              "target_temp_high": "number"}
    assert c.required["set_temperature"] == ()  # either end alone will do
    out = c.command("set_temperature", {"target_temp_low": 19, "target_temp_high": 24.5})
    assert out.messages == [Publish("t/set/heat", "19"), Publish("t/set/cool", '{"cool": 24.5}')]
    assert out.optimistic == {}  # both report their state
    with pytest.raises(CommandError, match="no temperature_command_topic"):
        c.command("set_temperature", {"temperature": 20})
    with pytest.raises(CommandError, match=r"within \[5, 30\]"):
        c.command("set_temperature", {"target_temp_high": 31})
    with pytest.raises(CommandError, match="give temperature"):
        c.command("set_temperature", {})
    single = entity("climate", {"temp_cmd_t": "s/temp"})
    assert single.required["set_temperature"] == ("temperature",)
    assert single.command("set_temperature", {"temperature": 21}).optimistic == {
        "e_target_temperature": 21}


def test_expire_after_and_off_delay_timers() -> None:
    """Which timers a state message starts or stops (the bridge runs them on the hub's
    clock: tests/mqtt/test_timers.py)."""
    s = entity("sensor", {"stat_t": "s", "unit_of_meas": "W", "exp_aft": 60})
    values = state(s, "s", "5")
    assert s.timers(values) == {"expire": Timer(60, {"e": None})}
    assert entity("sensor", {"stat_t": "s"}).timers({"e": "x"}) == {}
    b = entity("binary_sensor", {"stat_t": "b", "off_dly": 30, "exp_aft": 600})
    assert b.timers(state(b, "b", "ON")) == {"expire": Timer(600, {"e": None}),
                                             "off": Timer(30, {"e": False})}
    assert b.timers(state(b, "b", "OFF")) == {"expire": Timer(600, {"e": None}), "off": None}
    assert b.timers({"other": 1}) == {}  # a message that says nothing of it changes nothing


def test_binary_sensor_and_cover_tilt() -> None:
    b = entity("binary_sensor", {"stat_t": "b", "pl_on": "1", "pl_off": "0"})
    assert state(b, "b", "1") == {"e": True} and state(b, "b", "0") == {"e": False}
    with pytest.raises(StateError):
        state(b, "b", "2")
    cv = entity("cover", {"cmd_t": "c/set", "tilt_cmd_t": "c/tilt", "tilt_status_t": "c/ts",
                          "tilt_min": 0, "tilt_max": 180})
    assert state(cv, "c/ts", "90") == {"e_tilt": 50}
    assert cv.command("set_tilt", {"tilt": 100}).messages == [Publish("c/tilt", "180")]
    assert "set_position" not in cv.accepts()


@pytest.mark.parametrize(("mode", "seen", "latest", "available"), [
    ("all", {"a": True, "b": True}, True, True),
    ("all", {"a": True, "b": False}, True, False),
    ("all", {"a": True, "b": None}, True, False),   # not heard yet: not available
    ("any", {"a": False, "b": True}, False, True),
    ("any", {"a": False, "b": None}, False, False),
    ("latest", {"a": True, "b": False}, False, False),
    ("latest", {"a": False, "b": True}, True, True),
    ("latest", {}, None, True),  # no availability topics: available while connected
])
def test_availability_modes(mode: str, seen: dict, latest, available: bool) -> None:
    from integrations.mqtt.bridge import _Availability

    assert _Availability(mode, dict(seen), latest).available is available
