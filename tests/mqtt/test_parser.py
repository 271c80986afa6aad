"""The discovery parser and the template layer on their own: the convention's abbreviations,
bad input refused with the key named, and hypothesis throwing arbitrary input at both."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS
from integrations.mqtt.discovery import (
    DiscoveryError,
    DiscoveryTopic,
    decode,
    parse_config,
    parse_device_message,
    parse_topic,
)
from integrations.mqtt.entities import StateError, make_entity
from integrations.mqtt.templates import TemplateError, Templates

TOPIC = DiscoveryTopic("switch", "node", "relay")


def test_topics() -> None:
    assert parse_topic("homeassistant", "homeassistant/switch/relay/config") == \
        DiscoveryTopic("switch", None, "relay")
    assert parse_topic("homeassistant", "homeassistant/light/0x01/light/config") == \
        DiscoveryTopic("light", "0x01", "light")
    assert parse_topic("homeassistant", "zigbee2mqtt/bulb") is None
    with pytest.raises(DiscoveryError, match="topic"):
        parse_topic("homeassistant", "homeassistant/a/b/c/d/config")
    with pytest.raises(DiscoveryError, match="object_id"):
        parse_topic("homeassistant", "homeassistant/switch/bad id/config")


def test_abbreviations_and_base_topic_expand() -> None:
    raw = {"~": "tasmota/plug", "stat_t": "~/STATE", "cmd_t": "cmnd/~", "pl_on": "ON",
           "avty": [{"t": "~/LWT", "pl_avail": "Online", "pl_not_avail": "Offline"}],
           "avty_mode": "all", "uniq_id": "p1",
           "dev": {"ids": ["p1"], "cns": [["mac", "AA-BB-CC-DD-EE-FF"]], "mf": "Tasmota",
                   "mdl": "Sonoff", "sw": "13.0", "sa": "Kitchen", "mdl_id": "S26"}}
    config = parse_config(TOPIC, raw)
    assert config.get("state_topic") == "tasmota/plug/STATE"
    assert config.get("command_topic") == "cmnd/tasmota/plug"
    assert config.availability[0].topic == "tasmota/plug/LWT"
    assert config.availability[0].payload_available == "Online"
    assert config.availability_mode == "all"
    assert config.device is not None and config.device.mac == "aa:bb:cc:dd:ee:ff"
    assert (config.device.manufacturer, config.device.model, config.device.sw_version,
            config.device.suggested_area, config.device.model_id) == (
        "Tasmota", "Sonoff", "13.0", "Kitchen", "S26")


def test_table_is_the_conventions() -> None:
    # spot checks of the published table, both directions unique
    for short, full in {"stat_t": "state_topic", "cmd_t": "command_topic",
                        "avty_t": "availability_topic", "json_attr_t": "json_attributes_topic",
                        "pos_t": "position_topic", "set_pos_t": "set_position_topic",
                        "temp_cmd_t": "temperature_command_topic", "fx_list": "effect_list",
                        "pl_prs": "payload_press", "sup_clrm": "supported_color_modes",
                        "cmps": "components", "o": "origin", "p": "platform"}.items():
        assert ABBREVIATIONS[short] == full
    assert DEVICE_ABBREVIATIONS["cns"] == "connections" and DEVICE_ABBREVIATIONS["ids"] == \
        "identifiers"
    assert len(ABBREVIATIONS) > 250
    assert len(set(ABBREVIATIONS.values())) == len(ABBREVIATIONS)


@pytest.mark.parametrize(("payload", "key"), [
    (b"{not json", "payload"),
    (b"[1, 2]", "payload"),
    (b"x" * (64 * 1024 + 1), "payload"),
    (json.dumps({"stat_t": 5}).encode(), "state_topic"),
    (json.dumps({"cmd_t": "a/+/b"}).encode(), "command_topic"),
    (json.dumps({"qos": 3}).encode(), "qos"),
    (json.dumps({"avty_mode": "most"}).encode(), "availability_mode"),
    (json.dumps({"avty": [{"pl_avail": "x"}]}).encode(), "availability[0]"),
    (json.dumps({"dev": {"ids": {"a": 1}}}).encode(), "device.identifiers"),
    (json.dumps({"min": "low"}).encode(), "min"),
    (json.dumps({"ops": "a,b"}).encode(), "options"),
    (json.dumps({"exp_aft": -5}).encode(), "expire_after"),
    (json.dumps({"off_dly": "soon"}).encode(), "off_delay"),
])
def test_bad_configs_name_the_key(payload: bytes, key: str) -> None:
    with pytest.raises(DiscoveryError) as info:
        parse_config(TOPIC, decode(payload))  # type: ignore[arg-type]
    assert info.value.key == key


def test_unknown_component_and_keys() -> None:
    with pytest.raises(DiscoveryError, match="'vacuum' is not supported"):
        parse_config(DiscoveryTopic("vacuum", None, "v"), {})
    with pytest.raises(DiscoveryError, match="'toaster' is unknown"):
        parse_config(DiscoveryTopic("toaster", None, "v"), {})
    config = parse_config(TOPIC, {"stat_t": "a", "frobnicate": 1, "colour": "red"})
    assert config.ignored_keys == ("colour", "frobnicate")  # kept out, counted
    assert decode(b"") is None  # an empty payload removes the entity


def test_device_based_discovery() -> None:
    raw = {"dev": {"ids": "dev1", "name": "Multi"}, "o": {"name": "x"}, "stat_t": "dev1/state",
           "cmps": {"t": {"p": "sensor", "val_tpl": "{{ value_json.t }}", "unit_of_meas": "°C"},
                    "r": {"p": "switch", "cmd_t": "dev1/r/set"}}}
    configs = parse_device_message("dev1", raw)
    assert [(c.component, c.discovery.key) for c in configs] == [
        ("sensor", "sensor/dev1/t"), ("switch", "switch/dev1/r")]
    assert configs[0].get("state_topic") == "dev1/state"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=20)
keys = st.sampled_from(sorted(ABBREVIATIONS) + sorted(ABBREVIATIONS.values()) + ["~", "x"])


@settings(max_examples=300, deadline=None)
@given(component=st.sampled_from(["switch", "light", "sensor", "binary_sensor", "cover",
                                  "lock", "button", "number", "select", "fan", "climate",
                                  "device_automation", "event", "vacuum", "zz"]),
       raw=st.dictionaries(keys, json_values, max_size=12))
def test_parser_never_crashes(component: str, raw: dict) -> None:
    """Any JSON object: a config or a DiscoveryError, and a config always makes an entity
    whose state handlers refuse bad state with StateError/TemplateError only."""
    try:
        config = parse_config(DiscoveryTopic(component, None, "obj"), raw)
    except DiscoveryError as exc:
        assert exc.key is not None
        return
    entity = make_entity(config, "k", Templates())
    for handle in entity.routes().values():
        for payload in ("ON", "", "{}", "12", "garbage", '{"state": "ON", "brightness": 3}'):
            try:
                values = handle(payload)
            except (StateError, TemplateError, ValueError):
                continue
            assert isinstance(values, dict)
            for timer in entity.timers(values).values():
                assert timer is None or (timer.seconds > 0 and timer.values)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=200))
def test_decode_never_crashes(raw: bytes) -> None:
    try:
        decoded = decode(raw)
    except DiscoveryError:
        return
    assert decoded is None or isinstance(decoded, dict)


template_parts = st.sampled_from([
    "{{ value }}", "{{ value_json.a }}", "{% for i in range(50) %}", "{% endfor %}",
    "{% if value_json %}", "{% endif %}", "{{ 'x' * 100 }}", "{{ value|int(0) * 3 }}",
    "{{ (value_json or {}).get('a') }}", "{{ value.__class__ }}", "{{ 9 ** 9 }}",
    "{% set x = [1,2,3] %}", "{{ x|join(',') }}", "{{ value|regex_findall('[0-9]+') }}",
    "{{ '%5d' % 3 }}", "{{ lipsum() }}", "{{ cycler }}", "text", "{{", "}}", "{%",
])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(template_parts, max_size=8), value=st.text(max_size=40))
def test_templates_never_escape_their_bounds(parts: list[str], value: str) -> None:
    """Any mix of template pieces: rendered text within the size limit, or TemplateError."""
    templates = Templates()
    try:
        out = templates.render_value("".join(parts), value)
    except TemplateError as exc:
        assert str(exc)
        return
    assert isinstance(out, str) and len(out) <= 64 * 1024


@pytest.mark.parametrize(("source", "reason"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
     "loop iterations"),
    ("{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}",
     "nested"),
    ("{{ 'x' * 100000000 }}", "too large"),
    ("{{ 2 ** 100000 }}", "exponent"),
    ("{{ '{:>999999999}'.format(1) }}", "width"),
    ("{{ 'a'|center(999999999) }}", "width"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ value|regex_findall('(a+)+$') }}", "repeated groups"),
    ("{{ 1/0 }}", "ZeroDivisionError"),
    ("{% include 'x' %}", "include"),
    ("x" * 5000, "longer than"),
])
def test_hostile_templates_refused_with_reason(source: str, reason: str) -> None:
    with pytest.raises(TemplateError, match=reason):
        Templates().render_value(source, "aaaa")


@settings(max_examples=300, deadline=None)
@given(data=json_values, path=st.lists(st.sampled_from(["a", "b", "state", "x"]),
                                       min_size=0, max_size=3),
       style=st.sampled_from(["dot", "dq", "sq"]))
def test_fast_lookup_renders_as_jinja2_does(data: object, path: list[str], style: str) -> None:
    """`{{ value_json.a["b"] }}` is looked up without Jinja2: same text, same refusals."""
    step = {"dot": ".{}", "dq": '["{}"]', "sq": "['{}']"}[style]
    source = "{{ value" + ("_json" + "".join(step.format(k) for k in path) if path else "") \
        + " }}"
    payload = json.dumps(data)
    templates = Templates()
    try:
        fast: str | None = templates.render_value(source, payload)
    except TemplateError:
        fast = None
    try:
        slow: str | None = templates.render(source, value=payload, value_json=data)
    except TemplateError:
        slow = None
    assert fast == slow
