"""History downsampled in SQL for graphs: GET /api/devices/{id}/history?points=N."""

from __future__ import annotations

import time

from hub.hub import Hub


async def _seed(hub: Hub, device: str, rows: list[tuple[str, str, float]]) -> None:
    hub.db.enqueue_many("INSERT INTO history(device_id, attribute, value, ts) VALUES(?, ?, ?, ?)",
                        [(device, a, v, ts) for a, v, ts in rows])
    await hub.db.flush()


async def test_numbers_bucketed_and_booleans_as_transitions(api_client, hub: Hub) -> None:
    now = time.time()
    since = now - 1000
    rows = [("temperature", str(20 + (i % 10)), since + i) for i in range(1000)]
    rows += [("on", v, since + i) for i, v in ((10, "true"), (11, "true"), (12, "true"),
                                                (500, "false"), (501, "false"), (900, "true"))]
    await _seed(hub, "virtual.temp", rows)
    resp = await api_client.get("/api/devices/virtual.temp/history",
                                params={"since": since, "until": now, "points": 10})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["bucket"] == 100
    temps = [s for s in body["series"] if s["attribute"] == "temperature"]
    assert len(temps) == 10
    assert all(s["min"] == 20 and s["max"] == 29 and s["n"] == 100 for s in temps)
    assert temps[0]["avg"] == 24.5
    ons = [(c["value"], c["ts"] - since) for c in body["changes"] if c["attribute"] == "on"]
    assert [(v, round(t)) for v, t in ons] == [(True, 10), (False, 500), (True, 900)]


async def test_points_out_of_range_names_the_field(api_client) -> None:
    for q in ({"points": "5"}, {"points": "x"}, {"points": "50", "since": "100", "until": "50"}):
        resp = await api_client.get("/api/devices/virtual.temp/history", params=q)
        assert resp.status == 400, q
        assert (await resp.json())["error"]["field"] in ("points", "since"), q


async def test_the_value_before_the_range_is_given(api_client, hub: Hub) -> None:
    # a lamp switched on an hour before the range and a reading before it: nothing inside
    now = time.time()
    since, until = now - 2000, now - 1000
    await _seed(hub, "virtual.lamp", [("on", "false", since - 7200), ("on", "true", since - 3600)])
    await _seed(hub, "virtual.temp", [("value", "21.5", since - 100), ("value", "30", until + 1)])
    for device, attribute, value, ago in (("virtual.lamp", "on", True, 3600),
                                          ("virtual.temp", "value", 21.5, 100)):
        resp = await api_client.get(f"/api/devices/{device}/history",
                                    params={"since": since, "until": until, "points": 10})
        body = await resp.json()
        assert resp.status == 200, body
        assert body["series"] == [] and body["changes"] == [], body
        assert [(b["attribute"], b["value"], round(since - b["ts"])) for b in body["before"]] \
            == [(attribute, value, ago)], body
        assert "changes_from" not in body


async def test_changes_capped_from_the_old_end(api_client, hub: Hub) -> None:
    now = time.time()
    since = now - 1000
    rows = [("on", "true" if i % 2 else "false", since + i * 10) for i in range(50)]
    await _seed(hub, "virtual.temp", rows)
    resp = await api_client.get("/api/devices/virtual.temp/history",
                                params={"since": since, "until": now, "points": 10})
    body = await resp.json()
    ons = [c for c in body["changes"] if c["attribute"] == "on"]
    assert len(ons) == 40  # 4 * points, the newest: the last change is there
    assert round(ons[-1]["ts"] - since) == 490 and ons[-1]["value"] is True
    assert round(ons[0]["ts"] - since) == 100
    assert body["changes_from"] == ons[0]["ts"]
