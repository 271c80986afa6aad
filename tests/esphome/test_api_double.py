"""What the Linux firmware cannot show, against the native-API double (api_double.py) and
real aioesphomeapi: the encryption key (Noise handshake, vault, refusal), Bluetooth proxies
feeding the one BLE pipeline (BTHome through a proxy, dedupe with the local adapter, slots,
a proxy lost), bad input (unknown entity types, non-finite values, a flood, a stalled
handshake) and a device answering under an adopted name with another MAC.

The mDNS side is the hub's own ingest (`handle_mdns` with the TXT a real device sends); the
mDNS path itself is exercised against real firmware and real zeroconf in test_firmware.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aioesphomeapi import api_pb2 as pb

from hub import logsetup
from hub.discovery.models import MdnsService, mdns_id
from hub.hub import Hub
from tests.discovery import bthome_adv
from tests.discovery.util import wait_for
from tests.esphome import api_double
from tests.esphome.devices import SERVICE_TYPE, txt_for

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(os.urandom(32)).decode()
MAC = "0c:8b:95:11:22:33"
DEVICE_ID = "esphome.0c8b95112233"


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"discovery": {"ble": {"unavailable_after": 2.0}},
            "integrations": {"virtual": {"devices": []},
                             "esphome": {"connect_timeout": 2.0},
                             "bthome": {}}}


@pytest.fixture
async def device() -> AsyncIterator[api_double.ApiDevice]:
    d = api_double.ApiDevice(key=KEY)
    await d.start()
    yield d
    await d.stop()


def announce(hub: Hub, d: api_double.ApiDevice, *, encrypted: bool | None = None,
             mac: str | None = None) -> str:
    """The device's `_esphomelib._tcp` service as the hub's browser resolves it."""
    enc = d.key is not None if encrypted is None else encrypted
    name = f"{d.name}.{SERVICE_TYPE}"
    hub.discovery.handle_mdns(MdnsService(
        SERVICE_TYPE, name, f"{d.name}.local.", (d.host,), d.port,
        txt_for(d.name.title(), mac or d.mac, encrypted=enc)))
    return mdns_id(SERVICE_TYPE, name)


async def adopt(client: Any, discovery_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/discovered/{discovery_id}/adopt", json=body)
    return resp.status, await resp.json()


async def test_encryption_key_checked_kept_in_the_vault_and_never_shown(
        api_client: Any, hub: Hub, device: api_double.ApiDevice,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    discovery_id = announce(hub, device)
    item = (await (await api_client.get(f"/api/discovered/{discovery_id}")).json())
    assert item["data"]["needs_key"] is True and item["mac"] == MAC

    status, body = await adopt(api_client, discovery_id)  # no key
    assert status == 400 and body["error"]["field"] == "credentials.encryption_key"
    assert "encryption key" in body["error"]["message"]
    status, body = await adopt(api_client, discovery_id,
                               credentials={"encryption_key": "c2hvcnQ="})  # 5 bytes
    assert status == 400 and "32-byte" in body["error"]["message"]
    status, body = await adopt(api_client, discovery_id,
                               credentials={"encryption_key": OTHER_KEY})  # wrong key
    assert status == 400 and body["error"]["message"] == (
        "the device refused this encryption key")
    item = (await (await api_client.get(f"/api/discovered/{discovery_id}")).json())
    assert item["data"]["key_error"] == "the device refused this key"
    assert item["state"] == "new"
    ctx = hub.integrations.context("esphome")
    assert ctx is not None and await ctx.device_secret_names() == []
    status, body = await adopt(api_client, discovery_id, credentials={"password": "x"})
    assert status == 400 and body["error"]["field"] == "credentials.password"

    status, body = await adopt(api_client, discovery_id, name="Hall proxy",
                               credentials={"encryption_key": KEY})
    assert status == 201, body
    assert body["device"]["id"] == DEVICE_ID and "key_error" not in body["discovered"]["data"]
    assert (await ctx.device_secret(f"key:{MAC.upper()}"))["encryption_key"] == KEY

    async def connected() -> bool:
        return hub.states.value(DEVICE_ID, "temperature") == 21.0

    await wait_for(connected, within=10)
    resp = await api_client.post(f"/api/devices/{DEVICE_ID}/commands",
                                 json={"command": "turn_on"})
    assert resp.status < 300, await resp.text()
    await wait_for(_now(lambda: device.switch_on), within=5)
    # the key is nowhere the owner or a log can read it
    answers = [await (await api_client.get(path)).text() for path in (
        "/api/discovered", f"/api/devices/{DEVICE_ID}", "/api/health",
        f"/api/devices/{DEVICE_ID}/state")]
    assert all(KEY not in a and OTHER_KEY not in a for a in answers)
    assert KEY not in caplog.text and OTHER_KEY not in caplog.text
    config_text = await asyncio.to_thread(hub.loaded.path.read_text)
    assert KEY not in config_text

    # the device gets a new key: a clear error on the item, backoff, no crash loop
    await device.stop()
    device.key = OTHER_KEY
    await device.start_again()
    announce(hub, device)

    async def refused() -> bool:
        got = await (await api_client.get(f"/api/discovered/{discovery_id}")).json()
        return got["data"].get("key_error") == "the device refused the encryption key"

    await wait_for(refused, within=20)
    assert hub.states.available(DEVICE_ID) is False
    assert hub.integrations.status()["esphome"]["state"] == "loaded"
    assert hub.integrations.status()["esphome"]["restarts"] == 0
    # re-adopting with the new key re-keys the same device
    status, body = await adopt(api_client, discovery_id, credentials={"encryption_key":
                                                                      OTHER_KEY})
    assert status == 201 and body["device"]["id"] == DEVICE_ID
    await wait_for(_now(lambda: hub.states.available(DEVICE_ID) is True), within=10)
    assert (await ctx.device_secret(f"key:{MAC.upper()}"))["encryption_key"] == OTHER_KEY


async def test_plaintext_device_given_a_key_is_refused_clearly(
        api_client: Any, hub: Hub) -> None:
    d = api_double.ApiDevice(key=None)
    await d.start()
    try:
        discovery_id = announce(hub, d)
        status, body = await adopt(api_client, discovery_id,
                                   credentials={"encryption_key": KEY})
        assert status == 400 and "does not use encryption" in body["error"]["message"]
        # the TXT said "not encrypted" but the device wants a key: the same clear refusal
        d.key = KEY
        await d.stop()
        await d.start_again()
        status, body = await adopt(api_client, announce(hub, d, encrypted=False))
        assert status == 400 and body["error"]["field"] == "credentials.encryption_key"
    finally:
        await d.stop()


async def test_a_stalled_handshake_answers_503_and_nothing_is_stored(
        api_client: Any, hub: Hub) -> None:
    d = api_double.ApiDevice(key=None, stall=True)
    await d.start()
    try:
        status, body = await adopt(api_client, announce(hub, d))
        assert status == 503 and "timed out" in body["error"]["message"]
        assert hub.devices.find(DEVICE_ID) is None
    finally:
        await d.stop()


async def test_bad_input_from_a_device_is_counted_never_raised(
        api_client: Any, hub: Hub) -> None:
    d = api_double.ApiDevice(key=None, unknown_entity=True)
    await d.start()
    try:
        discovery_id = announce(hub, d)
        status, body = await adopt(api_client, discovery_id)
        assert status == 201, body
        assert set(body["device"]["attributes"]) == {"relay", "temperature"}

        async def connected() -> bool:
            return d.connected == 1 and hub.states.value(DEVICE_ID, "temperature") == 21.0

        await wait_for(connected, within=10)
        item = await (await api_client.get(f"/api/discovered/{discovery_id}")).json()
        assert item["data"]["unsupported_entities"] == ["camera: Doorbell"]
        malformed = hub.discovery.stats.malformed
        # NaN, a state for a key never announced, then a flood: the last value wins
        await d.push_states([pb.SensorStateResponse(key=api_double.SENSOR_KEY,
                                                    state=math.nan),
                             pb.SwitchStateResponse(key=999, state=True)])

        async def nan_dropped() -> bool:
            return hub.states.value(DEVICE_ID, "temperature", 0) is None

        await wait_for(nan_dropped, within=5)
        assert hub.discovery.stats.malformed >= malformed + 2
        await d.push_states([pb.SensorStateResponse(key=api_double.SENSOR_KEY,
                                                    state=float(i % 50))
                             for i in range(5000)] + [
            pb.SensorStateResponse(key=api_double.SENSOR_KEY, state=23.5)])

        async def settled() -> bool:
            return hub.states.value(DEVICE_ID, "temperature") == 23.5

        await wait_for(settled, within=10)
        assert d.connected == 1  # the flood did not cost the connection
        assert hub.integrations.status()["esphome"]["restarts"] == 0
    finally:
        await d.stop()


async def test_out_of_range_values_are_clamped_and_counted(api_client: Any, hub: Hub) -> None:
    """A brightness above 1 and a cover position below 0 (fractions on the wire): clamped
    to the range the attribute announces, each counted as malformed, nothing raised."""
    d = api_double.ApiDevice(key=None, light_and_cover=True)
    await d.start()
    try:
        status, body = await adopt(api_client, announce(hub, d))
        assert status == 201, body
        assert {"lamp", "lamp_brightness", "blind", "blind_position"} <= set(
            body["device"]["attributes"])
        await wait_for(_now(lambda: d.connected == 1 and hub.states.available(DEVICE_ID)),
                       within=10)
        await d.push_states([pb.LightStateResponse(key=api_double.LIGHT_KEY, state=True,
                                                   brightness=0.5),
                             pb.CoverStateResponse(key=api_double.COVER_KEY, position=0.5)])
        await wait_for(_now(lambda: hub.states.value(DEVICE_ID, "blind_position") == 50),
                       within=5)
        assert hub.states.value(DEVICE_ID, "lamp_brightness") == 128
        malformed = hub.discovery.stats.malformed
        await d.push_states([pb.LightStateResponse(key=api_double.LIGHT_KEY, state=True,
                                                   brightness=1.7),
                             pb.CoverStateResponse(key=api_double.COVER_KEY, position=-0.2)])

        async def clamped() -> bool:
            return (hub.states.value(DEVICE_ID, "lamp_brightness") == 255
                    and hub.states.value(DEVICE_ID, "blind_position") == 0)

        await wait_for(clamped, within=5)
        assert hub.states.value(DEVICE_ID, "blind") == "closed"
        assert hub.discovery.stats.malformed == malformed + 2
        state = await (await api_client.get(f"/api/devices/{DEVICE_ID}/state")).json()
        assert state["attributes"]["lamp_brightness"]["value"] == 255
        assert state["attributes"]["blind_position"]["value"] == 0
        assert d.connected == 1
        assert hub.integrations.status()["esphome"]["restarts"] == 0
    finally:
        await d.stop()


async def test_same_name_other_mac_is_flagged_not_merged(api_client: Any, hub: Hub) -> None:
    d = api_double.ApiDevice(key=None)
    await d.start()
    try:
        discovery_id = announce(hub, d)
        assert (await adopt(api_client, discovery_id))[0] == 201
        await wait_for(_now(lambda: hub.states.available(DEVICE_ID) is True), within=10)
        # another board flashed with the same YAML name takes its place on the network
        await d.stop()
        d.mac = "0C:8B:95:AA:BB:CC"
        await d.start_again()
        announce(hub, d)

        async def flagged() -> dict[str, Any] | None:
            got = await (await api_client.get(f"/api/discovered/{discovery_id}")).json()
            return got if "identity_conflict" in got["data"] else None

        item = await wait_for(flagged, within=20)
        assert "0c:8b:95:aa:bb:cc" in item["data"]["identity_conflict"].lower()
        assert hub.states.available(DEVICE_ID) is False
        assert hub.devices.get(DEVICE_ID).mac == MAC  # not silently taken as this device
        assert hub.devices.find("esphome.0c8b95aabbcc") is None
    finally:
        await d.stop()


async def test_encrypted_device_answering_with_another_mac_is_flagged_and_backs_off(
        api_client: Any, hub: Hub, device: api_double.ApiDevice,
        caplog: pytest.LogCaptureFixture) -> None:
    """With a key the MAC is checked in the Noise hello (aioesphomeapi's expected_mac):
    another board with the same name and key is refused there (BadMACAddressAPIError). It
    is flagged as the mDNS path flags it, retried on the longest backoff only, and the
    adopted board is taken back when it announces itself again."""
    caplog.set_level(logging.INFO, logger="integrations.esphome")
    caplog.set_level(logging.DEBUG, logger="aioesphomeapi.reconnect_logic")  # handler: last
    discovery_id = announce(hub, device)
    status, _ = await adopt(api_client, discovery_id, credentials={"encryption_key": KEY})
    assert status == 201
    await wait_for(_now(lambda: hub.states.available(DEVICE_ID) is True), within=10)
    # the same YAML (name and key) on another board, at the same address; its mDNS record
    # is not heard (the TXT would flag it too): the connection alone must tell
    await device.stop()
    device.mac = "0C:8B:95:AA:BB:CC"
    await device.start_again()

    async def flagged() -> dict[str, Any] | None:
        got = await (await api_client.get(f"/api/discovered/{discovery_id}")).json()
        return got if "identity_conflict" in got["data"] else None

    item = await wait_for(flagged, within=20)
    assert "0c:8b:95:aa:bb:cc" in item["data"]["identity_conflict"].lower()
    assert hub.states.available(DEVICE_ID) is False
    link = hub.integrations.status()["esphome"]["detail"]["uone-proxy"]
    assert "0c:8b:95:aa:bb:cc" in link["conflict"].lower() and not link["connected"]
    resp = await api_client.post(f"/api/devices/{DEVICE_ID}/commands",
                                 json={"command": "turn_on"})
    assert resp.status == 503 and "another device" in (await resp.json())["error"]["message"]
    assert hub.devices.get(DEVICE_ID).mac == MAC
    assert hub.devices.find("esphome.0c8b95aabbcc") is None
    # the next attempt waits aioesphomeapi's longest backoff (as after a refused key), not
    # its short first steps: read from the delay it schedules, not measured
    def after_refusal() -> list[str] | None:
        lines = [r.getMessage() for r in caplog.records
                 if r.name == "aioesphomeapi.reconnect_logic"]
        refused = [i for i, m in enumerate(lines) if "BadMACAddressAPIError" in m]
        waits = [m for m in lines[refused[0]:] if m.startswith("Retrying")] if refused else []
        return waits or None

    waits = await wait_for(_now(after_refusal), within=5)
    assert waits[0].endswith("in 60.00 seconds"), waits
    conflicts = [r for r in caplog.records if r.name == "integrations.esphome"
                 and "another device answers" in r.getMessage()]
    assert len(conflicts) == 1

    # the adopted board is back and announces itself: connected now, the flag cleared
    await device.stop()
    device.mac = MAC.upper()
    await device.start_again()
    announce(hub, device)
    await wait_for(_now(lambda: hub.states.available(DEVICE_ID) is True), within=10)
    got = await (await api_client.get(f"/api/discovered/{discovery_id}")).json()
    assert "identity_conflict" not in got["data"]
    resp = await api_client.post(f"/api/devices/{DEVICE_ID}/commands",
                                 json={"command": "turn_on"})
    assert resp.status < 300
    await wait_for(_now(lambda: device.switch_on), within=5)


@pytest.fixture
def hub_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The daemon's logging (hub.logsetup.setup_logging at info), captured by caplog;
    the root handlers and the library loggers' levels restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logsetup.QUIET}
    logsetup.setup_logging("info")
    root.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)


async def test_a_loss_and_a_recovery_are_logged_once_each(
        api_client: Any, hub: Hub, hub_logging: pytest.LogCaptureFixture) -> None:
    """Logged as the daemon logs (setup_logging): one line when the connection is lost and
    one when it is back, however many attempts fail in between; aioesphomeapi's own
    reconnect lines (a WARNING per reconnect cycle, INFO per disconnect and recovery) are
    kept out."""
    d = api_double.ApiDevice(key=None)
    await d.start()
    try:
        assert (await adopt(api_client, announce(hub, d)))[0] == 201
        await wait_for(_now(lambda: hub.states.available(DEVICE_ID) is True), within=10)
        hub_logging.clear()
        # the device's API closes every connection at once, several attempts in a row (an
        # announcement of the device starts each one at once instead of after the backoff)
        await d.stop()
        d.refuse = True
        attempted = d.attempts
        await d.start_again()
        for failed in range(1, 7):
            async def another_attempt(want: int = failed) -> bool:
                announce(hub, d)
                return d.attempts >= attempted + want

            await wait_for(another_attempt, within=10)
        assert hub.states.available(DEVICE_ID) is False
        d.refuse = False

        async def back() -> bool:
            announce(hub, d)
            return hub.states.available(DEVICE_ID) is True

        await wait_for(back, within=10)
        assert d.attempts >= attempted + 7  # six refused, one that took
        lines = [(r.name, r.levelname, r.getMessage()) for r in hub_logging.records
                 if r.levelno >= logging.INFO and (r.name.startswith("aioesphomeapi")
                                                   or r.name == "integrations.esphome")]
        assert lines == [
            ("integrations.esphome", "WARNING",
             "uone-proxy disconnected; reconnecting with backoff"),
            ("integrations.esphome", "INFO", "uone-proxy is connected again")], lines
    finally:
        await d.stop()


async def test_deleting_the_device_ends_its_connection_and_deletes_its_key(
        api_client: Any, hub: Hub, device: api_double.ApiDevice) -> None:
    status, _ = await adopt(api_client, announce(hub, device),
                            credentials={"encryption_key": KEY})
    assert status == 201
    await wait_for(_now(lambda: device.connected == 1), within=10)
    ctx = hub.integrations.context("esphome")
    assert ctx is not None and await ctx.device_secret_names() == [f"key:{MAC.upper()}"]
    resp = await api_client.delete(f"/api/devices/{DEVICE_ID}")
    assert resp.status < 300, await resp.text()
    await wait_for(_now(lambda: device.connected == 0), within=10)
    assert await ctx.device_secret_names() == []
    assert hub.devices.find(DEVICE_ID) is None


async def test_after_a_restart_the_device_reconnects_with_what_adoption_stored(
        config_factory: Any, hub_config: dict[str, Any]) -> None:
    from hub.hub import Hub as HubClass

    d = api_double.ApiDevice(key=KEY)
    await d.start()
    config = config_factory(hub_config)
    try:
        async with HubClass(config) as first:
            entry = await first.discovery.adopt(announce(first, d),
                                                credentials={"encryption_key": KEY})
            assert entry.id == DEVICE_ID
            await wait_for(_now(lambda: first.states.available(DEVICE_ID) is True))
        # a new hub on the same data: nothing announced, the device is back by itself
        async with HubClass(config) as second:
            await wait_for(_now(lambda: second.states.available(DEVICE_ID) is True),
                           within=15)
            await second.integrations.command(DEVICE_ID, "turn_on", {})
            await wait_for(_now(lambda: d.switch_on), within=5)
            assert d.connected == 1
    finally:
        await d.stop()


class TestBluetoothProxy:
    """Advertisement batches from a proxy (recorded BTHome payloads) through aioesphomeapi
    into the hub's one pipeline, beside the local adapter's path."""

    SENSOR = "A4:C1:38:00:11:22"

    async def _adopted_proxy(self, api_client: Any, hub: Hub,
                             d: api_double.ApiDevice) -> None:
        assert (await adopt(api_client, announce(hub, d)))[0] == 201

        async def subscribed() -> bool:
            sources = (await (await api_client.get("/api/health")).json())[
                "discovery"]["ble_sources"]
            src = sources.get("esphome:uone-proxy")
            return bool(src and src["state"] == "connected" and src["slots_free"] == 3)

        await wait_for(subscribed, within=10)

    @staticmethod
    async def _connectivity(api_client: Any, device_id: str) -> Any:
        return (await (await api_client.get(f"/api/devices/{device_id}")).json())[
            "connectivity"]

    @staticmethod
    async def _source(api_client: Any) -> dict[str, Any]:
        return (await (await api_client.get("/api/health")).json())["discovery"][
            "ble_sources"]["esphome:uone-proxy"]

    async def test_bthome_through_a_proxy_with_dedupe_best_signal_and_loss(
            self, api_client: Any, hub: Hub) -> None:
        d = api_double.ApiDevice(key=None, proxy=True, slots=(3, 3))
        await d.start()
        try:
            await self._adopted_proxy(api_client, hub, d)
            payload = bthome_adv.plain(bthome_adv.objects(packet_id=1, temperature=22.5,
                                                          humidity=40.0))
            raw = api_double.bthome_advertising_data("Attic TH", payload)
            await d.advertise([(self.SENSOR, -80, raw),
                               ("11:22:33:44:55:66", -60, b"\x02\x01\x06")])  # unmatched

            async def found() -> dict[str, Any] | None:
                body = await (await api_client.get("/api/discovered?source=ble")).json()
                return next((x for x in body["discovered"] if x["integration"] == "bthome"),
                            None)

            item = await wait_for(found, within=10)
            assert item["ble_source"] == "esphome:uone-proxy" and item["rssi"] == -80
            assert item["name"].startswith("Attic TH") and item["mac"] == self.SENSOR.lower()
            status, body = await adopt(api_client, item["id"])
            assert status == 201
            sensor_id = body["device"]["id"]
            payload = bthome_adv.plain(bthome_adv.objects(packet_id=2, temperature=23.0,
                                                          humidity=41.0))
            await d.advertise([(self.SENSOR, -80,
                                api_double.bthome_advertising_data("Attic TH", payload))])

            async def reading() -> bool:
                return hub.states.value(sensor_id, "temperature") == 23.0

            await wait_for(reading, within=10)
            # the device shows who hears it and how well; the (cached) list leaves it out
            assert await self._connectivity(api_client, sensor_id) == {
                "ble_source": "esphome:uone-proxy", "rssi": -80}
            listed = (await (await api_client.get("/api/devices")).json())["devices"]
            assert "connectivity" not in next(x for x in listed if x["id"] == sensor_id)
            dispatched = hub.discovery.stats.dispatched
            # the local adapter hears the same advertisement, weaker: one sighting, the
            # proxy stays the best source; then stronger: the local adapter wins
            args = ("Attic TH", (), {bthome_adv.BTHOME_UUID: payload}, {})
            hub.discovery.handle_advertisement(self.SENSOR, args[0], -90, *args[1:])
            assert hub.discovery.stats.dispatched == dispatched  # a duplicate
            got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
            assert (got["ble_source"], got["rssi"]) == ("esphome:uone-proxy", -80)
            hub.discovery.handle_advertisement(self.SENSOR, args[0], -50, *args[1:])
            got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
            assert (got["ble_source"], got["rssi"]) == ("local", -50)
            assert await self._connectivity(api_client, sensor_id) == {
                "ble_source": "local", "rssi": -50}

            # the proxy goes away: lost in health like an adapter, its readings dropped
            await d.stop()

            async def lost() -> dict[str, Any] | None:
                src = (await (await api_client.get("/api/health")).json())[
                    "discovery"]["ble_sources"]["esphome:uone-proxy"]
                return src if src["state"] == "lost" else None

            src = await wait_for(lost, within=10)
            assert src["losses"] == 1 and src["slots_free"] is None
            assert src["advertisements"] == 3
            # back: connected again, streaming again
            await d.start_again()
            announce(hub, d)

            async def back() -> bool:
                s = (await (await api_client.get("/api/health")).json())[
                    "discovery"]["ble_sources"]["esphome:uone-proxy"]
                return s["state"] == "connected"

            await wait_for(back, within=20)
        finally:
            await d.stop()


    async def test_slots_and_a_lost_proxy_handing_over_or_going_unavailable(
            self, api_client: Any, hub: Hub) -> None:
        """Connection slots reach health as the proxy reports them; when the proxy goes,
        another source that heard the sensor takes over at once (item and device), and once
        nobody hears it the sensor turns unavailable after `unavailable_after` (2 s here)."""
        d = api_double.ApiDevice(key=None, proxy=True, slots=(3, 3))
        await d.start()
        try:
            await self._adopted_proxy(api_client, hub, d)
            assert (await self._source(api_client))["slots_limit"] == 3
            await d.set_slots(1, 3, allocated=(0xA4C138001122, 0xA4C138003344))

            async def slots(free: int) -> bool:
                src = await self._source(api_client)
                return (src["slots_free"], src["slots_limit"]) == (free, 3)

            await wait_for(lambda: slots(1), within=5)
            await d.set_slots(3, 3)
            await wait_for(lambda: slots(3), within=5)

            payload = bthome_adv.plain(bthome_adv.objects(packet_id=1, temperature=21.0))
            await d.advertise([(self.SENSOR, -60,
                                api_double.bthome_advertising_data("Attic TH", payload))])

            async def found() -> dict[str, Any] | None:
                body = await (await api_client.get("/api/discovered?source=ble")).json()
                return next((x for x in body["discovered"] if x["integration"] == "bthome"),
                            None)

            item = await wait_for(found, within=10)
            status, body = await adopt(api_client, item["id"])
            assert status == 201
            sensor_id = body["device"]["id"]
            payload = bthome_adv.plain(bthome_adv.objects(packet_id=2, temperature=21.5))
            await d.advertise([(self.SENSOR, -60,
                                api_double.bthome_advertising_data("Attic TH", payload))])
            await wait_for(_now(lambda: hub.states.value(sensor_id, "temperature") == 21.5),
                           within=10)
            # the local adapter hears it too, weaker: the proxy stays the best source
            args = ("Attic TH", (), {bthome_adv.BTHOME_UUID: payload}, {})
            hub.discovery.handle_advertisement(self.SENSOR, args[0], -85, *args[1:])
            assert await self._connectivity(api_client, sensor_id) == {
                "ble_source": "esphome:uone-proxy", "rssi": -60}

            # the proxy goes: the local adapter takes over at once, before it hears the
            # sensor again
            await d.stop()

            async def lost() -> bool:
                return (await self._source(api_client))["state"] == "lost"

            await wait_for(lost, within=10)
            got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
            assert (got["ble_source"], got["rssi"]) == ("local", -85)
            assert await self._connectivity(api_client, sensor_id) == {
                "ble_source": "local", "rssi": -85}
            assert (await self._source(api_client))["slots_free"] is None

            # nobody hears it any more: unavailable once `unavailable_after` has passed
            async def unavailable() -> bool:
                return hub.states.available(sensor_id) is False

            await wait_for(unavailable, within=10)
            got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
            assert got["present"] is False
            # heard again (by the adapter): available again
            hub.discovery.handle_advertisement(self.SENSOR, args[0], -70, *args[1:])
            await wait_for(_now(lambda: hub.states.available(sensor_id) is True), within=5)
        finally:
            await d.stop()


def _now(fn: Any) -> Any:
    """`wait_for` predicate from a plain function, evaluated at every poll."""
    async def check() -> Any:
        return fn()

    return check
