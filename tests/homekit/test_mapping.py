"""HomeKit services -> hub attributes/commands (integrations/homekit_controller/mapping.py)
for the services the namespace tests do not run: lock, window covering, sensors."""

from __future__ import annotations

import pytest

from integrations.homekit_controller.mapping import MalformedValue, build


def _char(iid: int, short: str, fmt: str, perms: list[str], **meta: object) -> dict:
    return {"iid": iid, "type": f"{int(short, 16):08X}-0000-1000-8000-0026BB765291",
            "format": fmt, "perms": perms, **meta}


def _service(iid: int, short: str, *chars: dict) -> dict:
    return {"iid": iid, "type": f"{int(short, 16):08X}-0000-1000-8000-0026BB765291",
            "characteristics": list(chars)}


ACCESSORIES = [{"aid": 1, "services": [
    _service(1, "3E", {"iid": 2, "type": "23", "format": "string", "value": "Door"},
             {"iid": 3, "type": "20", "format": "string", "value": "Acme"}),
    _service(10, "45", _char(11, "1D", "uint8", ["pr", "ev"], minValue=0, maxValue=3),
             _char(12, "1E", "uint8", ["pr", "pw", "ev"], minValue=0, maxValue=1)),
    _service(20, "8C", _char(21, "6D", "uint8", ["pr", "ev"], minValue=0, maxValue=100),
             _char(22, "7C", "uint8", ["pr", "pw", "ev"], minValue=0, maxValue=100),
             _char(23, "72", "uint8", ["pr", "ev"], minValue=0, maxValue=2)),
    _service(30, "80", _char(31, "6A", "uint8", ["pr", "ev"], minValue=0, maxValue=1)),
    _service(40, "85", _char(41, "22", "bool", ["pr", "ev"])),
    _service(50, "86", _char(51, "71", "uint8", ["pr", "ev"], minValue=0, maxValue=1)),
    _service(60, "84", _char(61, "6B", "float", ["pr", "ev"], minValue=0.0001,
                              maxValue=100000)),
    _service(70, "82", _char(71, "10", "float", ["pr", "ev"], minValue=0, maxValue=100)),
    _service(80, "8A", _char(81, "11", "float", ["pr", "ev"], minValue=-270, maxValue=100)),
    _service(90, "8A", _char(91, "11", "float", ["pr", "ev"], minValue=-270, maxValue=100)),
]}]


def test_lock_covering_and_sensors_map_to_attributes_and_commands() -> None:
    m = build(ACCESSORIES)
    assert (m.name, m.manufacturer) == ("Door", "Acme")
    assert m.attributes == ("lock_state", "lock_target", "position", "target_position",
                            "moving", "open", "motion", "occupancy", "illuminance",
                            "humidity", "temperature", "temperature_2")
    assert {c[0] for c in m.commands()} == {"lock", "unlock", "set_position"}
    assert m.points[(1, 11)].check(1) == "locked"
    assert m.points[(1, 23)].check(2) == "stopped"
    assert m.points[(1, 31)].check(1) is True  # contact not detected: open
    assert m.points[(1, 51)].check(0) is False
    writes = m.writes("lock", {}, lambda a: None)
    assert [(p.iid, v) for p, v, _ in writes] == [(12, 1)]
    writes = m.writes("set_position", {"position": 30}, lambda a: None)
    assert [(p.iid, v) for p, v, _ in writes] == [(22, 30)]


@pytest.mark.parametrize(("key", "value"), [
    ((1, 11), 7), ((1, 11), "locked"), ((1, 21), 101), ((1, 21), 5.5), ((1, 41), "yes"),
    ((1, 61), float("nan")), ((1, 61), 0), ((1, 31), 2), ((1, 81), None)])
def test_malformed_values_from_an_accessory_are_refused(key: tuple[int, int],
                                                        value: object) -> None:
    with pytest.raises(MalformedValue):
        build(ACCESSORIES).points[key].check(value)


def test_out_of_range_command_names_the_parameter() -> None:
    m = build(ACCESSORIES)
    with pytest.raises(MalformedValue, match=r"^params.position: .*above 100"):
        m.writes("set_position", {"position": 150}, lambda a: None)
    with pytest.raises(MalformedValue, match="cannot be written"):
        m.by_name["position"].encode(10)
