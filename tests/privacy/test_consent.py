"""Consent ledger: off by default, who/when/notice version, pauses on changed terms, API."""

from __future__ import annotations

from hub.config import load_config
from hub.hub import Hub
from hub.privacy.consent import PURPOSES, ConsentChanged
from tests.conftest import write_config


async def test_every_purpose_is_off_until_granted(hub: Hub) -> None:
    for purpose in PURPOSES:
        assert hub.privacy.allowed(purpose) is False
        assert hub.privacy.consents.get(purpose).status == "not_given"
    assert hub.privacy.allowed("no_such_purpose") is False


async def test_grant_and_withdraw_are_logged_and_published(hub: Hub) -> None:
    seen: list[ConsentChanged] = []
    unsub = hub.bus.subscribe(ConsentChanged, seen.append)
    await hub.privacy.set_consent("cloud_sync", True, "owner-1")
    assert hub.privacy.allowed("cloud_sync")
    await hub.privacy.set_consent("cloud_sync", False, "owner-2")
    assert not hub.privacy.allowed("cloud_sync")
    unsub()
    assert [(e.purpose, e.allowed, e.reason, e.by_user) for e in seen] == [
        ("cloud_sync", True, "granted", "owner-1"),
        ("cloud_sync", False, "withdrawn", "owner-2"),
    ]
    history = await hub.privacy.consents.history()
    assert [(h["purpose"], h["action"], h["by"], h["notice_version"]) for h in history] == [
        ("cloud_sync", "withdrawn", "owner-2", 1), ("cloud_sync", "granted", "owner-1", 1)]
    assert all(isinstance(h["ts"], float) for h in history)


async def test_notice_version_bump_pauses_only_changed_purposes(tmp_path) -> None:
    cfg = write_config(tmp_path)
    async with Hub(load_config(cfg)) as hub:
        for purpose in ("cloud_sync", "diagnostics", "remote_access"):
            await hub.privacy.set_consent(purpose, True, "owner")
    # v2 of the notice changes the terms of cloud_sync only
    cfg = write_config(tmp_path, {"privacy": {"notice_version": 2,
                                              "terms_changed": {"cloud_sync": 2}}})
    async with Hub(load_config(cfg)) as hub:
        assert hub.privacy.consents.get("cloud_sync").status == "paused"
        assert not hub.privacy.allowed("cloud_sync")
        assert hub.privacy.allowed("diagnostics")
        assert hub.privacy.allowed("remote_access")
        history = await hub.privacy.consents.history("cloud_sync")
        assert history[0]["action"] == "paused" and history[0]["notice_version"] == 2
        await hub.privacy.set_consent("cloud_sync", True, "owner")
        assert hub.privacy.allowed("cloud_sync")
        assert hub.privacy.consents.get("cloud_sync").notice_version == 2
    async with Hub(load_config(cfg)) as hub:  # a restart does not pause it again
        assert hub.privacy.allowed("cloud_sync")
        assert len(await hub.privacy.consents.history("cloud_sync")) == 3


async def test_consents_api(api_client) -> None:
    r = await api_client.get("/api/privacy/consents")
    assert r.status == 200
    body = await r.json()
    assert set(body["consents"]) == set(PURPOSES)
    assert body["notice_version"] == 1
    assert not any(c["allowed"] for c in body["consents"].values())

    r = await api_client.put("/api/privacy/consents", json={"diagnostics": True})
    assert r.status == 200
    assert (await r.json())["consents"]["diagnostics"]["status"] == "granted"

    r = await api_client.put("/api/privacy/consents", json={"diagnostics": False,
                                                            "telemetry": True})
    assert r.status == 400
    err = (await r.json())["error"]
    assert err["field"] == "telemetry" and "telemetry" in err["message"]
    # nothing stored half-way: diagnostics is still granted
    r = await api_client.get("/api/privacy/consents")
    assert (await r.json())["consents"]["diagnostics"]["allowed"] is True

    r = await api_client.put("/api/privacy/consents", json={"location": "yes"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "location"
    r = await api_client.put("/api/privacy/consents", data=b"{", headers={
        "Content-Type": "application/json"})
    assert r.status == 400

    r = await api_client.get("/api/privacy/consents/history")
    hist = (await r.json())["history"]
    assert [h["action"] for h in hist] == ["granted"]
    r = await api_client.get("/api/privacy/consents/history?purpose=nope")
    assert r.status == 400


async def test_unknown_purpose_in_terms_changed_is_a_located_config_error(tmp_path) -> None:
    import pytest

    from hub.errors import ConfigError

    cfg = write_config(tmp_path, {"privacy": {"terms_changed": {"telemetry": 2}}})
    with pytest.raises(ConfigError) as err:
        async with Hub(load_config(cfg)):
            pass
    text = str(err.value)
    assert "privacy.terms_changed.telemetry" in text and "config.yaml:" in text
