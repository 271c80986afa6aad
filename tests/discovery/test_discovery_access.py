"""Who may see discoveries: admins (REST and websocket); members and guests may not."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hub.auth.principal import Role
from hub.hub import Hub
from tests.discovery import bthome_adv as adv


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"integrations": {"virtual": {"devices": []}, "bthome": {}}}


def _advertise(hub: Hub, address: str) -> None:
    hub.discovery.handle_advertisement(address, None, -60, (), {
        adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, battery=40))}, {})


async def _next(ws: Any) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.json()


async def test_rest_routes_are_admin_only(client_for, hub: Hub) -> None:
    _advertise(hub, "A4:C1:38:00:00:61")
    for role, status in ((None, 401), (Role.GUEST, 403), (Role.MEMBER, 403),
                         (Role.ADMIN, 200)):
        client = await client_for(role)
        assert (await client.get("/api/discovered")).status == status, role
        assert (await client.get("/api/discovered/ble-a4c138000061")).status == status, role
        resp = await client.post("/api/discovered/ble-a4c138000061/ignore")
        assert resp.status == status, role
    admin = await client_for(Role.ADMIN)
    assert (await admin.post("/api/discovered/ble-a4c138000061/adopt")).status == 201


async def test_websocket_streams_discoveries_to_admins_only(client_for, hub: Hub) -> None:
    admin, member = await client_for(Role.ADMIN), await client_for(Role.MEMBER)
    async with admin.ws_connect("/api/ws") as ws_admin, member.ws_connect("/api/ws") as ws_m:
        for ws in (ws_admin, ws_m):
            assert (await _next(ws))["type"] == "ready"
            await ws.send_json({"type": "subscribe", "id": 1})
            assert (await _next(ws))["type"] == "subscribed"
        _advertise(hub, "A4:C1:38:00:00:62")
        event = (await _next(ws_admin))["event"]
        assert event["type"] == "discovery_new" and event["id"] == "ble-a4c138000062"
        assert event["device"]["integration"] == "bthome"
        await ws_m.send_json({"type": "ping"})
        assert (await _next(ws_m)) == {"type": "pong"}  # nothing was queued for the member
