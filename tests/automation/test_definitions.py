"""Bad definitions are rejected with the automation, the field path and (YAML) file:line;
a broken YAML automation is visible with its error while the rest run."""

from __future__ import annotations

import textwrap

import pytest

from hub.automation.cron import next_cron, parse_cron
from hub.automation.model import DefinitionError, parse, parse_duration
from tests.automation.conftest import command, traces

TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}
BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}


def problems(raw) -> dict[str, str]:
    with pytest.raises(DefinitionError) as err:
        parse(raw)
    from hub.automation.model import format_path

    return {format_path(p.path): p.message for p in err.value.problems}


def test_shape_errors_name_the_field_path():
    got = problems({"id": "x", "triggers": [{"type": "state", "device": "d", "attribute": "a",
                                              "for": "soon"}],
                    "actions": [{"type": "delay"}, {"type": "teleport"}], "mode": "often"})
    assert "expected a duration" in got["triggers[0].for"]
    assert got["actions[0]"] == "missing required key 'seconds'"
    assert "unknown action type 'teleport'" in got["actions[1].type"]
    assert "expected one of single, restart, queued, parallel" in got["mode"]


def test_wrong_types():
    got = problems({"id": "x", "triggers": [{"type": "numeric", "device": "d",
                                              "attribute": "a", "above": "warm"}],
                    "actions": [TOGGLE], "max": True, "enabled": "yes"})
    assert got["triggers[0].above"] == "expected a number, got str 'warm'"
    assert "expected an integer" in got["max"]
    assert "expected a boolean" in got["enabled"]
    assert "at least one trigger" in problems({"id": "x", "actions": [TOGGLE]})["triggers"]


def test_durations_and_cron_parse():
    assert parse_duration("01:30") == 90
    assert parse_duration({"minutes": 2, "seconds": 3}) == 123
    with pytest.raises(ValueError):
        parse_duration(-1)
    spec = parse_cron("30 7 * * mon-fri")
    from zoneinfo import ZoneInfo

    # 2026-03-14 is a Saturday: next is Monday 16th 07:30 UTC
    after = 1773446400.0  # 2026-03-14 00:00 UTC
    assert next_cron(spec, after, ZoneInfo("UTC")) == after + 2 * 86400 + 7.5 * 3600
    with pytest.raises(ValueError, match="5 fields"):
        parse_cron("* * *")
    with pytest.raises(ValueError, match="minute"):
        parse_cron("61 * * * *")


async def test_api_style_errors_for_unknown_device_attribute_and_command(make_hub):
    async with make_hub([]) as hub:
        engine = hub.automations
        from hub.errors import ValidationError

        cases = [
            ({"type": "state", "device": "virtual.nope", "attribute": "on"}, TOGGLE,
             "triggers[0].device", "unknown device 'virtual.nope'"),
            ({"type": "state", "device": "virtual.lamp", "attribute": "colour"}, TOGGLE,
             "triggers[0].attribute", "unknown attribute 'colour'"),
            (BUTTON, {"type": "command", "device": "virtual.lamp", "command": "explode"},
             "actions[0].command", "does not accept 'explode'"),
            (BUTTON, {"type": "command", "device": "virtual.temp", "command": "set",
                      "params": {"value": "hot"}},
             "actions[0].params.value", "expected a number"),
        ]
        for trigger, action, field, message in cases:
            with pytest.raises(ValidationError) as err:
                await engine.create({"id": "bad", "triggers": [trigger], "actions": [action]})
            assert err.value.field == field
            assert "automation 'bad'" in str(err.value) and message in str(err.value)
        assert len(engine) == 0  # nothing stored half-way


async def test_loop_of_automations_enabling_each_other(make_hub):
    a = {"id": "a", "triggers": [BUTTON], "actions": [{"type": "enable", "automation": "b"}]}
    b = {"id": "b", "triggers": [BUTTON], "actions": [{"type": "enable", "automation": "a"}]}
    ok = {"id": "ok", "triggers": [BUTTON], "actions": [TOGGLE]}
    async with make_hub([a, b, ok]) as hub:
        for aid in ("a", "b"):
            entry = hub.automations.get(aid)
            assert not entry.valid
            assert "loop of automations enabling each other" in entry.error_text()
        assert "a -> b -> a" in hub.automations.get("a").error_text()
        await command(hub, "virtual.button", "press")
        assert traces(hub, "ok")[0]["state"] == "done"  # the rest run
        assert traces(hub, "a") == []
        from hub.errors import ValidationError

        c = {"id": "c", "triggers": [BUTTON], "actions": [{"type": "enable", "automation": "c"}]}
        with pytest.raises(ValidationError, match="loop of automations enabling each other"):
            await hub.automations.create(c)


async def test_yaml_errors_carry_file_line_and_the_rest_run(make_hub, tmp_path):
    autos = [
        {"id": "broken", "triggers": [{"type": "state", "device": "virtual.lamp",
                                        "attribute": "on", "for": "later"}],
         "actions": [TOGGLE]},
        {"id": "unknown_dev", "triggers": [BUTTON],
         "actions": [{"type": "command", "device": "virtual.ghost", "command": "turn_on"}]},
        {"id": "fine", "triggers": [BUTTON], "actions": [TOGGLE]},
    ]
    async with make_hub(autos) as hub:
        config = str(tmp_path / "config.yaml")
        lines = (tmp_path / "config.yaml").read_text().splitlines()
        broken = hub.automations.get("broken")
        assert not broken.valid
        err = broken.errors()[0]
        assert err["field"] == "triggers[0].for"
        file, line, _col = err["where"].rsplit(":", 2)
        assert file == config and "for: later" in lines[int(line) - 1]
        text = broken.error_text()
        assert text.startswith(f"{config}:{line}:") and "automation 'broken'" in text
        dev = hub.automations.get("unknown_dev")
        assert dev.errors()[0]["field"] == "actions[0].device"
        assert "virtual.ghost" in lines[int(dev.errors()[0]["where"].split(":")[-2]) - 1]
        await command(hub, "virtual.button", "press")
        assert traces(hub, "fine")[0]["state"] == "done"


async def test_automations_yaml_beside_the_config(make_hub, tmp_path):
    (tmp_path / "automations.yaml").write_text(textwrap.dedent("""\
        - id: from_file
          triggers:
            - type: event
              device: virtual.button
              event: press
          actions:
            - type: command
              device: virtual.lamp
              command: turn_on
        - id: bad_file
          triggers:
            - type: event
              device: virtual.button
              event: hold
          actions: []
        """))
    async with make_hub([]) as hub:
        entry = hub.automations.get("from_file")
        assert entry.source == "yaml" and entry.where.endswith("automations.yaml:1:3")
        bad = hub.automations.get("bad_file")
        msgs = {e["field"]: (e["message"], e["where"]) for e in bad.errors()}
        assert "at least one action" in msgs["actions"][0]
        assert msgs["actions"][1].endswith("automations.yaml:15:12")
        await command(hub, "virtual.button", "press")
        assert hub.states.value("virtual.lamp", "on") is True


async def test_automations_yaml_syntax_error_is_reported_not_fatal(make_hub, tmp_path):
    (tmp_path / "automations.yaml").write_text("- id: x\n  triggers: [\n")
    async with make_hub([{"id": "fine", "triggers": [BUTTON], "actions": [TOGGLE]}]) as hub:
        assert len(hub.automations.load_errors) == 1
        assert "automations.yaml:" in hub.automations.load_errors[0]
        assert "YAML syntax" in hub.automations.load_errors[0]
        await command(hub, "virtual.button", "press")
        assert traces(hub, "fine")[0]["state"] == "done"


async def test_duplicate_ids_in_yaml(make_hub):
    one = {"id": "same", "triggers": [BUTTON], "actions": [TOGGLE]}
    async with make_hub([one, dict(one)]) as hub:
        entries = list(hub.automations)
        assert len(entries) == 2
        dup = [e for e in entries if not e.valid]
        assert len(dup) == 1 and "duplicate id" in dup[0].error_text()


def test_each_action_kind_parses_to_its_own_frozen_type_with_a_step():
    import dataclasses
    import typing

    from hub.automation import model
    from hub.automation.steps import STEPS

    raw = {"id": "kinds", "triggers": [BUTTON], "actions": [
        TOGGLE,
        {"type": "scene", "entries": [{"device": "virtual.lamp", "state": {"on": True}}]},
        {"type": "delay", "seconds": 5},
        {"type": "wait", "triggers": [BUTTON], "timeout": 9, "continue_on_timeout": False},
        {"type": "if", "conditions": [{"type": "weekday", "weekdays": ["mon"]}],
         "then": [TOGGLE], "else": [TOGGLE]},
        {"type": "choose", "options": [{"conditions": [], "actions": [TOGGLE]}],
         "default": [TOGGLE]},
        {"type": "event", "event": "rang", "data": {"door": 1}},
        {"type": "enable", "automation": "a"},
        {"type": "disable", "automation": "b"},
        {"type": "notify", "message": "hi", "severity": "warning"},
    ]}
    actions = parse(raw).actions
    kinds = [type(a) for a in actions]
    assert kinds == [model.CommandAction, model.SceneAction, model.DelayAction,
                     model.WaitAction, model.IfAction, model.ChooseAction, model.EventAction,
                     model.EnableAction, model.DisableAction, model.NotifyAction]
    assert [a.type for a in actions] == [r["type"] for r in raw["actions"]]
    assert set(typing.get_args(model.Action)) == set(kinds) == set(STEPS)  # one step per kind
    wait = actions[3]
    assert (wait.timeout, wait.continue_on_timeout, len(wait.triggers)) == (9.0, False, 1)
    assert actions[4].then[0].path == ("actions", 4, "then", 0)
    assert model.sub_sequences(actions[5]) == (actions[5].choices[0].actions, actions[5].default)
    with pytest.raises(dataclasses.FrozenInstanceError):
        actions[2].seconds = 1  # type: ignore[misc]
