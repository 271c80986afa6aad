"""Every route needs a token, except the few declared PUBLIC; roles are enforced."""

from __future__ import annotations

import re

from aiohttp import web

from hub.api.access import PUBLIC, required_role
from hub.api.app import make_app
from hub.auth.principal import Role
from hub.hub import Hub

# Reviewed: routes that answer without a token. Adding one here needs a security review.
PUBLIC_ROUTES = {
    ("GET", "/api/health"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("GET", "/api/onboarding"),
    ("POST", "/api/onboarding"),
    # The dashboard's static files: no data in them, everything they show needs a token.
    ("GET", "/"),
    ("GET", "/static/{path}"),
}


def routes(app: web.Application) -> list[tuple[str, str, object]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is None or route.method == "*":
            continue
        out.append((route.method, path, route.handler))
    return out


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_no_route_answers_without_a_valid_token(client_for, hub: Hub) -> None:
    anon = await client_for(None)
    table = routes(make_app(hub))
    assert len(table) > 20  # the enumeration sees the whole API
    checked = 0
    for method, path, handler in table:
        if required_role(handler) == PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer uh_not-a-real-token"},
                        {"Authorization": "Basic b3duZXI6cGFzcw=="}):
            resp = await anon.request(method, concrete(path), headers=headers, json={})
            assert resp.status == 401, (method, path, headers, resp.status)
            if method != "HEAD":
                body = await resp.json()
                assert body["error"]["code"] == "unauthorized", (method, path)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        checked += 1
    assert checked >= 20


async def test_public_routes_are_only_the_reviewed_ones(hub: Hub) -> None:
    public = {(m, p) for m, p, h in routes(make_app(hub))
              if required_role(h) == PUBLIC and m != "HEAD"}
    assert public <= PUBLIC_ROUTES, f"unreviewed public routes: {public - PUBLIC_ROUTES}"
    assert ("GET", "/api/health") in public


async def test_roles_are_enforced_with_403(client_for) -> None:
    guest = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}))
    member = await client_for(Role.MEMBER)
    admin = await client_for(Role.ADMIN)
    for client, method, path, body in [
        (guest, "PATCH", "/api/devices/virtual.lamp", {"name": "x"}),
        (member, "DELETE", "/api/devices/virtual.lamp", None),
        (member, "GET", "/api/users", None),
        (admin, "GET", "/api/audit", None),
        (admin, "POST", "/api/users", {"username": "x", "password": "12345678",
                                       "role": "owner"}),
    ]:
        resp = await client.request(method, path, json=body)
        assert resp.status == 403, (method, path)
        assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await admin.patch("/api/devices/virtual.lamp", json={"name": "Desk lamp"})
    assert resp.status == 200


async def test_undeclared_route_is_owner_only(client_for, hub: Hub) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from hub.api.jsonio import json_response

    async def forgot_to_declare(request: web.Request) -> web.Response:
        return json_response({"secret": True})

    app = make_app(hub)
    app.router.add_get("/api/forgotten", forgot_to_declare)
    member_token, _ = await hub.auth.create_token(
        (await hub.auth.create_user("mem", "password1", Role.MEMBER)).id, "t")
    owner_token, _ = await hub.auth.create_token(
        (await hub.auth.create_user("own", "password1", Role.OWNER)).id, "t")
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/forgotten")).status == 401
        r = await client.get("/api/forgotten",
                             headers={"Authorization": f"Bearer {member_token}"})
        assert r.status == 403
        r = await client.get("/api/forgotten",
                             headers={"Authorization": f"Bearer {owner_token}"})
        assert r.status == 200


async def test_guests_see_and_command_only_granted_devices(client_for) -> None:
    guest = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}),
                             granted_areas=frozenset({"hall"}))
    listing = await (await guest.get("/api/devices")).json()
    assert sorted(d["id"] for d in listing["devices"]) == [
        "virtual.button", "virtual.lamp", "virtual.motion"]
    assert (await guest.get("/api/devices?area=living")).status == 200
    living = await (await guest.get("/api/devices?area=living")).json()
    assert [d["id"] for d in living["devices"]] == ["virtual.lamp"]
    for path in ("/api/devices/virtual.temp", "/api/devices/virtual.temp/state",
                 "/api/devices/virtual.temp/history"):
        r = await guest.get(path)
        assert r.status == 404, path
    r = await guest.post("/api/devices/virtual.temp/commands",
                         json={"command": "set", "params": {"value": 1}})
    assert r.status == 404
    r = await guest.post("/api/devices/virtual.lamp/commands", json={"command": "turn_on"})
    assert r.status == 200
    r = await guest.post("/api/devices/virtual.button/commands", json={"command": "press"})
    assert r.status == 200
    # nothing granted: nothing visible
    nobody = await client_for(Role.GUEST)
    assert (await (await nobody.get("/api/devices")).json()) == {"devices": []}


async def test_device_list_cache_follows_registry_changes(api_client, hub: Hub) -> None:
    first = await (await api_client.get("/api/devices")).json()
    assert len(first["devices"]) == 4
    r = await api_client.patch("/api/devices/virtual.temp", json={"name": "Renamed"})
    assert r.status == 200
    again = await (await api_client.get("/api/devices")).json()
    assert {d["id"]: d["name"] for d in again["devices"]}["virtual.temp"] == "Renamed"
    hub.states.set_available("virtual.temp", False)
    again = await (await api_client.get("/api/devices")).json()
    assert {d["id"]: d["available"] for d in again["devices"]}["virtual.temp"] is False
    assert (await api_client.delete("/api/devices/virtual.temp")).status == 204
    again = await (await api_client.get("/api/devices")).json()
    assert "virtual.temp" not in {d["id"] for d in again["devices"]}


async def test_bad_input_is_4xx_never_500(api_client) -> None:
    cases = [
        ("POST", "/api/auth/login", b"{nope", 400),
        ("POST", "/api/auth/login", b"[]", 400),
        ("POST", "/api/auth/login", b'{"username": 1, "password": "x"}', 400),
        ("POST", "/api/users", b'{"username": "x", "password": "12345678", "role": "guest",'
                               b' "granted_devices": [1]}', 400),
        ("PATCH", "/api/users/nope", b"{}", 404),
        ("DELETE", "/api/tokens/nope", None, 404),
        ("GET", "/api/audit?limit=-1", None, 400),
        ("GET", "/api/audit?before=x", None, 400),
        ("GET", "/api/devices/virtual.lamp/history?since=nan", None, 400),
        ("POST", "/api/tokens", b'{"name": "x", "expires_in": 1e999}', 400),
        ("POST", "/api/auth/login", b"x" * (2 << 20), 413),
    ]
    for method, path, data, status in cases:
        r = await api_client.request(method, path, data=data,
                                     headers={"Content-Type": "application/json"})
        assert r.status == status, (method, path, r.status, await r.text())
        body = await r.json()
        assert "Traceback" not in str(body) and body["error"]["code"]
