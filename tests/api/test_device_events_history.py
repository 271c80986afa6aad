"""Device events (button presses) served with the history: for graphs as marks, within the
same grants as attribute history, gone with the device's erasure, only for adopted devices."""

from __future__ import annotations

import time
from typing import Any

from hub.auth.principal import Role
from hub.hub import Hub


async def _press(client: Any, times: int) -> None:
    for _ in range(times):
        resp = await client.post("/api/devices/virtual.button/commands",
                                 json={"command": "press"})
        assert resp.status == 200, await resp.text()


async def test_events_in_raw_and_downsampled_history(api_client, hub: Hub) -> None:
    await _press(api_client, 3)
    raw = await (await api_client.get("/api/devices/virtual.button/history")).json()
    assert [e["event_type"] for e in raw["events"]] == ["press"] * 3
    assert all(e["data"] == {} for e in raw["events"])
    now = time.time()
    # a week in 10 buckets: the three presses of this second fall into one mark
    week = await (await api_client.get(
        f"/api/devices/virtual.button/history?since={now - 7 * 86400}&until={now + 1}"
        "&points=10")).json()
    assert [(e["event_type"], e["n"]) for e in week["events"]] == [("press", 3)]
    assert week["events"][0]["ts"] == raw["events"][0]["ts"]
    # a range without them: no marks
    old = await (await api_client.get(
        f"/api/devices/virtual.button/history?since={now - 7200}&until={now - 3600}"
        "&points=10")).json()
    assert old["events"] == []


async def test_events_are_capped_per_bucket(api_client, hub: Hub) -> None:
    now = time.time()
    for i in range(500):  # one press a minute for 500 minutes
        hub.states.record_event("virtual.button", "press", {"i": i}, now - 500 * 60 + i * 60)
    await hub.db.flush()
    body = await (await api_client.get(
        f"/api/devices/virtual.button/history?since={now - 86400}&until={now}&points=10"
    )).json()
    assert 1 <= len(body["events"]) <= 40
    assert sum(e["n"] for e in body["events"]) == 500
    assert body["events"][0]["ts"] == now - 500 * 60
    singles = await (await api_client.get(
        f"/api/devices/virtual.button/history?since={now - 600}&until={now}&points=100"
    )).json()  # 10 presses in buckets of 24 s: one each, with its data
    assert [e["data"] for e in singles["events"]] == [{"i": i} for i in range(490, 500)]


async def test_events_follow_grants_like_history(hub: Hub, client_for) -> None:
    owner = await client_for(Role.OWNER)
    await _press(owner, 1)
    anonymous = await client_for(None)
    resp = await anonymous.get("/api/devices/virtual.button/history")
    assert resp.status == 401
    stranger = await client_for(Role.GUEST, granted_devices=frozenset({"virtual.lamp"}))
    resp = await stranger.get("/api/devices/virtual.button/history?points=10")
    assert resp.status == 404  # to this guest the button does not exist
    hall = await client_for(Role.GUEST, granted_areas=frozenset({"hall"}))
    body = await (await hall.get("/api/devices/virtual.button/history")).json()
    assert [e["event_type"] for e in body["events"]] == ["press"]


async def test_erasing_the_device_erases_its_events(api_client, hub: Hub) -> None:
    await _press(api_client, 2)
    resp = await api_client.post("/api/privacy/erase", json={"target": "device",
                                                            "device_id": "virtual.button"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["deleted"]["events"] == 2
    assert await hub.states.events("virtual.button") == []
    left = await hub.db.fetchone("SELECT COUNT(*) AS n FROM events WHERE device_id = ?",
                                 ("virtual.button",))
    assert left["n"] == 0


async def test_events_of_devices_not_adopted_are_not_kept(hub: Hub) -> None:
    ctx = hub.integrations.context("virtual")
    assert ctx is not None
    ctx.fire_event("virtual.unknown", "press")
    await hub.db.flush()
    assert await hub.states.events("virtual.unknown") == []
