"""Cloud sync against a real mosquitto on loopback (TLS with a test CA, password auth)."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiomqtt

from hub.cloud.crypto import open_envelope
from hub.cloud.service import CloudState
from hub.cloud.sources import CLOUD_SYNC, REMOTE_ACCESS, MemoryConsent, NoConsent
from hub.state import HISTORY_ROWS
from tests.cloud.conftest import USERS, cloud_section, pairing_for, peer

BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}
MOTION_ON = {"type": "command", "device": "virtual.motion", "command": "set",
             "params": {"value": True}}
A1 = {"id": "a1", "triggers": [BUTTON], "actions": [MOTION_ON]}
A2 = {"id": "a2", "triggers": [BUTTON], "actions": [MOTION_ON, MOTION_ON]}


async def commit(hub) -> None:
    """Force a storage batch, flush hooks included."""
    await hub.db.flush()


async def wait_until(predicate, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polls hub status, which has no event)
            await asyncio.sleep(0.02)


async def test_consent_off_opens_no_connection(broker, make_hub, tmp_path):
    hub = make_hub(cloud_section(broker), consent=NoConsent())
    async with hub:
        await hub.integrations.command("virtual.lamp", "toggle", {})
        await hub.db.flush()
        await asyncio.sleep(1.0)
        status = hub.cloud.status()
        assert status["enabled"] is False and status["connected"] is False
        assert status["state"] == "no_consent"
        assert hub.cloud.outbox.depth == 0
        rows = await hub.db.fetchall("SELECT * FROM cloud_outbox")
        assert rows == []
    assert broker.connections() == 0, broker.log_text()


async def test_each_category_synced_and_retained(broker, make_hub):
    hub = make_hub(cloud_section(broker), extra={"automations": [A1]})
    async with hub:
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            # the snapshot sent at enable is retained; changes from now on are streamed
            await phone.wait_for(lambda: phone.retained.get(phone.topics.automations)
                                 is not None)
            await phone.wait_for(lambda: [a["id"] for a in phone.retained[
                phone.topics.automations]["automations"]] == ["a1"])
            assert phone.retained[phone.topics.automations]["automations"][0] == {
                "id": "a1", "enabled": True, "definition": A1}
            await hub.devices.update("virtual.lamp", name="Desk lamp")
            await hub.automations.create(A2)
            await hub.integrations.command("virtual.lamp", "turn_on", {})
            await hub.integrations.command("virtual.button", "press", {})
            await hub.integrations.command("virtual.temp", "set", {"value": 21.5})
            types = lambda: {b["type"] for b in phone.applied}  # noqa: E731
            await phone.wait_for(lambda: {"devices", "state", "event", "automations"} <= types()
                                 and any(b["type"] == "state" and b["device"] == "virtual.temp"
                                         and b["value"] == 21.5 for b in phone.applied)
                                 and any(b["type"] == "automations"
                                         and len(b["automations"]) == 2
                                         for b in phone.applied)
                                 and any(b["type"] == "devices" and "Desk lamp" in json.dumps(b)
                                         for b in phone.applied))
            devices = [b for b in phone.applied if b["type"] == "devices"][-1]["devices"]
            assert {d["id"] for d in devices} == {"virtual.lamp", "virtual.button",
                                                  "virtual.temp", "virtual.motion"}
            assert all("mac" not in d and "did" not in d for d in devices)
            assert next(d for d in devices if d["id"] == "virtual.lamp")["name"] == "Desk lamp"
            assert any(b["type"] == "state" and b["device"] == "virtual.lamp"
                       and b["attribute"] == "on" and b["value"] is True for b in phone.applied)
            assert any(b["type"] == "event" and b["device"] == "virtual.button"
                       and b["event"] == "press" for b in phone.applied)
            autos = [b for b in phone.applied if b["type"] == "automations"][-1]
            assert {a["id"]: a["definition"] for a in autos["automations"]} == {
                "a1": A1, "a2": A2}
            await phone.wait_for(lambda: (phone.device_state("virtual.temp") or {}).get(
                "attributes", {}).get("value", {}).get("value") == 21.5)
            assert phone.applied_seqs == sorted(phone.applied_seqs)
        # A client connecting later gets the latest state of each device from retained messages.
        async with peer(broker, pairing_for(hub), persistent=False) as later:
            await later.wait_for(lambda: later.device_state("virtual.lamp") is not None
                                 and later.device_state("virtual.temp") is not None)
            lamp = later.device_state("virtual.lamp")
            assert lamp["attributes"]["on"]["value"] is True and lamp["available"] is True
            assert later.retained.get(later.topics.devices) is not None
        await wait_until(lambda: hub.cloud.outbox.depth == 0)
        status = hub.cloud.status()
        assert status["connected"] and status["delivered"] > 0 and status["last_delivery"]


async def test_only_chosen_categories_and_no_restricted_devices(broker, make_hub):
    hub = make_hub(cloud_section(broker, categories=["states"]))
    async with hub:
        await hub.devices.update("virtual.motion", restricted=True)
        await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
        async with peer(broker, pairing_for(hub)) as phone:
            await hub.integrations.command("virtual.motion", "set", {"value": True})
            await hub.integrations.command("virtual.lamp", "turn_on", {})
            await phone.wait_for(lambda: any(b.get("device") == "virtual.lamp"
                                             for b in phone.applied))
            await wait_until(lambda: hub.cloud.outbox.depth == 0)
            await asyncio.sleep(0.2)
            assert {b["type"] for b in phone.applied} == {"state"}
            assert all(b["device"] != "virtual.motion" for b in phone.applied)
            assert phone.device_state("virtual.motion") is None
            # Restricting a device later removes its retained state from the broker.
            await phone.wait_for(lambda: phone.device_state("virtual.lamp") is not None)
            await hub.devices.update("virtual.lamp", restricted=True)
            lamp_topic = phone.topics.device_state(phone.keys.opaque("device", "virtual.lamp"))
            await phone.wait_for(lambda: lamp_topic in phone.retained
                                 and phone.retained[lamp_topic] is None)


async def test_eavesdropper_sees_only_ciphertext(broker, make_hub):
    hub = make_hub(cloud_section(broker))
    captured: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", broker.port, username="eve", password=USERS["eve"],
                              tls_params=aiomqtt.TLSParameters(ca_certs=str(broker.pki.ca))) as eve:
        await eve.subscribe("#", qos=1)

        async def sniff() -> None:
            async for m in eve.messages:
                captured.append((str(m.topic), bytes(m.payload)))

        task = asyncio.create_task(sniff())
        async with hub:
            wrong = pairing_for(hub)
            pairing_for_keys = wrong.keys()
            from dataclasses import replace

            wrong_key = replace(wrong, sync_key=bytes(32))
            async with peer(broker, wrong_key, user="eve") as stranger:
                await hub.integrations.command("virtual.lamp", "turn_on", {})
                await wait_until(lambda: len(captured) >= 5 and hub.cloud.outbox.depth == 0)
                await asyncio.sleep(0.2)
                # Someone with broker access but another key can decrypt nothing.
                assert stranger.applied == [] and stranger.retained == {}
        task.cancel()
    # With the right key: what is synced holds no secrets (password, keys, tokens).
    keys = pairing_for_keys
    secrets_seen = [USERS["hub"], "hub-pass", "token", "password", "vault"]
    for topic, payload in captured:
        if payload and "/c/" not in topic and "/a/" not in topic:
            _seq, body = open_envelope(keys.enc, keys.hub_id, topic, payload)
            text = json.dumps(body)
            assert not any(s in text for s in secrets_seen), text[:200]
    names = [b"Lamp", b"living", b"virtual.lamp", b"Temperature", b"hall", b"\"on\""]
    for topic, payload in captured:
        for word in ("lamp", "living", "virtual", "hall", "temp"):
            assert word not in topic.lower(), topic
        for word in names:
            assert word not in payload, (topic, payload[:80])
        if payload:
            try:
                json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                pass
            else:
                raise AssertionError(f"plaintext JSON on {topic}")
    assert len(captured) >= 5


async def test_outbox_bounded_drop_oldest_and_newest(tmp_path, broker, make_hub):
    broker.stop()  # the broker is down: everything waits in the outbox
    hub = make_hub(cloud_section(broker, outbox_limit=10, categories=["states"]))
    async with hub:
        for i in range(30):
            hub.states.set("virtual.temp", {"value": float(i)})
        await commit(hub)
        assert hub.cloud.outbox.depth == 10
        assert hub.cloud.outbox.dropped > 0
        rows = await hub.db.fetchall("SELECT seq FROM cloud_outbox ORDER BY seq")
        assert len(rows) == 10
        status = hub.cloud.status()
        assert status["outbox"] == {"depth": 10, "limit": 10, "policy": "drop_oldest",
                                    "dropped": status["outbox"]["dropped"]}
        assert status["connected"] is False and status["last_error"]
        newest_kept = max(r["seq"] for r in rows)
        assert newest_kept == hub.cloud.outbox.next_seq - 1  # the newest survive

    hub2 = make_hub(cloud_section(broker, outbox_limit=10, outbox_policy="drop_newest",
                                  categories=["states"]), name="c2.yaml")
    # same data dir: 10 waiting from before; new messages are refused and counted
    async with hub2:
        before = [r["seq"] for r in await hub2.db.fetchall("SELECT seq FROM cloud_outbox")]
        hub2.states.set("virtual.temp", {"value": 99.0})
        await commit(hub2)
        after = [r["seq"] for r in await hub2.db.fetchall("SELECT seq FROM cloud_outbox")]
        assert sorted(after) == sorted(before) and hub2.cloud.outbox.dropped > 0


async def test_outbox_row_commits_with_history_row(broker, make_hub):
    broker.stop()
    hub = make_hub(cloud_section(broker, categories=["states"]))
    async with hub:
        await commit(hub)
        commits = hub.db.stats.commits
        depth = hub.cloud.outbox.depth
        hub.states.set("virtual.temp", {"value": 42.0})
        await commit(hub)
        assert hub.db.stats.commits == commits + 1  # one transaction for both
        assert hub.cloud.outbox.depth == depth + 2  # the stream message + retained state
        conn = sqlite3.connect(hub.db.path)
        try:
            hist = conn.execute(f"SELECT COUNT(*) FROM ({HISTORY_ROWS}) WHERE value = '42.0'"
                                ).fetchone()
            seq = conn.execute("SELECT value FROM cloud_meta WHERE key = 'seq'").fetchone()
        finally:
            conn.close()
        assert hist[0] == 1 and int(seq[0]) == hub.cloud.outbox.next_seq - 1


async def test_opting_out_disconnects_clears_retained_and_drops_outbox(broker, make_hub):
    consent = MemoryConsent(CLOUD_SYNC, REMOTE_ACCESS)
    hub = make_hub(cloud_section(broker), consent=consent)
    async with hub:
        pairing = pairing_for(hub)
        async with peer(broker, pairing) as phone:
            # 4 device states + the device list + the automations
            await phone.wait_for(lambda: sum(b is not None for b in phone.retained.values()) == 6)
            await wait_until(lambda: hub.cloud.outbox.depth == 0)
            retained_topics = [t for t, b in phone.retained.items() if b is not None]
            hub_connections = broker.log_text().count(" as uone-")
            consent.set(CLOUD_SYNC, False)
            # At once: syncing stops and nothing more is queued (the live connection is only
            # used to clear the retained copies, then closed).
            assert hub.cloud.state is CloudState.OPTING_OUT
            assert hub.cloud.status()["retained_clear_pending"]
            hub.states.set("virtual.temp", {"value": 7.0})
            await wait_until(lambda: not hub.cloud.status()["retained_clear_pending"])
            await wait_until(lambda: hub.cloud.state is CloudState.NO_CONSENT)
            await phone.wait_for(lambda: all(phone.retained.get(t) is None
                                             for t in retained_topics))
            assert hub.cloud.status()["enabled"] is False
            assert hub.cloud.status()["connected"] is False
            await commit(hub)
            assert await hub.db.fetchall("SELECT * FROM cloud_outbox") == []
            assert await hub.db.fetchall("SELECT * FROM cloud_retained") == []
            assert not any(b.get("value") == 7.0 for b in phone.applied)
            # No new connection was opened to clear (consent is gone), and the hub left.
            log = broker.log_text()
            assert log.count(" as uone-") == hub_connections
        async with peer(broker, pairing, persistent=False) as later:
            await asyncio.sleep(0.5)
            assert later.retained == {} and later.applied == []


async def test_wrong_ca_is_refused(broker, make_hub):
    hub = make_hub(cloud_section(broker, ca_file=str(broker.pki.other_ca)))
    async with hub:
        await wait_until(lambda: hub.cloud.last_error is not None)
        assert "certificate" in hub.cloud.last_error.lower()
        assert hub.cloud.connected is False and hub.cloud.outbox.delivered == 0


async def test_wrong_password_waits_longer(broker, make_hub):
    from tests.cloud.conftest import secrets

    vault = secrets()
    vault.values["cloud/broker_password"] = "nope"
    hub = make_hub(cloud_section(broker), vault=vault)
    async with hub:
        await wait_until(lambda: hub.cloud.last_error is not None)
        assert "authori" in hub.cloud.last_error.lower()
        await asyncio.sleep(0.5)
        assert hub.cloud.connects == 0
        assert broker.connections() <= 2  # backoff after an auth refusal, not a hammering


async def test_consent_from_the_privacy_center(broker, make_hub):
    """The real ledger: nothing until `cloud_sync` is granted; withdrawing it opts out."""
    hub = make_hub(cloud_section(broker), consent=None, real_consent=True)
    async with hub:
        await asyncio.sleep(0.3)
        assert hub.cloud.status()["state"] == "no_consent" and broker.connections() == 0
        await hub.privacy.set_consent("cloud_sync", True, None)
        await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
        assert hub.cloud.status()["consent"] == {"cloud_sync": True, "remote_access": False}
        await hub.privacy.set_consent("cloud_sync", False, None)
        await wait_until(lambda: hub.cloud.state is CloudState.NO_CONSENT
                         and not hub.cloud.connected)
        await wait_until(lambda: not hub.cloud.status()["retained_clear_pending"])
        assert hub.cloud.status()["enabled"] is False
        assert await hub.db.fetchall("SELECT * FROM cloud_outbox") == []


async def test_restricted_users_events_are_not_synced(broker, make_hub):
    from hub.bus import DeviceEvent

    hub = make_hub(cloud_section(broker, categories=["events"]))
    async with hub:
        from hub.auth.principal import Role

        kid = await hub.auth.create_user("kid", "correct horse battery", Role.GUEST)
        mum = await hub.auth.create_user("mum", "correct horse battery", Role.MEMBER)
        await hub.privacy.set_user_subject(kid.id, None, restricted=True)
        await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
        async with peer(broker, pairing_for(hub)) as phone:
            now = hub.clock.time()
            hub.bus.publish(DeviceEvent("virtual.button", "unlock", {"user_id": kid.id}, now))
            hub.bus.publish(DeviceEvent("virtual.button", "unlock", {"user_id": mum.id}, now))
            await phone.wait_for(lambda: any(b.get("data", {}).get("user_id") == mum.id
                                             for b in phone.applied))
            await wait_until(lambda: hub.cloud.outbox.depth == 0)
            assert not any(b.get("data", {}).get("user_id") == kid.id for b in phone.applied)


async def test_mqtt_311_works_too(broker, make_hub):
    hub = make_hub(cloud_section(broker, protocol="3.1.1", categories=["states"]))
    async with hub:
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            answer = await phone.command("virtual.lamp", "turn_on")
            assert answer["ok"] is True
            await phone.wait_for(lambda: any(b.get("device") == "virtual.lamp"
                                             and b.get("value") is True for b in phone.applied))
    assert "(p2, c0" in broker.log_text()  # mosquitto: p2 = MQTT 3.1.1; c0 = persistent


async def test_client_certificate_authentication(broker, make_hub):
    section = cloud_section(broker, categories=["states"])
    section.update(broker_url=f"mqtts://127.0.0.1:{broker.mtls_port}",
                   client_cert=str(broker.pki.client_cert),
                   client_key=str(broker.pki.client_key))
    section.pop("username")
    section.pop("password_secret")
    hub = make_hub(section)
    async with hub:
        await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
        assert hub.cloud.outbox.delivered > 0
    assert "u'uone-hub'" in broker.log_text()  # the certificate's CN was the identity


async def test_max_delay_publishes_before_the_commit_interval(broker, make_hub):
    hub = make_hub(cloud_section(broker, categories=["states"], max_delay=0.05),
                   extra={"storage": {"commit_interval": 30.0}})
    async with hub:
        await hub.db.flush()
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            hub.states.set("virtual.temp", {"value": 1234.0})
            # arrives while the 30 s commit interval is still far off (the wait gives up at 5)
            await phone.wait_for(lambda: any(b.get("value") == 1234.0 for b in phone.applied),
                                 5)


async def test_no_egress_without_consent_even_to_clear(make_hub):
    """Consent gone while offline, broker on the internet: the privacy center's egress guard
    refuses the clean-up connection before any socket is opened; it stays owed in the status."""
    section = {"broker_url": "mqtts://203.0.113.7:8883", "username": "hub",
               "password_secret": "cloud/broker_password", "backoff_initial": 5.0}
    first = make_hub(section, consent=NoConsent())
    async with first:
        await first.db.write("INSERT INTO cloud_retained(topic) VALUES('uone/x/r/devices')")
    hub = make_hub(section, consent=None, real_consent=True, name="again.yaml")
    async with hub:
        await wait_until(lambda: hub.cloud.last_error is not None)
        assert "EgressDenied" in hub.cloud.last_error
        status = hub.cloud.status()
        assert status["retained_clear_pending"] is True and status["connects"] == 0
        assert hub.privacy.egress.denied >= 1


async def test_withdrawn_and_given_again_at_once(broker, make_hub):
    consent = MemoryConsent(CLOUD_SYNC, REMOTE_ACCESS)
    hub = make_hub(cloud_section(broker, categories=["states"]), consent=consent)
    async with hub:
        await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
        consent.set(CLOUD_SYNC, False)
        consent.set(CLOUD_SYNC, True)
        await wait_until(lambda: hub.cloud.connected and hub.cloud.connects == 2)
        async with peer(broker, pairing_for(hub)) as phone:
            hub.states.set("virtual.temp", {"value": 77.0})
            await phone.wait_for(lambda: any(b.get("value") == 77.0 for b in phone.applied))
        assert hub.cloud.status()["enabled"] is True
        assert hub.cloud.status()["state"] == "connected"  # not left at opting_out
