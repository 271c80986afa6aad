"""GET /api/ws: authentication, subscriptions, guest filtering, slow clients, revocation."""

from __future__ import annotations

import asyncio

import aiohttp

from hub.auth.principal import Role
from hub.bus import Notification, StateChanged
from hub.hub import Hub

TIMEOUT = 5


async def receive(ws) -> dict:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.json()


async def ready(ws) -> dict:
    hello = await receive(ws)
    assert hello["type"] == "ready"
    return hello


async def subscribe(ws, **filters) -> None:
    await ws.send_json({"type": "subscribe", "id": 7, **filters})
    reply = await receive(ws)
    assert reply == {"type": "subscribed", "id": 7}, reply


async def events(ws, count: int) -> list[dict]:
    out = []
    while len(out) < count:
        msg = await receive(ws)
        assert msg["type"] == "event", msg
        out.append(msg["event"])
    return out


async def nothing_more(ws) -> None:
    await ws.send_json({"type": "ping"})
    assert (await receive(ws)) == {"type": "pong"}  # in order: no event was queued before


async def test_header_auth_and_device_subscription(api_client, hub: Hub) -> None:
    async with api_client.ws_connect("/api/ws") as ws:
        hello = await ready(ws)
        assert hello["user"]["role"] == "owner"
        await subscribe(ws, devices=["virtual.lamp"], events=["state_changed"])
        hub.states.set("virtual.temp", {"value": 25.0})
        hub.states.set("virtual.lamp", {"on": True})
        [event] = await events(ws, 1)
        assert event["type"] == "state_changed" and event["device_id"] == "virtual.lamp"
        assert event["new"] is True
        await nothing_more(ws)


async def test_area_and_event_type_filters(api_client, hub: Hub) -> None:
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        await subscribe(ws, areas=["hall"])
        hub.states.set("virtual.lamp", {"on": True})  # living
        hub.states.set("virtual.motion", {"on": True})  # hall
        [event] = await events(ws, 1)
        assert event["device_id"] == "virtual.motion"
        await nothing_more(ws)
        await subscribe(ws, events=["notification"])
        hub.states.set("virtual.motion", {"on": False})
        hub.bus.publish(Notification("Door", "The door is open"))
        [event] = await events(ws, 1)
        assert event["type"] == "notification" and event["title"] == "Door"
        await ws.send_json({"type": "subscribe", "events": ["no_such_event"]})
        err = await receive(ws)
        assert err["type"] == "error" and err["error"]["field"] == "events"
        await ws.send_str("{not json")
        assert (await receive(ws))["type"] == "error"


async def test_first_message_auth_and_bad_tokens(client_for, hub: Hub) -> None:
    member = await client_for(Role.MEMBER)
    anon = await client_for(None)
    async with anon.ws_connect("/api/ws") as ws:
        await ws.send_json({"type": "auth", "token": member.token})
        assert (await ready(ws))["user"]["role"] == "member"
        await subscribe(ws, devices=["virtual.lamp"])
        hub.states.set("virtual.lamp", {"on": True})
        assert (await events(ws, 1))[0]["device_id"] == "virtual.lamp"
    async with anon.ws_connect("/api/ws") as ws:
        await ws.send_json({"type": "auth", "token": "uh_wrong"})
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
    async with anon.ws_connect("/api/ws") as ws:
        await ws.send_json({"type": "subscribe"})  # before authenticating
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
    r = await anon.get("/api/ws")  # not an upgrade, no token
    assert r.status == 401


async def test_guest_receives_only_granted_devices(client_for, hub: Hub) -> None:
    guest = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}))
    async with guest.ws_connect("/api/ws") as ws:
        await ready(ws)
        await subscribe(ws)  # everything it may see
        hub.states.set("virtual.temp", {"value": 30.0})
        hub.bus.publish(Notification("Private", "not for guests"))
        hub.states.set("virtual.lamp", {"on": True})
        [event] = await events(ws, 1)
        assert event["device_id"] == "virtual.lamp"
        await subscribe(ws, devices=["virtual.temp"])  # asking does not help
        hub.states.set("virtual.temp", {"value": 31.0})
        await nothing_more(ws)


async def test_revoking_the_token_closes_its_websockets(client_for, hub: Hub) -> None:
    member = await client_for(Role.MEMBER)
    other = await client_for(Role.MEMBER)
    async with member.ws_connect("/api/ws") as ws, other.ws_connect("/api/ws") as ws2:
        await ready(ws)
        await ready(ws2)
        token_id = next(t.id for t in hub.auth.tokens(member.user.id))
        r = await member.delete(f"/api/tokens/{token_id}")
        assert r.status == 204
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 4401
        assert msg.extra == "token revoked"
        await ws2.send_json({"type": "ping"})
        assert (await receive(ws2)) == {"type": "pong"}  # other tokens unaffected


async def test_slow_client_is_dropped_and_the_hub_goes_on(api_client, hub: Hub) -> None:
    size = hub.config.auth.ws_queue_size
    async with api_client.ws_connect("/api/ws") as slow, \
            api_client.ws_connect("/api/ws") as fine:
        await ready(slow)
        await ready(fine)
        await subscribe(slow, devices=["virtual.temp"])
        await subscribe(fine, devices=["virtual.lamp"])
        for i in range(size + 50):  # a burst faster than anyone drains: the queue overflows
            hub.bus.publish(StateChanged("virtual.temp", "value", i, i + 1, 0.0))
        closed = None
        for _ in range(size + 60):
            msg = await asyncio.wait_for(slow.receive(), TIMEOUT)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                closed = msg
                break
        assert closed is not None and closed.data == 4008
        assert "slow consumer" in closed.extra
        hub.states.set("virtual.lamp", {"on": True})
        assert (await events(fine, 1))[0]["device_id"] == "virtual.lamp"
    assert not [s for s in hub.bus.stats()["subscriptions"] if s["name"].startswith("ws:")]


async def test_changed_grants_apply_to_open_websockets(api_client, client_for,
                                                       hub: Hub) -> None:
    guest = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}))
    async with guest.ws_connect("/api/ws") as ws:
        await ready(ws)
        await subscribe(ws)
        hub.states.set("virtual.temp", {"value": 30.0})
        await nothing_more(ws)
        r = await api_client.patch(f"/api/users/{guest.user.id}",
                                   json={"granted_devices": ["virtual.temp"]})
        assert r.status == 200
        hub.states.set("virtual.lamp", {"on": True})  # no longer granted
        hub.states.set("virtual.temp", {"value": 31.0})
        [event] = await events(ws, 1)
        assert event["device_id"] == "virtual.temp" and event["new"] == 31.0
        await nothing_more(ws)


async def test_websocket_closes_when_its_token_expires(client_for, hub: Hub) -> None:
    member = await client_for(Role.MEMBER)
    token, _ = await hub.auth.create_token(member.user.id, "short", expires_in=60)
    anon = await client_for(None)
    # the expiry is real time here: move the record's expiry close instead of waiting
    from dataclasses import replace

    rec = next(r for r in hub.auth._tokens.values() if r.name == "short")
    hub.auth._tokens[rec.hash] = replace(rec, expires_at=hub.clock.time() + 0.3)
    async with anon.ws_connect("/api/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        await ready(ws)
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
        assert msg.extra == "token expired"


async def answers(ws, ids: set) -> dict:
    """Messages until every id in `ids` was answered (events in between are skipped)."""
    got: dict = {}
    while ids - got.keys():
        msg = await receive(ws)
        if msg["type"] in ("result", "error") and "id" in msg:
            got[msg["id"]] = msg
    return got


async def test_command_over_the_websocket(api_client, hub: Hub) -> None:
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        await subscribe(ws, devices=["virtual.lamp"], events=["state_changed"])
        await ws.send_json({"type": "command", "id": 1, "device_id": "virtual.lamp",
                            "command": "turn_on"})
        first = [await receive(ws), await receive(ws)]
        assert {"type": "result", "id": 1, "result": {"on": True}} in first
        [event] = [m["event"] for m in first if m["type"] == "event"]
        assert event["device_id"] == "virtual.lamp" and event["new"] is True
        assert hub.states.value("virtual.lamp", "on") is True
        await ws.send_json({"type": "command", "id": "t", "device_id": "virtual.temp",
                            "command": "set", "params": {"value": 21.5}})
        assert (await answers(ws, {"t"}))["t"]["result"] == {"value": 21.5}
        # pipelined: many in flight on one connection, every one answered by its id
        for i in range(100, 150):
            await ws.send_json({"type": "command", "id": i, "device_id": "virtual.lamp",
                                "command": "toggle"})
        got = await answers(ws, set(range(100, 150)))
        assert all(m["type"] == "result" for m in got.values())
        assert hub.states.value("virtual.lamp", "on") is True  # 50 toggles from on


async def test_coalesced_frames_carry_the_same_messages(api_client, hub: Hub) -> None:
    """With `features: coalesce`, what is ready at once comes as one frame holding a JSON
    array of the very messages a plain connection gets one frame each."""
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        await ws.send_json({"type": "features", "coalesce": "yes"})
        bad = await receive(ws)
        assert bad["type"] == "error" and bad["error"]["field"] == "coalesce", bad
        await ws.send_json({"type": "features", "id": 3, "coalesce": True})
        assert (await receive(ws)) == {"type": "features", "coalesce": True, "id": 3}
        await subscribe(ws, devices=["virtual.lamp"], events=["state_changed"])
        for i in range(1, 41):  # 40 commands sent at once: 40 answers and 40 events
            await ws.send_json({"type": "command", "id": i, "device_id": "virtual.lamp",
                                "command": "toggle"})
        frames: list = []
        messages: list[dict] = []
        while len(messages) < 80:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            body = msg.json()
            frames.append(body)
            messages.extend(body if isinstance(body, list) else [body])
        assert len(messages) == 80
        assert any(isinstance(f, list) and len(f) > 1 for f in frames), frames
        assert len(frames) < 80  # fewer frames than messages
        assert sorted(m["id"] for m in messages if m["type"] == "result") == list(range(1, 41))
        changes = [m["event"]["new"] for m in messages if m["type"] == "event"]
        assert changes == [i % 2 == 1 for i in range(1, 41)]  # every toggle, in order
        assert hub.states.value("virtual.lamp", "on") is False
        # a single ready message is still a plain object, not an array of one
        await ws.send_json({"type": "ping"})
        assert (await receive(ws)) == {"type": "pong"}


async def test_bad_commands_answer_errors_naming_the_field(api_client, hub: Hub) -> None:
    cases = [
        ({"id": 1, "command": "turn_on"}, "device_id"),
        ({"id": 2, "device_id": 5, "command": "turn_on"}, "device_id"),
        ({"id": 3, "device_id": "virtual.lamp"}, "command"),
        ({"id": 4, "device_id": "virtual.lamp", "command": ["turn_on"]}, "command"),
        ({"id": 5, "device_id": "virtual.lamp", "command": "explode"}, "command"),
        ({"id": 6, "device_id": "virtual.lamp", "command": "x" * 101}, "command"),
        ({"id": 7, "device_id": "virtual.lamp", "command": "turn_on", "params": [1]}, "params"),
        ({"id": 8, "device_id": "virtual.temp", "command": "set", "params": {}},
         "params.value"),
        ({"id": 9, "device_id": "virtual.temp", "command": "set",
          "params": {"value": "hot"}}, "params.value"),
        ({"id": 10, "device_id": "virtual.lamp", "command": "turn_on", "colour": "red"},
         "colour"),
        ({"device_id": "virtual.lamp", "command": "turn_on"}, "id"),
        ({"id": True, "device_id": "virtual.lamp", "command": "turn_on"}, "id"),
    ]
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        for body, where in cases:
            await ws.send_json({"type": "command", **body})
            reply = await receive(ws)
            assert reply["type"] == "error", (body, reply)
            assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == where, \
                (body, reply)
            if "id" in body:
                assert reply["id"] == body["id"]
        await ws.send_json({"type": "command", "id": 11, "device_id": "virtual.nope",
                            "command": "turn_on"})
        reply = await receive(ws)
        assert reply == {"type": "error", "id": 11, "error": {
            "code": "not_found", "message": "no device 'virtual.nope'"}}
        await ws.send_json({"type": "command", "id": 12, "device_id": "virtual.lamp",
                            "command": "turn_on"})
        assert (await receive(ws)) == {"type": "result", "id": 12, "result": {"on": True}}
        await nothing_more(ws)
    assert hub.states.value("virtual.temp", "value") == 20.0  # nothing half-applied


async def test_guest_commands_only_granted_devices(api_client, client_for, hub: Hub) -> None:
    guest = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}))
    async with guest.ws_connect("/api/ws") as ws:
        await ready(ws)
        await ws.send_json({"type": "command", "id": 1, "device_id": "virtual.lamp",
                            "command": "turn_on"})
        assert (await receive(ws)) == {"type": "result", "id": 1, "result": {"on": True}}
        await ws.send_json({"type": "command", "id": 2, "device_id": "virtual.temp",
                            "command": "set", "params": {"value": 99}})
        reply = await receive(ws)
        assert reply["id"] == 2 and reply["error"]["code"] == "not_found"  # no existence leak
        assert hub.states.value("virtual.temp", "value") == 20.0
        # the same answer as over HTTP, from the same check
        r = await guest.post("/api/devices/virtual.temp/commands",
                             json={"command": "set", "params": {"value": 99}})
        assert r.status == 404 and (await r.json())["error"] == reply["error"]
        r = await api_client.patch(f"/api/users/{guest.user.id}",
                                   json={"granted_devices": ["virtual.temp"]})
        assert r.status == 200
        await ws.send_json({"type": "command", "id": 3, "device_id": "virtual.lamp",
                            "command": "turn_off"})
        assert (await receive(ws))["error"]["code"] == "not_found"  # grant withdrawn
        await ws.send_json({"type": "command", "id": 4, "device_id": "virtual.temp",
                            "command": "set", "params": {"value": 22}})
        assert (await receive(ws)) == {"type": "result", "id": 4, "result": {"value": 22}}
    assert hub.states.value("virtual.lamp", "on") is True


async def test_slow_command_does_not_block_the_connection(api_client, hub: Hub,
                                                          monkeypatch) -> None:
    release = asyncio.Event()
    real = hub.integrations.command

    async def command(device_id, name, params):  # our own host, slowed or broken on purpose
        if device_id == "virtual.temp":
            await release.wait()
        if device_id == "virtual.button":
            raise RuntimeError("integration bug")
        return await real(device_id, name, params)

    monkeypatch.setattr(hub.integrations, "command", command)
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        await ws.send_json({"type": "command", "id": 1, "device_id": "virtual.temp",
                            "command": "set", "params": {"value": 30}})
        await ws.send_json({"type": "ping", "id": 2})
        assert (await receive(ws)) == {"type": "pong", "id": 2}
        await ws.send_json({"type": "command", "id": 3, "device_id": "virtual.lamp",
                            "command": "turn_on"})
        assert (await receive(ws)) == {"type": "result", "id": 3, "result": {"on": True}}
        await ws.send_json({"type": "command", "id": 4, "device_id": "virtual.button",
                            "command": "press"})
        assert (await receive(ws)) == {"type": "error", "id": 4, "error": {
            "code": "internal_error", "message": "internal error"}}
        release.set()
        assert (await receive(ws)) == {"type": "result", "id": 1, "result": {"value": 30}}


async def test_commands_in_flight_are_bounded(api_client, hub: Hub, monkeypatch) -> None:
    from hub.api.routes import websocket

    monkeypatch.setattr(websocket, "COMMANDS_IN_FLIGHT", 2)
    release = asyncio.Event()
    real = hub.integrations.command

    async def command(device_id, name, params):  # our own host, slowed on purpose
        await release.wait()
        return await real(device_id, name, params)

    monkeypatch.setattr(hub.integrations, "command", command)
    async with api_client.ws_connect("/api/ws") as ws:
        await ready(ws)
        for i in (1, 2):
            await ws.send_json({"type": "command", "id": i, "device_id": "virtual.lamp",
                                "command": "toggle"})
        await ws.send_json({"type": "ping", "id": 3})  # read only once a command ends
        with_room = asyncio.ensure_future(receive(ws))
        await asyncio.sleep(0.2)
        assert not with_room.done()
        release.set()
        got = [await with_room, await receive(ws), await receive(ws)]
        assert sorted(str(m["id"]) for m in got) == ["1", "2", "3"]
        assert {"type": "pong", "id": 3} in got
