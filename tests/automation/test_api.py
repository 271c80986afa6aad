"""The automation API on the real app: CRUD, YAML read-only, enable/disable/trigger, traces,
persistence across restart, and 4xx (never 500) for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hub.config import LoadedConfig
from hub.hub import Hub

BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}
TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}
YAML_AUTO = {"id": "from_yaml", "triggers": [BUTTON], "actions": [TOGGLE]}


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig]) -> AsyncIterator[Hub]:
    """The shared api_client's hub, with one YAML automation."""
    async with Hub(config_factory({"automations": [YAML_AUTO]})) as h:
        yield h


async def test_crud_and_persistence(api_client, hub, config_factory):
    body = {"id": "evening", "name": "Evening", "mode": "queued", "max": 3,
            "triggers": [{"type": "state", "device": "virtual.motion", "attribute": "on",
                          "to": True}],
            "actions": [TOGGLE]}
    r = await api_client.post("/api/automations", json=body)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["source"] == "api" and created["valid"] and created["mode"] == "queued"
    r = await api_client.post("/api/automations", json=body)
    assert r.status == 409
    r = await api_client.get("/api/automations")
    ids = {a["id"] for a in (await r.json())["automations"]}
    assert ids == {"evening", "from_yaml"}
    body["name"] = "Late evening"
    r = await api_client.put("/api/automations/evening", json=body)
    assert r.status == 200 and (await r.json())["name"] == "Late evening"
    r = await api_client.post("/api/automations", json={**body, "id": "gone"})
    assert r.status == 201
    r = await api_client.delete("/api/automations/gone")
    assert r.status == 204
    assert (await api_client.get("/api/automations/gone")).status == 404
    # a restart keeps what the API made, and its changes
    async with Hub(config_factory({"automations": [YAML_AUTO]})) as again:
        entry = again.automations.get("evening")
        assert entry.automation is not None and entry.automation.name == "Late evening"
        assert "gone" not in {e.id for e in again.automations}


async def test_yaml_automations_are_read_only(api_client):
    r = await api_client.get("/api/automations/from_yaml")
    body = await r.json()
    assert body["source"] == "yaml"
    assert "config.yaml:" in body["where"]
    r = await api_client.put("/api/automations/from_yaml", json=YAML_AUTO)
    assert r.status == 409
    assert "read-only" in (await r.json())["error"]["message"]
    assert (await api_client.delete("/api/automations/from_yaml")).status == 409


async def test_bad_definitions_are_400_with_field(api_client):
    cases = [
        ({"id": "x", "triggers": [{"type": "state", "device": "virtual.none",
                                    "attribute": "on"}], "actions": [TOGGLE]},
         "triggers[0].device", "unknown device"),
        ({"id": "x", "triggers": [{"type": "state", "device": "virtual.lamp",
                                    "attribute": "hue"}], "actions": [TOGGLE]},
         "triggers[0].attribute", "unknown attribute"),
        ({"id": "x", "triggers": [BUTTON], "actions": [{"type": "delay", "seconds": "soon"}]},
         "actions[0].seconds", "expected a duration"),
        ({"id": "x", "triggers": [BUTTON], "actions": [
            {"type": "enable", "automation": "x"}]},
         "actions[0]", "loop of automations enabling each other"),
        ({"id": "Bad Id!", "triggers": [BUTTON], "actions": [TOGGLE]}, "id", "use 1-64"),
    ]
    for body, field, message in cases:
        r = await api_client.post("/api/automations", json=body)
        assert r.status == 400, (body, await r.text())
        err = (await r.json())["error"]
        assert err["field"] == field and message in err["message"]
        assert "automation '" in err["message"]
    r = await api_client.post("/api/automations", data=b"[1]",
                              headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await api_client.put("/api/automations/from_yaml", data=b"{",
                             headers={"Content-Type": "application/json"})
    assert r.status in (400, 409)
    r = await api_client.get("/api/automations")
    assert {a["id"] for a in (await r.json())["automations"]} == {"from_yaml"}


async def test_enable_disable_trigger_and_traces(api_client, hub):
    r = await api_client.post("/api/automations/from_yaml/disable")
    assert r.status == 200 and (await r.json())["enabled"] is False
    await hub.integrations.command("virtual.button", "press", {})
    r = await api_client.get("/api/automations/from_yaml/traces")
    assert (await r.json())["traces"] == []
    r = await api_client.post("/api/automations/from_yaml/enable")
    assert (await r.json())["enabled"] is True
    r = await api_client.post("/api/automations/from_yaml/trigger", json={"data": {"by": "me"}})
    assert r.status == 202
    run_id = (await r.json())["run_id"]
    for _ in range(50):
        r = await api_client.get("/api/automations/from_yaml/traces")
        traces = (await r.json())["traces"]
        if traces and traces[0]["state"] != "running":
            break
    assert traces[0]["run_id"] == run_id
    assert traces[0]["trigger"]["type"] == "manual"
    assert traces[0]["trigger"]["data"] == {"by": "me"}
    assert traces[0]["actions"][0]["path"] == "actions[0]"
    assert hub.states.value("virtual.lamp", "on") is True
    assert (await api_client.post("/api/automations/nope/trigger")).status == 404
    r = await api_client.post("/api/automations/from_yaml/trigger", json={"data": 5})
    assert r.status == 400


async def test_scope_patch_marks_automation_invalid(api_client):
    body = {"id": "watch", "triggers": [{"type": "state", "device": "virtual.motion",
                                         "attribute": "on"}], "actions": [TOGGLE]}
    assert (await api_client.post("/api/automations", json=body)).status == 201
    r = await api_client.patch("/api/devices/virtual.motion",
                               json={"scope": {"attributes": [], "events": None}})
    assert r.status == 200
    got = await (await api_client.get("/api/automations/watch")).json()
    assert got["valid"] is False
    assert got["errors"][0]["field"] == "triggers[0].attribute"
    assert "privacy scope" in got["errors"][0]["message"]


def test_routes_declare_roles():
    from hub.api.access import required_role
    from hub.api.routes import automations as routes
    from hub.auth.principal import Role

    assert required_role(routes.list_automations) == Role.MEMBER
    assert required_role(routes.get_traces) == Role.MEMBER
    assert required_role(routes.trigger_automation) == Role.MEMBER
    for handler in (routes.create_automation, routes.put_automation, routes.delete_automation,
                    routes.enable_automation, routes.disable_automation):
        assert required_role(handler) == Role.ADMIN


async def test_delete_while_running_leaves_no_traces(api_client, hub):
    body = {"id": "slow", "triggers": [BUTTON],
            "actions": [{"type": "delay", "seconds": 3600}, TOGGLE]}
    assert (await api_client.post("/api/automations", json=body)).status == 201
    r = await api_client.post("/api/automations/slow/trigger")
    assert (await r.json())["started"] is True
    assert (await api_client.delete("/api/automations/slow")).status == 204
    await hub.db.flush()
    for _ in range(20):
        await hub.db.flush()
    rows = await hub.db.fetchall(
        "SELECT count(*) AS n FROM automation_traces WHERE automation_id = 'slow'")
    assert rows[0]["n"] == 0
    timers = await hub.db.fetchall("SELECT * FROM automation_timers")
    assert timers == []


async def test_trigger_invalid_automation_is_409(api_client, hub):
    await hub.devices.update("virtual.lamp", restricted=True)
    body = {"id": "uses_lamp", "triggers": [{"type": "state", "device": "virtual.lamp",
                                             "attribute": "on"}], "actions": [TOGGLE]}
    r = await api_client.post("/api/automations", json=body)
    assert r.status == 400 and "restricted" in (await r.json())["error"]["message"]
    await hub.devices.update("virtual.lamp", restricted=False)
    assert (await api_client.post("/api/automations", json=body)).status == 201
    await hub.devices.update("virtual.lamp", restricted=True)
    r = await api_client.post("/api/automations/uses_lamp/trigger")
    assert r.status == 409 and "cannot run" in (await r.json())["error"]["message"]


async def test_notify_and_fired_events_reach_the_websocket(api_client, client_for, hub):
    from hub.auth.principal import Role

    body = {"id": "doorbell", "triggers": [BUTTON], "actions": [
        {"type": "notify", "title": "Door", "message": "Someone rang"},
        {"type": "event", "event": "rang", "data": {"door": "front"}}]}
    assert (await api_client.post("/api/automations", json=body)).status == 201
    member = await client_for(Role.MEMBER)
    async with member.ws_connect("/api/ws") as ws:
        assert (await ws.receive_json())["type"] == "ready"
        await ws.send_json({"type": "subscribe",
                            "events": ["notification", "automation_event"]})
        assert (await ws.receive_json())["type"] == "subscribed"
        r = await member.post("/api/devices/virtual.button/commands", json={"command": "press"})
        assert r.status == 200
        first = (await ws.receive_json(timeout=5))["event"]
        second = (await ws.receive_json(timeout=5))["event"]
    assert first["type"] == "notification"
    assert (first["title"], first["message"]) == ("Door", "Someone rang")
    assert second["type"] == "automation_event"
    assert second["event"] == "rang" and second["data"] == {"door": "front"}
    assert second["automation_id"] == "doorbell"


async def test_members_read_but_cannot_change(client_for):
    from hub.auth.principal import Role

    member = await client_for(Role.MEMBER)
    assert (await member.get("/api/automations")).status == 200
    assert (await member.get("/api/automations/from_yaml/traces")).status == 200
    assert (await member.post("/api/automations/from_yaml/disable")).status == 403
    r = await member.post("/api/automations", json={"id": "m", "triggers": [BUTTON],
                                                   "actions": [TOGGLE]})
    assert r.status == 403
    guest = await client_for(Role.GUEST)
    assert (await guest.get("/api/automations")).status == 403
    anonymous = await client_for(None)
    assert (await anonymous.get("/api/automations")).status == 401


async def test_put_without_enabled_keeps_it_off(api_client, hub, config_factory):
    body = {"id": "porch", "mode": "queued", "max": 3, "triggers": [BUTTON],
            "actions": [TOGGLE]}
    assert (await api_client.post("/api/automations", json=body)).status == 201
    assert (await api_client.post("/api/automations/porch/disable")).status == 200
    # an edit that does not mention `enabled` leaves it off, and it does not run
    r = await api_client.put("/api/automations/porch", json={**body, "name": "Porch"})
    assert r.status == 200 and (await r.json())["enabled"] is False
    await hub.integrations.command("virtual.button", "press", {})
    assert (await (await api_client.get("/api/automations/porch/traces")).json())["traces"] == []
    async with Hub(config_factory({"automations": [YAML_AUTO]})) as again:
        assert again.automations.get("porch").enabled is False  # remembered across a restart
    # a body with `enabled` decides
    r = await api_client.put("/api/automations/porch", json={**body, "enabled": True})
    assert (await r.json())["enabled"] is True
    r = await api_client.put("/api/automations/porch", json={**body, "name": "Porch again"})
    assert (await r.json())["enabled"] is True
    r = await api_client.put("/api/automations/porch", json={**body, "enabled": False})
    assert (await r.json())["enabled"] is False
