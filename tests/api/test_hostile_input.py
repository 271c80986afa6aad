"""Hostile JSON at the API boundary: every case is a 4xx naming the field, never a 500 or a
traceback in the log (issue 18, points 1 and 13)."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api.jsonio import MAX_DEPTH, parse
from hub.errors import ValidationError
from hub.hub import Hub

JSON = {"Content-Type": "application/json"}
HUGE = "9" * 401


async def post_raw(client, path: str, text: str) -> tuple[int, dict]:
    resp = await client.post(path, data=text.encode("utf-8", "surrogatepass"), headers=JSON)
    return resp.status, await resp.json()


def no_error_logs(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def test_lone_surrogate_in_sign_in_is_400_naming_the_field(client_for, hub: Hub,
                                                                 caplog) -> None:
    anon = await client_for(None)
    cases = [
        ('{"username": "\\ud800", "password": "whatever1"}', 400, "username"),
        # raw surrogate bytes (ED A0 80) are not UTF-8 either: named all the same
        ('{"username": "\ud800", "password": "whatever1"}', 400, "username"),
        # a lone low surrogate, and one hidden in a key
        ('{"username": "a\\udc00b", "password": "whatever1"}', 400, "username"),
        ('{"username": "a", "password": "whatever1", "\\ud83d": 1}', 400, "\\ud83d"),
        # a proper pair is text: the sign-in goes on (and fails as a wrong password)
        ('{"username": "\\ud83d\\ude00", "password": "whatever1"}', 401, None),
    ]
    for text, status, where in cases:
        got, body = await post_raw(anon, "/api/auth/login", text)
        assert got == status and body["error"].get("field") == where, (text, body)
    no_error_logs(caplog)


async def test_guest_token_name_with_a_surrogate_is_refused(client_for, hub: Hub) -> None:
    from hub.auth.principal import Role

    guest = await client_for(Role.GUEST)
    status, body = await post_raw(guest, "/api/tokens", '{"name": "x\\udfff"}')
    assert status == 400 and body["error"]["field"] == "name", body
    assert [t.name for t in hub.auth.tokens(guest.user.id)] == ["test client"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 1_100, 100_000])
async def test_deeply_nested_body_is_400_without_sign_in(client_for, caplog,
                                                         depth: int) -> None:
    anon = await client_for(None)
    text = '{"username": ' + "[" * depth + "]" * depth + ', "password": "whatever1"}'
    status, body = await post_raw(anon, "/api/auth/login", text)
    assert status == 400 and "nested deeper" in body["error"]["message"], body
    no_error_logs(caplog)


async def test_nesting_up_to_the_limit_is_parsed() -> None:
    value = parse("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []
    with pytest.raises(ValidationError):
        parse("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


async def test_huge_expires_in_is_400_naming_the_field(api_client, caplog) -> None:
    for text in (f'{{"name": "t", "expires_in": {HUGE}}}',
                 '{"name": "t", "expires_in": 1e400}',
                 '{"name": "t", "expires_in": NaN}',
                 '{"name": "t", "expires_in": ' + "9" * 300 + "}",
                 '{"name": "t", "expires_in": 18446744073709551616}'):
        status, body = await post_raw(api_client, "/api/tokens", text)
        assert status == 400 and body["error"]["field"] == "expires_in", (text[:40], body)
    no_error_logs(caplog)


async def test_huge_automation_delay_is_400_naming_the_field(api_client, caplog) -> None:
    for seconds in (HUGE, "9" * 300, "1e400", "Infinity"):
        text = ('{"id": "big", "triggers": [{"type": "hub_start"}], '
                f'"actions": [{{"delay": {{"seconds": {seconds}}}}}]}}')
        status, body = await post_raw(api_client, "/api/automations", text)
        assert status == 400, (seconds[:10], body)
        assert "actions[0]" in json.dumps(body), body
    no_error_logs(caplog)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 4001])
async def test_device_number_parameters_must_be_finite(api_client, hub: Hub, caplog,
                                                       value: str) -> None:
    before = hub.states.get("virtual.temp")["value"].value
    status, body = await post_raw(api_client, "/api/devices/virtual.temp/commands",
                                  f'{{"command": "set", "params": {{"value": {value}}}}}')
    assert status == 400 and body["error"]["field"] == "params.value", body
    assert hub.states.get("virtual.temp")["value"].value == before
    no_error_logs(caplog)


async def test_non_utf8_authorization_header_is_4xx(api_server, caplog) -> None:
    reader, writer = await asyncio.open_connection(api_server.host, api_server.port)
    writer.write(b"GET /api/devices HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer \xff\xfe\x80abc\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert json.loads(body)["error"]["field"] == "Authorization"
    no_error_logs(caplog)


async def test_deep_first_websocket_message_closes_with_a_websocket_code(client_for,
                                                                         caplog) -> None:
    anon = await client_for(None)
    async with anon.ws_connect("/api/ws") as ws:
        await ws.send_str("[" * 30_000 + "]" * 30_000)  # (under the 64 KiB limit)
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        assert msg.data == 1007 and b"nested" in msg.extra.encode(), msg
    no_error_logs(caplog)


async def test_hostile_websocket_messages_answer_errors(api_client, caplog) -> None:
    async with api_client.ws_connect("/api/ws") as ws:
        assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "ready"
        cases = [
            ("[" * 5000 + "]" * 5000, None),
            ('{"type": "command", "id": 1, "device_id": "virtual.temp", "command": "set", '
             '"params": {"value": NaN}}', "params.value"),
            ('{"type": "command", "id": 2, "device_id": "virtual.temp", "command": "set", '
             f'"params": {{"value": {HUGE}}}}}', "params.value"),
            ('{"type": "subscribe", "devices": ["\\ud800"]}', "devices[0]"),
        ]
        for text, where in cases:
            await ws.send_str(text)
            answer = await asyncio.wait_for(ws.receive_json(), 10)
            assert answer["type"] == "error", answer
            assert answer["error"].get("field") == where, answer
        await ws.send_json({"type": "ping"})
        assert (await asyncio.wait_for(ws.receive_json(), 10)) == {"type": "pong"}
    no_error_logs(caplog)


_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT)
_VALUES = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=30)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES)
def test_parse_accepts_only_what_can_be_stored_and_sent_back(value) -> None:
    """Whatever a client sends, parse either gives values the hub can encode as UTF-8 JSON
    (finite numbers, Unicode text) or a ValidationError: nothing else escapes."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    try:
        out = parse(text)
    except ValidationError as exc:
        assert exc.field is None or isinstance(exc.field, str)
        if exc.field is not None:
            exc.field.encode()  # the answer naming it can be sent
        return
    json.dumps(out, allow_nan=False, ensure_ascii=False).encode()


def test_command_spec_refuses_non_finite_and_out_of_range_numbers() -> None:
    from hub.devices import NUMBER_LIMIT, CommandSpec

    spec = CommandSpec("set", {"value": "number"}, ("value",), {"value": (0, 100)})
    assert spec.validate({"value": 100}) == {"value": 100}
    open_spec = CommandSpec("set", {"value": "number"}, ("value",))
    assert open_spec.validate({"value": -NUMBER_LIMIT}) == {"value": -NUMBER_LIMIT}
    for s, bad in [(spec, float("nan")), (spec, float("inf")), (spec, -0.5), (spec, 101),
                   (spec, 10**4000), (open_spec, float("-inf")), (open_spec, 10**4000),
                   (open_spec, float("nan")), (open_spec, NUMBER_LIMIT * 2)]:
        with pytest.raises(ValidationError) as err:
            s.validate({"value": bad})
        assert err.value.field == "params.value"
    assert CommandSpec.from_json(spec.to_json()) == spec


async def test_virtual_sensor_range_is_declared_and_enforced(config_factory) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from hub.api.app import make_app
    from hub.auth.principal import Role

    devices = [{"id": "dial", "kind": "sensor", "min": 0, "max": 10}]
    async with Hub(config_factory(
            {"integrations": {"virtual": {"devices": devices}}})) as hub:
        user = await hub.auth.create_user("o", "correct horse battery", Role.OWNER)
        token, _ = await hub.auth.create_token(user.id, "t")
        async with TestClient(TestServer(make_app(hub)),
                              headers={"Authorization": f"Bearer {token}"}) as client:
            device = await (await client.get("/api/devices/virtual.dial")).json()
            [cmd] = device["commands"]
            assert cmd["ranges"] == {"value": [0, 10]}
            for value in (11, -1, 10**30):
                resp = await client.post("/api/devices/virtual.dial/commands",
                                         json={"command": "set", "params": {"value": value}})
                assert resp.status == 400, value
                assert (await resp.json())["error"]["field"] == "params.value"
            resp = await client.post("/api/devices/virtual.dial/commands",
                                     json={"command": "set", "params": {"value": 10}})
            assert resp.status == 200


async def test_granting_a_device_or_area_that_does_not_exist_is_400(api_client,
                                                                    hub: Hub) -> None:
    base = {"username": "visitor", "password": "long enough", "role": "guest"}
    for extra, where in [({"granted_devices": ["virtual.lamp", "virtual.lmap"]},
                          "granted_devices[1]"),
                         ({"granted_areas": ["atlantis"]}, "granted_areas[0]")]:
        resp = await api_client.post("/api/users", json={**base, **extra})
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["field"] == where
    assert hub.auth.find_user("visitor") is None
    resp = await api_client.post("/api/users", json={
        **base, "granted_devices": ["virtual.lamp"], "granted_areas": ["hall"]})
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    for extra, where in [({"granted_devices": ["nope"]}, "granted_devices[0]"),
                         ({"granted_areas": ["hall", "attic"]}, "granted_areas[1]")]:
        resp = await api_client.patch(f"/api/users/{user_id}", json=extra)
        assert resp.status == 400 and (await resp.json())["error"]["field"] == where
    user = hub.auth.user(user_id)  # nothing changed by the refused requests
    assert user.granted_devices == {"virtual.lamp"} and user.granted_areas == {"hall"}


_HOSTILE_BODIES = [
    "[" * 5_000 + "]" * 5_000,
    '{"a": ' + "{" * 200 + "}" * 200 + "}",
    '{"name": "\\ud800", "username": "\\udfff", "password": "\\ud800\\ud800"}',
    f'{{"expires_in": {HUGE}, "seconds": {HUGE}, "latitude": {HUGE}, "value": {HUGE}}}',
    '{"expires_in": NaN, "latitude": Infinity, "longitude": -Infinity, "history": 1e999}',
    '{"\\ud800": 1}',
    '{"triggers": [{"type": "state", "device": "virtual.lamp", "for": ' + HUGE + "}], "
    '"actions": [{"delay": {"days": 1e308}}]}',
]


async def test_every_json_route_answers_hostile_bodies_with_4xx(api_client, hub: Hub,
                                                                caplog) -> None:
    """Walk the router: each POST/PUT/PATCH route, as the owner, with each hostile body."""
    import re

    from hub.api.app import make_app
    from tests.api.test_access import routes

    samples = {"device_id": "virtual.lamp", "user_id": api_client.user.id,
               "automation_id": "nope", "ssid": "Home", "discovery_id": "nope"}
    checked = refused = 0
    for method, path, _handler in routes(make_app(hub)):
        if method not in ("POST", "PUT", "PATCH") or path == "/api/auth/logout":
            continue  # (logout reads no body and would end this client's session)
        concrete = re.sub(r"\{([^}:]+)(?::[^}]*)?\}",
                          lambda m: samples.get(m.group(1), "x1"), path)
        for text in _HOSTILE_BODIES:
            resp = await api_client.request(
                method, concrete, data=text.encode("utf-8", "surrogatepass"), headers=JSON)
            # (a route that reads no body may answer 2xx: it never saw the hostile part)
            assert resp.status < 500, (method, path, text[:60], resp.status,
                                       await resp.text())
            refused += 400 <= resp.status < 500
        checked += 1
    assert checked >= 15 and refused >= 15 * len(_HOSTILE_BODIES)
    no_error_logs(caplog)


def test_an_open_side_of_a_declared_range_is_still_bounded() -> None:
    from hub.devices import NUMBER_LIMIT, CommandSpec

    spec = CommandSpec("set", {"value": "number"}, ("value",), {"value": (0, None)})
    assert spec.validate({"value": NUMBER_LIMIT}) == {"value": NUMBER_LIMIT}
    for bad in (-1, 10**4000, float("inf")):
        with pytest.raises(ValidationError):
            spec.validate({"value": bad})


async def test_a_failure_after_the_upgrade_writes_no_http_into_the_websocket(caplog) -> None:
    """Whatever fails in a websocket handler after its upgrade, no HTTP answer is written
    into the upgraded connection (the middleware ends the connection instead)."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from hub.api import middlewares

    async def broken(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        raise RuntimeError("a bug after the upgrade")

    app = web.Application(middlewares=[middlewares.errors])
    app.router.add_get("/ws", broken)
    async with TestServer(app) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 101")
    assert b"HTTP/1.1 500" not in answer and b"internal_error" not in answer, answer
    assert any("a bug after the upgrade" in str(r.exc_info) for r in caplog.records)
