"""Location only with consent; restriction/objection; retention purge in batches."""

from __future__ import annotations

import asyncio

from hub.config import load_config
from hub.hub import Hub
from hub.privacy.center import LocationChanged, RestrictionChanged
from tests.conftest import write_config

HOME = {"location": {"latitude": 52.52, "longitude": 13.405, "time_zone": "Europe/Berlin"}}


async def test_location_needs_consent_and_withdrawal_deletes_it(tmp_path) -> None:
    cfg = write_config(tmp_path, HOME)
    async with Hub(load_config(cfg)) as hub:
        changes: list[LocationChanged] = []
        unsub = hub.bus.subscribe(LocationChanged, changes.append)
        assert hub.privacy.location() is None
        assert await hub.db.fetchall("SELECT * FROM privacy_location") == []
        await hub.privacy.set_consent("location", True, "owner")
        loc = hub.privacy.location()
        assert loc is not None and (loc.latitude, loc.longitude) == (52.52, 13.405)
        await hub.privacy.set_location(48.1, 11.6, 500.0, "owner")
        assert hub.privacy.location().latitude == 48.1
        await hub.privacy.set_consent("location", False, "owner")
        assert hub.privacy.location() is None
        assert await hub.db.fetchall("SELECT * FROM privacy_location") == []
        assert hub.config.location.time_zone == "Europe/Berlin"  # a setting, it stays
        unsub()
        assert [c.available for c in changes] == [True, True, False]
    db_bytes = (tmp_path / "data" / "hub.db").read_bytes()
    import struct

    assert struct.pack(">d", 48.1) not in db_bytes  # REAL values are stored big-endian


async def test_location_api(api_client) -> None:
    r = await api_client.put("/api/privacy/location", json={"latitude": 1.0, "longitude": 2.0})
    assert r.status == 409
    assert "consent" in (await r.json())["error"]["message"]
    await api_client.put("/api/privacy/consents", json={"location": True})
    r = await api_client.put("/api/privacy/location", json={"latitude": 91, "longitude": 2.0})
    assert r.status == 400 and (await r.json())["error"]["field"] == "latitude"
    r = await api_client.put("/api/privacy/location", json={"latitude": 1.5, "longitude": 2.5})
    assert r.status == 200
    body = await r.json()
    assert (body["latitude"], body["longitude"], body["consent"]) == (1.5, 2.5, True)
    await api_client.put("/api/privacy/consents", json={"location": False})
    body = await (await api_client.get("/api/privacy/location")).json()
    assert body["latitude"] is None and body["time_zone"] == "UTC"


async def test_device_and_user_restriction(hub: Hub, api_client) -> None:
    seen: list[RestrictionChanged] = []
    unsub = hub.bus.subscribe(RestrictionChanged, seen.append)
    assert hub.privacy.device_usable("virtual.lamp")
    url = "/api/privacy/restrictions/devices/virtual.lamp"
    r = await api_client.put(url, json={"restricted": True})
    assert r.status == 200
    assert hub.devices.get("virtual.lamp").restricted
    assert not hub.privacy.device_usable("virtual.lamp")
    hub.states.set("virtual.lamp", {"on": True})  # data is still kept
    await hub.db.flush()
    assert await hub.states.history("virtual.lamp")
    r = await api_client.put("/api/privacy/restrictions/devices/nope", json={"restricted": True})
    assert r.status == 404
    r = await api_client.put("/api/privacy/restrictions/users/me",
                             json={"presence_objection": True})
    assert r.status == 200
    body = await r.json()
    assert body["presence_objection"] is True and body["restricted"] is False
    assert hub.privacy.presence_objection(body["user_id"])
    r = await api_client.put("/api/privacy/restrictions/users/me", json={"bogus": 1})
    assert r.status == 400 and (await r.json())["error"]["field"] == "bogus"
    restr = await (await api_client.get("/api/privacy/restrictions")).json()
    assert restr["devices"] == ["virtual.lamp"] and restr["users"][0]["presence_objection"]
    await api_client.put(url, json={"restricted": False})
    assert hub.privacy.device_usable("virtual.lamp")
    unsub()
    first = seen[0]
    assert (first.subject, first.subject_id, first.restricted) == ("device", "virtual.lamp", True)
    assert not hub.privacy.may_collect_presence("kid", is_minor=True)
    assert hub.privacy.may_collect_presence("adult", is_minor=False)


async def test_retention_purges_old_rows_in_batches(tmp_path) -> None:
    cfg = write_config(tmp_path, {"privacy": {"retention": {
        "history_days": 10, "events_days": 30, "batch": 50}}})
    async with Hub(load_config(cfg)) as hub:
        now = hub.clock.time()
        day = 86_400
        old = [("temp", "t", "1", now - 11 * day - i) for i in range(420)]
        new = [("temp", "t", "2", now - 9 * day + i) for i in range(30)]
        hub.db.enqueue_many(
            "INSERT INTO history(device_id, attribute, value, ts) VALUES(?,?,?,?)", old + new)
        hub.db.enqueue_many(
            "INSERT INTO events(device_id, event_type, data, ts) VALUES(?,?,?,?)",
            [("button", "press", "{}", now - 31 * day), ("button", "press", "{}", now)])
        await hub.db.flush()
        status = (await hub.privacy.retention.status())["classes"]
        assert status["history"]["days"] == 10 and status["history"]["oldest"] < now - 11 * day
        # the API answers while the purge runs: it yields between its batches
        purge = asyncio.create_task(hub.privacy.retention.run_once())
        ticks = 0
        while not purge.done():
            ticks += 1
            await asyncio.sleep(0)
        deleted = await purge
        assert deleted["history"] == 420 and deleted["events"] == 1
        assert ticks >= 420 // 50
        left = await hub.db.fetchone(
            "SELECT count(*) AS n, min(ts) AS t FROM history WHERE device_id = 'temp'")
        assert left["n"] == 30 and left["t"] >= now - 9 * day
        status = (await hub.privacy.retention.status())["classes"]
        assert status["history"]["oldest"] >= now - 9 * day
        assert status["events"]["days"] == 30 and status["audit"]["days"] == 365


async def test_retention_api(api_client) -> None:
    r = await api_client.get("/api/privacy/retention")
    assert r.status == 200
    body = await r.json()
    assert body["classes"]["history"]["days"] == 10
    assert body["classes"]["events"]["days"] == 30
    assert body["classes"]["audit"]["days"] == 365
    assert body["classes"]["sign_ins"]["days"] == 90


async def test_owner_sets_retention_ages_checked_persisted_and_applied(
        api_client, client_for, hub) -> None:
    """PATCH /api/privacy/retention: ages within bounds, null back to the config's, stored,
    audited, and a purge with the new age starts at once."""
    from hub.auth.principal import Role

    admin = await client_for(Role.ADMIN)
    now = hub.clock.time()
    hub.db.enqueue_many("INSERT INTO history(device_id, attribute, value, ts) VALUES(?,?,?,?)",
                        [("temp", "t", "1", now - 3 * 86_400), ("temp", "t", "2", now)])
    await hub.db.flush()
    bad = [({}, None), ({"history": 0.001}, "history"), ({"audit": 0.5}, "audit"),
           ({"history": "3"}, "history"), ({"history": True}, "history"),
           ({"histroy": 2}, "histroy"), ({"sign_ins": 1e9}, "sign_ins")]
    for body, where in bad:
        r = await api_client.patch("/api/privacy/retention", json=body)
        assert r.status == 400, (body, await r.text())
        assert (await r.json())["error"].get("field") == where, body
    assert (await admin.patch("/api/privacy/retention", json={"history": 2})).status == 403
    assert (await hub.privacy.retention.status())["classes"]["history"]["days"] == 10
    r = await api_client.patch("/api/privacy/retention", json={"history": 2, "events": 7.5})
    assert r.status == 200, await r.text()
    classes = (await r.json())["classes"]
    assert classes["history"]["days"] == 2 and classes["history"]["set_by_owner"]
    assert classes["history"]["configured"] == 10
    assert classes["events"]["days"] == 7.5 and classes["audit"]["min"] == 1
    job = hub.privacy.retention
    assert job._soon is not None
    await job._soon  # the purge with the new ages
    left = await hub.db.fetchone("SELECT count(*) AS n FROM history WHERE device_id = 'temp'")
    assert left["n"] == 1  # the 3-day-old row went
    assert len([e for e in await hub.audit.entries()
                if e.action == "privacy.retention.set"]) == 1
    job._set.clear()
    await job.load()  # what a restart reads back
    assert job._set == {"history": 2.0, "events": 7.5}
    r = await api_client.patch("/api/privacy/retention", json={"history": None})
    assert (await r.json())["classes"]["history"] == {
        **classes["history"], "days": 10, "set_by_owner": False,
        "oldest": (await job.status())["classes"]["history"]["oldest"]}
    await job._soon
    job._set.clear()
    await job.load()
    assert job._set == {"events": 7.5}


async def test_restriction_survives_restart(tmp_path) -> None:
    cfg = write_config(tmp_path)
    async with Hub(load_config(cfg)) as hub:
        await hub.privacy.restrict_device("virtual.lamp", True, "owner")
    async with Hub(load_config(cfg)) as hub:  # the integration re-registers its devices
        assert hub.devices.get("virtual.lamp").restricted
        assert not hub.privacy.device_usable("virtual.lamp")
