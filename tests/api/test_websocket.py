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
