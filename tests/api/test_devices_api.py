"""Device routes through the real app: list, command, state, history, patch, bad input."""

from __future__ import annotations

from hub.hub import Hub


async def test_health_reports_version_and_uptime(api_client) -> None:
    resp = await api_client.get("/api/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["version"] and body["uptime"] >= 0
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_command_changes_state_and_history(api_client, hub: Hub) -> None:
    resp = await api_client.post("/api/devices/virtual.lamp/commands",
                                 json={"command": "turn_on"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["result"] == {"on": True}
    state = await (await api_client.get("/api/devices/virtual.lamp/state")).json()
    assert state["attributes"]["on"]["value"] is True
    hist = await (await api_client.get("/api/devices/virtual.lamp/history")).json()
    assert [h["value"] for h in hist["history"]] == [False, True]


async def test_bad_commands_are_4xx_naming_the_field(api_client) -> None:
    cases = [
        ({"command": "explode"}, 400, "command"),
        ({"command": "set", "params": {"value": "hot"}}, 400, "params.value"),
        ({"command": "set"}, 400, "params.value"),
        ({"command": "set", "params": {"value": 1}, "extra": 1}, 400, "extra"),
        ({"command": 5}, 400, "command"),
    ]
    for body, status, field in cases:
        resp = await api_client.post("/api/devices/virtual.temp/commands", json=body)
        assert resp.status == status, body
        err = (await resp.json())["error"]
        assert err.get("field") == field, (body, err)
    resp = await api_client.post("/api/devices/virtual.temp/commands", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await api_client.get("/api/devices/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_patch_name_area_scope_persist(api_client, hub: Hub) -> None:
    resp = await api_client.patch(
        "/api/devices/virtual.temp",
        json={"name": "Kitchen temp", "area": "kitchen", "scope": {"attributes": ["value"]}},
    )
    assert resp.status == 200, await resp.text()
    row = await hub.db.fetchone("SELECT name, area, scope FROM devices WHERE id = ?",
                                ("virtual.temp",))
    assert row["name"] == "Kitchen temp" and row["area"] == "kitchen"
    assert '"value"' in row["scope"]
    listing = await (await api_client.get("/api/devices?area=kitchen")).json()
    assert [d["id"] for d in listing["devices"]] == ["virtual.temp"]
