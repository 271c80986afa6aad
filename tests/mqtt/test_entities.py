"""Each component on its own (no broker): state payloads -> attribute values and commands ->
the exact messages, including optimistic mode and the refusals of bad values."""

from __future__ import annotations

import json

import pytest

from integrations.mqtt.discovery import DiscoveryTopic, parse_config
from integrations.mqtt.entities import CommandError, Publish, StateError, make_entity
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


def test_json_light_colors_and_optimistic() -> None:
    e = entity("light", {"schema": "json", "cmd_t": "j/set", "brightness": True,
                         "sup_clrm": ["hs", "xy", "rgb"]})
    out = e.command("turn_on", {"hue": 120, "saturation": 50})
    assert json.loads(out.messages[0].payload) == {"state": "ON", "color": {"h": 120, "s": 50}}
    assert out.optimistic == {"e": True}  # no state topic: optimistic
    out = e.command("turn_on", {"x": 0.3, "y": 0.4, "brightness": 10})
    assert json.loads(out.messages[0].payload) == {"state": "ON", "brightness": 10,
                                                   "color": {"x": 0.3, "y": 0.4}}
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
