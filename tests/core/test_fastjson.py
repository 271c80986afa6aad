"""hub.fastjson: orjson on the hot paths, the stdlib for what orjson refuses."""

from __future__ import annotations

import json
import math

import pytest

from hub.fastjson import dumpb, dumps, loads


def test_compact_utf8_and_equal_to_the_stdlib() -> None:
    obj = {"type": "event", "event": {"device_id": "virtual.lampe", "name": "Küche ☃",
                                      "on": True, "ts": 1764136000.123456, "none": None,
                                      "list": [1, 2.5, "x"], "tuple": (1, 2)}}
    text = dumps(obj)
    assert " " not in text.replace("Küche ☃", "")  # compact
    assert "Küche ☃" in text  # not \\u-escaped
    assert json.loads(text) == json.loads(json.dumps(obj))
    assert dumpb(obj) == text.encode()
    assert loads(text) == loads(text.encode())


def test_what_orjson_refuses_falls_back_to_the_stdlib() -> None:
    big = 2**70  # beyond 64 bits
    assert json.loads(dumps({"n": big})) == {"n": big}
    assert json.loads(dumps({1: "a", None: "b"})) == {"1": "a", "null": "b"}
    assert dumps({"when": object()}, default=lambda o: "obj") == '{"when":"obj"}'
    assert json.loads(dumps([big], default=str)) == [big]


def test_nan_becomes_null_and_bad_json_is_a_value_error() -> None:
    assert json.loads(dumps({"v": math.nan, "w": math.inf})) == {"v": None, "w": None}
    with pytest.raises(ValueError):
        loads('{"a": ')
    with pytest.raises(ValueError):
        loads("NaN")  # stricter than the stdlib: JSON has no NaN
