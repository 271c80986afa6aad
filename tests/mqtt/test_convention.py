"""More of the convention through a real mosquitto: availability_mode all/any/latest, a
json_attributes_template, a device grouped by its `connections` only, a custom discovery
prefix and client id as the broker sees them with the birth message that makes devices
announce again, and the persistent session (a QoS 1 message sent while the hub was away
arrives once it is back)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

from hub.clock import ManualClock
from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    mqtt_section,
    publish_json,
    status,
    subscribed,
    wait_until,
)


async def adopt_all(hub, api_client, count: int) -> dict[str, str]:
    """Adopt `count` discovered devices; discovered name -> device id."""
    items = await wait_until(lambda: len(mqtt_discovered(hub)) == count and mqtt_discovered(hub))
    out = {}
    for item in items:
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        assert r.status == 201, await r.text()
        out[item.name] = (await r.json())["device"]["id"]
    return out


async def test_availability_modes_through_the_broker(hub, broker, api_client) -> None:
    """Three devices, each on the same two availability topics (the second with its own
    payloads), in modes all, any and latest."""
    avty = [{"t": "av/1"}, {"t": "av/2", "pl_avail": "up", "pl_not_avail": "down"}]
    async with device_client(broker) as dev:
        for mode in ("all", "any", "latest"):
            await publish_json(dev, f"homeassistant/switch/{mode}/config", {
                "name": None, "cmd_t": f"{mode}/set", "avty": avty, "avty_mode": mode,
                "dev": {"ids": f"dev-{mode}", "name": mode}})
        ids = await adopt_all(hub, api_client, 3)
        await wait_until(lambda: subscribed(hub, "av/1", "av/2"))

        def seen() -> tuple[bool, bool, bool]:
            return tuple(hub.states.available(ids[m]) for m in ("all", "any", "latest"))

        # nothing heard yet: all needs every topic, any and latest need one `available`
        assert seen() == (False, False, False)
        steps = [("av/1", "online", (False, True, True)),   # av/2 not heard yet
                 ("av/2", "down", (False, True, False)),
                 ("av/2", "up", (True, True, True)),
                 ("av/1", "offline", (False, True, False)),
                 ("av/2", "down", (False, False, False)),
                 ("av/1", "online", (False, True, True))]
        for topic, payload, expected in steps:
            await dev.publish(topic, payload, qos=1)
            try:
                await wait_until(lambda e=expected: seen() == e)
            except AssertionError:
                raise AssertionError((topic, payload, expected, seen())) from None


async def test_json_attributes_template(hub, broker, api_client) -> None:
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/sensor/ja1/rssi/config", {
            "name": "RSSI", "stat_t": "ja1/state", "val_tpl": "{{ value_json.rssi }}",
            "unit_of_meas": "dBm", "json_attr_t": "ja1/state",
            "json_attr_tpl": "{{ value_json.info | to_json }}",
            "dev": {"ids": "ja1", "name": "Gateway"}})
        ids = await adopt_all(hub, api_client, 1)
        device_id = ids["Gateway"]
        assert "rssi_attributes" in hub.devices.get(device_id).attributes
        await wait_until(lambda: subscribed(hub, "ja1/state"))
        await publish_json(dev, "ja1/state", {"rssi": -61, "noise": 3,
                                              "info": {"fw": "1.4", "channel": 11}})
        await wait_until(lambda: hub.states.value(device_id, "rssi") == -61)
        assert hub.states.value(device_id, "rssi_attributes") == {"fw": "1.4", "channel": 11}
        # a template whose result is not a JSON object: refused and counted, value kept
        refused = status(hub)["stats"]["refused_state"]
        await publish_json(dev, "ja1/state", {"rssi": -60, "info": [1, 2]})
        await wait_until(lambda: status(hub)["stats"]["refused_state"] == refused + 1)
        assert hub.states.value(device_id, "rssi_attributes") == {"fw": "1.4", "channel": 11}


async def test_grouped_by_connections_only(hub, broker, api_client) -> None:
    """Entities whose device block has no identifiers, only a MAC connection, are one
    device, with that MAC."""
    block = {"cns": [["mac", "AA-BB-CC-00-11-33"]], "name": "Bare plug"}
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/switch/bare/relay/config", {
            "name": "Relay", "cmd_t": "bare/relay/set", "dev": block})
        await publish_json(dev, "homeassistant/sensor/bare/power/config", {
            "name": "Power", "stat_t": "bare/power", "unit_of_meas": "W",
            "dev": {"cns": [["mac", "aa:bb:cc:00:11:33"]]}})
        item = (await wait_until(lambda: [d for d in mqtt_discovered(hub)
                                          if len(d.data["entities"]) == 2]))[0]
        assert len(mqtt_discovered(hub)) == 1
        assert (item.name, item.mac) == ("Bare plug", "aa:bb:cc:00:11:33")
        ids = await adopt_all(hub, api_client, 1)
        device = hub.devices.get(ids["Bare plug"])
        assert device.mac == "aa:bb:cc:00:11:33"
        assert set(device.attributes) == {"relay", "power"}


async def test_custom_prefix_client_id_and_birth_message(broker, make_hub) -> None:
    """With discovery_prefix `myhome` and client_id `uone-test-hub`: the broker sees that
    client, with a persistent session (clean session 0); the hub announces itself on
    `myhome/status`, and a device that announces only when it hears that (as Zigbee2MQTT
    and Tasmota do, with non-retained configs) is discovered. `homeassistant/...` is not
    read."""
    config = {"name": "Relay", "cmd_t": "z/relay/set", "dev": {"ids": "z1", "name": "Birth"}}
    heard: list[str] = []
    async with device_client(broker) as dev:
        await dev.subscribe("myhome/status", qos=1)
        await publish_json(dev, "homeassistant/switch/other/config", {
            "cmd_t": "o/set", "dev": {"ids": "other", "name": "Other prefix"}})

        async def announce_on_birth() -> None:
            async for message in dev.messages:
                heard.append(message.payload.decode())
                if message.payload == b"online":
                    await publish_json(dev, "myhome/switch/z1/config", config, retain=False)

        task = asyncio.create_task(announce_on_birth())
        try:
            section = mqtt_section(broker, discovery_prefix="myhome",
                                   client_id="uone-test-hub")
            async with make_hub(section) as hub:
                items = await wait_until(lambda: mqtt_discovered(hub))
                assert [i.name for i in items] == ["Birth"]
                assert heard == ["online"]
                assert subscribed(hub, "myhome/+/+/config", "myhome/+/+/+/config")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    connected = re.findall(r"New client connected from \S+ as (\S+) \((p\d), (c\d)",
                           broker.log_text())
    assert ("uone-test-hub", "p2", "c0") in connected  # MQTT 3.1.1, persistent session


async def test_persistent_session_gets_what_was_sent_while_away(broker, make_hub) -> None:
    """The broker keeps the hub's session (clean session off): a QoS 1 message published
    while the hub's connection is down is delivered when it reconnects. The hub runs on a
    ManualClock, so it stays away (backing off) until the test moves time."""
    clock = ManualClock()
    async with make_hub(mqtt_section(broker), clock=clock) as hub, \
            device_client(broker) as dev:
        await wait_until(lambda: status(hub)["state"] == "connected")
        await publish_json(dev, "homeassistant/sensor/ps1/t/config", {
            "name": "T", "stat_t": "ps1/t", "unit_of_meas": "°C",
            "dev": {"ids": "ps1", "name": "Cellar"}})
        item = (await wait_until(lambda: mqtt_discovered(hub)))[0]
        device_id = (await hub.discovery.adopt(item.id, "Cellar")).id
        await wait_until(lambda: subscribed(hub, "ps1/t"))
        await dev.publish("ps1/t", "10", qos=1)
        await wait_until(lambda: hub.states.value(device_id, "t") == 10)

        connection = hub.integrations.instance("mqtt").connection
        connects = connection.connects
        # the network drops under the hub (no DISCONNECT: the broker keeps the session)
        connection.client._client.socket().shutdown(socket.SHUT_RDWR)
        await wait_until(lambda: status(hub)["state"] == "waiting")
        assert hub.states.available(device_id) is False
        # sent while the hub is away, not retained: only the kept session can bring it
        await dev.publish("ps1/t", "11", qos=1, retain=False)
        await clock.advance(5)  # past the backoff: it reconnects
        await wait_until(lambda: hub.states.value(device_id, "t") == 11)
        await wait_until(lambda: hub.states.available(device_id) is True)
        assert connection.connects == connects + 1
        assert status(hub)["stats"]["unknown_topic"] == 0
