"""Tasmota's native discovery (tasmota/discovery/<MAC>/config and /sensors, what standard
builds publish with SetOption19 0) read through hatasmota: four models in the firmware's own
format (tests/mqtt/tasmota_firmware.py) replayed through mosquitto with their state messages;
adoption, the hub's devices, attributes and values, the exact commands Tasmota expects, LWT
availability, device triggers as hub events, removal and erasure."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.facade import DeviceEvent
from tests.mqtt import tasmota_firmware as fw
from tests.mqtt.conftest import device_client, mqtt_discovered, recording, status, wait_until

HISTORY_ROWS = "SELECT device_id FROM history"


def tasmota_items(hub) -> list[Any]:
    return [d for d in mqtt_discovered(hub) if d.data.get("protocol") == "tasmota"]


async def announce(client, *models: dict[str, str]) -> None:
    for mac, model in fw.MODELS.items():
        if models and model not in models:
            continue
        topic = _topic(mac)
        await client.publish(f"tele/{topic}/LWT", "Online", qos=1, retain=True)
        await client.publish(f"tasmota/discovery/{mac}/config", model["config"], qos=1,
                             retain=True)
        await client.publish(f"tasmota/discovery/{mac}/sensors", model["sensors"], qos=1,
                             retain=True)


def _topic(mac: str) -> str:
    return {fw.PLUG_MAC: fw.PLUG_TOPIC, fw.BULB_MAC: fw.BULB_TOPIC,
            fw.SHELLY_MAC: fw.SHELLY_TOPIC, fw.IFAN_MAC: fw.IFAN_TOPIC}[mac]


async def test_dump(hub, broker, api_client) -> None:
    async with device_client(broker) as tasmota:
        await announce(tasmota)
        items = await wait_until(lambda: tasmota_items(hub) if len(tasmota_items(hub)) == 4
                                 and all(i.data["entities"] for i in tasmota_items(hub))
                                 else None)
        for item in items:
            print(item.name, item.model, item.fw, item.mac, item.data)
            r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
            assert r.status == 201, await r.text()
            d = (await r.json())["device"]
            print(d)
        await asyncio.sleep(1.5)
        print(status(hub))
        for d in hub.devices.by_integration("mqtt"):
            print(d.id, {a: hub.states.value(d.id, a) for a in d.attributes},
                  hub.states.available(d.id))
    assert False
