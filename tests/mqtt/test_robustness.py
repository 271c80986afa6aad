"""Bad input through a real broker: every kind is refused and counted (and the counts shown
in GET /api/health), nothing crashes, what is already known is kept; a hostile template marks
only its entity as failing, with the reason shown in the API; a flood from one device is cut
at its rate."""

from __future__ import annotations

import json

from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    publish_json,
    status,
    subscribed,
    wait_until,
)

SENSOR = {"name": "T", "uniq_id": "s1-t", "stat_t": "s1/t", "unit_of_meas": "°C",
          "dev_cla": "temperature", "dev": {"ids": "s1", "name": "Sensor one"}}


async def test_bad_input_is_counted_and_harmless(hub, broker, api_client) -> None:
    async with device_client(broker) as dev:
        # a key the hub does not know is ignored (and counted); the rest of the config holds
        await publish_json(dev, "homeassistant/sensor/s1/t/config",
                           {**SENSOR, "avty_t": "s1/avail", "frobnicate": True})
        await dev.publish("s1/avail", "online", qos=1, retain=True)
        await dev.publish("s1/t", "20.5", qos=1, retain=True)
        item = (await wait_until(lambda: mqtt_discovered(hub)))[0]
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        device_id = (await r.json())["device"]["id"]
        await wait_until(lambda: hub.states.value(device_id, "t") == 20.5
                         and hub.states.available(device_id) is True)

        garbage = [
            ("homeassistant/switch/x/config", b"{not json"),
            ("homeassistant/switch/y/config", b"[1,2,3]"),
            ("homeassistant/toaster/z/config", b"{}"),
            ("homeassistant/switch/w/config", json.dumps({"cmd_t": 7}).encode()),
            ("homeassistant/switch/v/config", b"{" + b" " * (1024 * 1024) + b"}"),
            ("s1/t", b"hot"),                       # a state that does not parse
            ("s1/t", b"x" * (1024 * 1024)),          # a 1 MB state
            ("s1/avail", b"maybe"),                  # neither online nor offline
        ]
        for topic, payload in garbage:
            await dev.publish(topic, payload, qos=1)
        await wait_until(lambda: status(hub)["stats"]["oversize"] == 2
                         and status(hub)["stats"]["refused_config"] == 4
                         and status(hub)["stats"]["refused_state"] == 1
                         and status(hub)["stats"]["bad_availability"] == 1)
        # still connected, the known value and availability kept, the device unchanged
        assert status(hub)["state"] == "connected"
        assert hub.states.value(device_id, "t") == 20.5
        assert hub.states.available(device_id) is True
        assert [d.name for d in mqtt_discovered(hub)] == ["Sensor one"]
        await dev.publish("s1/t", "21", qos=1)
        await wait_until(lambda: hub.states.value(device_id, "t") == 21)

        # the owner sees the refusals in /api/health, counted by kind (and nothing of the
        # devices: no topics, names or values in the public answer)
        r = await api_client.get("/api/health")
        body = await r.json()
        mqtt = body["integration_details"]["mqtt"]
        assert body["status"] == "ok" and "problems" not in body
        assert mqtt["state"] == "connected" and mqtt["connected"] is True
        assert mqtt["broker"] == f"mqtt://127.0.0.1:{broker.plain_port}"
        assert mqtt["last_error"] is None and "problem" not in mqtt
        assert (mqtt["devices"], mqtt["adopted"]) == (1, 1)
        assert mqtt["refusals"] == {
            "refused_config": 4, "unknown_component": 1, "ignored_keys": 1, "too_many": 0,
            "refused_state": 1, "bad_availability": 1, "oversize": 2, "flood_dropped": 0,
            "template_errors": 0}
        text = await r.text()
        assert "s1/" not in text and "Sensor one" not in text and "20.5" not in text


async def test_hostile_template_marks_only_its_entity(hub, broker, api_client) -> None:
    hostile = {**SENSOR, "uniq_id": "s1-h", "name": "H", "stat_t": "s1/h",
               "val_tpl": "{% for i in range(100000) %}{% for j in range(100000) %}"
                          "{% endfor %}{% endfor %}"}
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/sensor/s1/t/config", SENSOR)
        await publish_json(dev, "homeassistant/sensor/s1/h/config", hostile)
        item = (await wait_until(lambda: [d for d in mqtt_discovered(hub)
                                          if len(d.data["entities"]) == 2]))[0]
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        device_id = (await r.json())["device"]["id"]
        await wait_until(lambda: subscribed(hub, "s1/h", "s1/t"))
        await dev.publish("s1/h", "1", qos=1)
        await dev.publish("s1/t", "19", qos=1)
        await wait_until(lambda: hub.states.value(device_id, "t") == 19)

        async def listed() -> dict:
            body = await (await api_client.get(f"/api/discovered/{item.id}")).json()
            return {e["key"]: e.get("error") for e in body["data"]["entities"]}

        errors = await listed()
        assert errors["t"] is None
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert list(device["problems"]) == ["h"]
        assert "more than 10000 loop iterations" in device["problems"]["h"]
        assert "more than 10000 loop iterations" in errors["h"]
        assert status(hub)["stats"]["template_errors"] >= 1
        assert hub.states.value(device_id, "h") is None
        assert status(hub)["state"] == "connected"
        health = await (await api_client.get("/api/health")).json()
        assert health["integration_details"]["mqtt"]["refusals"]["template_errors"] >= 1


async def test_flood_from_one_device_is_cut(hub, broker, api_client) -> None:
    instance = hub.integrations.instance("mqtt")
    instance.bridge.max_rate = 50  # per device and second
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/sensor/s1/t/config", SENSOR)
        await wait_until(lambda: mqtt_discovered(hub))
        await wait_until(lambda: subscribed(hub, "s1/t"))
        for i in range(400):
            await dev.publish("s1/t", str(i), qos=0)
        await wait_until(lambda: status(hub)["stats"]["flood_dropped"] > 0)
        assert status(hub)["state"] == "connected"
        health = await (await api_client.get("/api/health")).json()
        assert health["integration_details"]["mqtt"]["refusals"]["flood_dropped"] > 0


async def test_too_many_entities_from_one_device(hub, broker) -> None:
    from integrations.mqtt import bridge

    async with device_client(broker) as dev:
        for i in range(bridge.MAX_ENTITIES_PER_DEVICE + 5):
            await publish_json(dev, f"homeassistant/sensor/junk/s{i}/config",
                               {"stat_t": f"junk/{i}", "dev": {"ids": "junk"}}, retain=False)
        await wait_until(lambda: status(hub)["stats"]["too_many"] == 5)
        item = mqtt_discovered(hub)[0]
        assert len(item.data["entities"]) == bridge.MAX_ENTITIES_PER_DEVICE
        assert status(hub)["state"] == "connected"


async def test_a_failing_command_template_shows_in_problems_at_once(hub, broker,
                                                                    api_client) -> None:
    """A command whose template fails answers 503 and the device's `problems` (and its
    discovered entity's error) say so at once; once the template works, they are cleared."""
    relay = {"name": None, "uniq_id": "ct1", "cmd_t": "ct1/set", "stat_t": "ct1/state",
             "cmd_tpl": "{{ 100 // (value == 'ON') }}",  # fails for OFF: 100 // False
             "dev": {"ids": "ct1", "name": "Relay"}}
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/switch/ct1/config", relay)
        item = (await wait_until(lambda: mqtt_discovered(hub)))[0]
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        device_id = (await r.json())["device"]["id"]
        before = status(hub)["stats"]["template_errors"]

        r = await api_client.post(f"/api/devices/{device_id}/commands",
                                  json={"command": "turn_off"})
        assert r.status == 503, await r.text()
        assert "ZeroDivisionError" in json.dumps(await r.json())
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert list(device.get("problems", {})) == ["switch"], device
        assert device["problems"]["switch"].startswith("command_template: ZeroDivisionError")
        assert status(hub)["stats"]["template_errors"] == before + 1
        await wait_until(lambda: [e for e in mqtt_discovered(hub)[0].data["entities"]
                                  if e.get("error", "").startswith("command_template")])

        r = await api_client.post(f"/api/devices/{device_id}/commands",
                                  json={"command": "turn_on"})
        assert r.status == 200, await r.text()
        assert (await r.json())["result"]["published"] == [{"topic": "ct1/set",
                                                            "payload": "100"}]
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert "problems" not in device
        await wait_until(lambda: not [e for e in mqtt_discovered(hub)[0].data["entities"]
                                      if e.get("error")])
