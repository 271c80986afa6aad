"""GET /api/devices is lean: each device leaves out what is null, empty or the default, and
`fields` keeps only the fields asked for; GET /api/devices/{id} keeps the whole record."""

from __future__ import annotations

import json
from typing import Any


async def _listed(api_client, query: str = "") -> dict[str, dict[str, Any]]:
    resp = await api_client.get("/api/devices" + query)
    assert resp.status == 200, await resp.text()
    return {d["id"]: d for d in (await resp.json())["devices"]}


async def test_the_list_leaves_out_only_what_is_null_empty_or_default(api_client) -> None:
    listed = await _listed(api_client)
    assert len(listed) == 4
    for device_id, lean in listed.items():
        full = await (await api_client.get(f"/api/devices/{device_id}")).json()
        for key, value in full.items():
            if key in lean and key != "commands":
                assert lean[key] == value, (device_id, key)
            elif key not in lean:  # left out: must be what a missing field means
                assert value in (None, [], {}) or (key, value) in (
                    ("restricted", False), ("scope", {"attributes": None, "events": None})
                ), (device_id, key, value)
        # a command keeps its name; what it leaves out is "no parameters"
        for short, whole in zip(lean.get("commands", []), full["commands"], strict=True):
            assert short == {k: v for k, v in whole.items() if v not in ({}, [])}
    lamp = listed["virtual.lamp"]
    assert lamp["available"] is True and lamp["area"] == "living"
    assert lamp["commands"][0] == {"name": "turn_on"}
    assert not {"did", "mac", "fw_version", "connectivity", "scope", "restricted",
                "events"} & set(lamp)
    assert listed["virtual.temp"]["commands"] == [
        {"name": "set", "params": {"value": "number"}, "required": ["value"]}]
    full = await (await api_client.get("/api/devices/virtual.lamp")).json()
    assert full["did"] is None and full["restricted"] is False  # the record is whole


async def test_a_limiting_scope_and_a_restriction_are_shown(api_client) -> None:
    # an empty list is a limit (nothing readable), not "no scope": it must stay
    resp = await api_client.patch("/api/devices/virtual.lamp",
                                  json={"scope": {"attributes": []}})
    assert resp.status == 200, await resp.text()
    resp = await api_client.put("/api/privacy/restrictions/devices/virtual.temp",
                                json={"restricted": True})
    assert resp.status == 200, await resp.text()
    listed = await _listed(api_client)
    assert listed["virtual.lamp"]["scope"] == {"attributes": [], "events": None}
    assert listed["virtual.temp"]["restricted"] is True


async def test_fields_keeps_only_the_named_fields(api_client) -> None:
    listed = await _listed(api_client, "?fields=id,name,available")
    assert listed["virtual.lamp"] == {"id": "virtual.lamp", "name": "Lamp", "available": True}
    assert all(set(d) == {"id", "name", "available"} for d in listed.values())
    living = await _listed(api_client, "?fields=id,area&area=living")
    assert set(living) == {"virtual.lamp", "virtual.temp"}
    # null fields are still left out when named
    assert await _listed(api_client, "?fields=id,mac") == {
        i: {"id": i} for i in listed}
    # any selection is the full list's entries cut down to the fields named
    full = await _listed(api_client)
    for names in ("id,events,attributes,restricted,created_at", "id,attribute_meta,transport",
                  "id,commands,scope,did"):
        picked = await _listed(api_client, f"?fields={names}")
        assert picked == {i: {k: v for k, v in d.items() if k in names.split(",")}
                          for i, d in full.items()}, names
    assert picked["virtual.button"]["commands"] == [{"name": "press"}]
    # a selection is kept like the whole list, and forgotten when a device changes
    resp = await api_client.patch("/api/devices/virtual.lamp", json={"name": "Desk lamp"})
    assert resp.status == 200
    again = await _listed(api_client, "?fields=id,name,available")
    assert again["virtual.lamp"] == {"id": "virtual.lamp", "name": "Desk lamp",
                                     "available": True}
    for bad in ("?fields=id,password_hash", "?fields=", "?fields=,"):
        resp = await api_client.get("/api/devices" + bad)
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["field"] == "fields"


async def test_the_list_is_a_third_smaller_than_the_whole_records(api_client) -> None:
    body = await (await api_client.get("/api/devices",
                                       headers={"Accept-Encoding": "identity"})).read()
    whole = [await (await api_client.get(f"/api/devices/{d}")).json()
             for d in (await _listed(api_client))]
    whole_size = len(json.dumps({"devices": whole}, separators=(",", ":")))
    assert len(body) < 0.75 * whole_size, (len(body), whole_size)
