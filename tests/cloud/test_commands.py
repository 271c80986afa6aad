"""Remote commands through a real mosquitto: authorized like the local API, no replays."""

from __future__ import annotations

import asyncio
import base64

from hub.cloud.crypto import Pairing
from hub.cloud.sources import CLOUD_SYNC, REMOTE_ACCESS, MemoryConsent
from tests.cloud.conftest import cloud_section, pairing_for, peer, secrets
from tests.cloud.test_sync import wait_until


async def test_command_runs_and_answers(broker, make_hub):
    hub = make_hub(cloud_section(broker))
    async with hub:
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            answer = await phone.command("virtual.lamp", "turn_on")
            assert answer["ok"] is True and answer["result"] == {"on": True}
            assert hub.states.value("virtual.lamp", "on") is True
            bad = await phone.command("virtual.lamp", "explode")
            assert bad["ok"] is False and bad["error"]["code"] == "invalid"
            missing = await phone.command("virtual.nothing", "turn_on")
            assert missing["ok"] is False and missing["error"]["code"] == "not_found"
        assert hub.cloud.status()["commands"]["accepted"] == 1


async def test_replayed_tampered_and_stale_commands_are_refused(broker, make_hub):
    hub = make_hub(cloud_section(broker))
    async with hub:
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            cmd_id, topic, payload = phone.seal_command("virtual.lamp", "toggle")
            await phone.publish_raw(topic, payload)
            await phone.wait_for(lambda: cmd_id in phone.answers)
            assert phone.answers[cmd_id]["ok"] is True
            assert hub.states.value("virtual.lamp", "on") is True
            # The same sealed message again: refused, the lamp does not toggle back.
            del phone.answers[cmd_id]
            await phone.publish_raw(topic, payload)
            await phone.wait_for(lambda: cmd_id in phone.answers)
            assert phone.answers[cmd_id]["ok"] is False
            assert phone.answers[cmd_id]["error"]["code"] == "replay"
            assert hub.states.value("virtual.lamp", "on") is True
            # One flipped bit: authentication fails, nothing runs, no answer.
            cmd2, topic2, payload2 = phone.seal_command("virtual.lamp", "toggle")
            tampered = bytearray(payload2)
            tampered[-20] ^= 0x01
            await phone.publish_raw(topic2, bytes(tampered))
            # A sealed command moved to another client's topic fails too (topic is in AAD).
            cmd3, _, payload3 = phone.seal_command("virtual.lamp", "toggle")
            await phone.publish_raw(phone.topics.commands("someoneelse"), payload3)
            # Too old: outside the window.
            cmd4, topic4, payload4 = phone.seal_command(
                "virtual.lamp", "toggle", ts=hub.clock.time() - 3600)
            await phone.publish_raw(topic4, payload4)
            await phone.wait_for(lambda: cmd4 in phone.answers)
            assert phone.answers[cmd4]["error"]["code"] == "stale"
            await wait_until(lambda: sum(hub.cloud.status()["commands"]["rejected"].values())
                             >= 4)
            rejected = hub.cloud.status()["commands"]["rejected"]
            assert rejected["replay"] == 1 and rejected["bad_envelope"] == 1
            assert rejected["unknown_client"] == 1 and rejected["stale"] == 1
            assert cmd2 not in phone.answers and cmd3 not in phone.answers
            assert hub.states.value("virtual.lamp", "on") is True
            assert hub.cloud.status()["commands"]["accepted"] == 1


async def test_replay_refused_after_hub_restart(broker, make_hub):
    hub = make_hub(cloud_section(broker))
    async with hub:
        pairing = pairing_for(hub)
        async with peer(broker, pairing) as phone:
            await wait_until(lambda: hub.cloud.connected)
            cmd_id, topic, payload = phone.seal_command("virtual.lamp", "toggle")
            await phone.publish_raw(topic, payload)
            await phone.wait_for(lambda: cmd_id in phone.answers)
    hub2 = make_hub(cloud_section(broker), name="again.yaml")
    async with hub2:
        async with peer(broker, pairing) as phone:
            await wait_until(lambda: hub2.cloud.connected)
            await phone.publish_raw(topic, payload)
            # (the first run's answer may be re-sent too: unacknowledged answers are kept)
            await phone.wait_for(lambda: phone.answers.get(cmd_id, {}).get("ok") is False)
            assert phone.answers[cmd_id]["error"]["code"] == "replay"
            assert hub2.cloud.status()["commands"] == {"accepted": 0,
                                                        "rejected": {"replay": 1}}


async def test_guest_client_only_reaches_granted_devices(broker, make_hub):
    guest_key = bytes(range(50, 82))
    vault = secrets()
    vault.values["cloud/client/kid"] = base64.b64encode(guest_key).decode()
    hub = make_hub(cloud_section(broker, remote_clients={
        "phone": {"role": "member"},
        "kid": {"role": "guest", "devices": ["virtual.lamp"]}}), vault=vault)
    async with hub:
        await hub.devices.update("virtual.temp", restricted=True)
        base = pairing_for(hub)
        kid = Pairing(base.hub_id, base.prefix, base.sync_key, "kid", guest_key)
        async with peer(broker, kid) as tablet, peer(broker, base) as phone:
            await wait_until(lambda: hub.cloud.connected)
            ok = await tablet.command("virtual.lamp", "turn_on")
            assert ok["ok"] is True
            denied = await tablet.command("virtual.motion", "set", {"value": True})
            assert denied["ok"] is False and denied["error"]["code"] == "not_found"
            assert hub.states.value("virtual.motion", "on") is False
            # A restricted device is not reachable remotely, whatever the role.
            hidden = await phone.command("virtual.temp", "set", {"value": 5})
            assert hidden["ok"] is False and hidden["error"]["code"] == "not_found"
            # The kid's key cannot read the phone's answers.
            assert not set(phone.answers) & set(tablet.answers)


async def test_no_commands_without_remote_access_consent(broker, make_hub):
    consent = MemoryConsent(CLOUD_SYNC)
    hub = make_hub(cloud_section(broker), consent=consent)
    async with hub:
        async with peer(broker, pairing_for(hub)) as phone:
            await wait_until(lambda: hub.cloud.connected)
            cmd_id, topic, payload = phone.seal_command("virtual.lamp", "turn_on")
            await phone.publish_raw(topic, payload)
            await asyncio.sleep(0.5)
            assert cmd_id not in phone.answers  # the hub does not even subscribe
            assert hub.states.value("virtual.lamp", "on") is False
            consent.set(REMOTE_ACCESS, True)
            await wait_until(lambda: hub.cloud.connected and hub.cloud._connection.remote)
            answer = await phone.command("virtual.lamp", "turn_on")
            assert answer["ok"] is True




async def test_command_sent_while_hub_offline_waits_in_its_session(broker, make_hub):
    """Persistent session: the broker keeps the hub's subscription and queues commands."""
    hub = make_hub(cloud_section(broker))
    async with hub:
        await wait_until(lambda: hub.cloud.connected)
        pairing = pairing_for(hub)
    assert hub.states.value("virtual.lamp", "on") is False
    async with peer(broker, pairing) as phone:
        cmd_id, topic, payload = phone.seal_command("virtual.lamp", "turn_on")
        await phone.publish_raw(topic, payload)  # the hub is down
        hub2 = make_hub(cloud_section(broker), name="later.yaml")
        async with hub2:
            await phone.wait_for(lambda: cmd_id in phone.answers)
            assert phone.answers[cmd_id]["ok"] is True
            assert hub2.states.value("virtual.lamp", "on") is True
