"""expire_after and off_delay through a real broker, on a hub whose clock the test moves
(hub.clock.ManualClock): no sleeping, no wall-clock assertions."""

from __future__ import annotations

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

DEV = {"ids": "hall1", "name": "Hall sensor"}
TEMPERATURE = {"name": "T", "uniq_id": "hall1-t", "stat_t": "hall1/t", "unit_of_meas": "°C",
               "exp_aft": 60, "dev": DEV}
MOTION = {"name": "Motion", "uniq_id": "hall1-m", "stat_t": "hall1/motion", "dev_cla": "motion",
          "off_dly": 30, "dev": DEV}


async def test_expire_after_and_off_delay(broker, make_hub) -> None:
    clock = ManualClock()
    async with make_hub(mqtt_section(broker), clock=clock) as hub, \
            device_client(broker) as dev:
        await wait_until(lambda: status(hub)["state"] == "connected")
        await publish_json(dev, "homeassistant/sensor/hall1/t/config", TEMPERATURE)
        await publish_json(dev, "homeassistant/binary_sensor/hall1/motion/config", MOTION)
        item = (await wait_until(lambda: [d for d in mqtt_discovered(hub)
                                          if len(d.data["entities"]) == 2]))[0]
        device_id = (await hub.discovery.adopt(item.id, "Hall")).id
        await wait_until(lambda: subscribed(hub, "hall1/t", "hall1/motion"))

        def value(attribute: str):
            return hub.states.value(device_id, attribute)

        async def send(topic: str, payload: str) -> None:
            """Publish and wait until the hub has handled it."""
            before = status(hub)["stats"]["messages"]
            await dev.publish(topic, payload, qos=1)
            await wait_until(lambda: status(hub)["stats"]["messages"] > before)

        # expire_after 60: each reading starts the time over; 60 s without one -> unknown
        await send("hall1/t", "21")
        assert value("t") == 21
        await clock.advance(59)
        assert value("t") == 21
        await send("hall1/t", "22")
        await clock.advance(59)
        assert value("t") == 22  # 118 s after the first, 59 after the last
        await clock.advance(2)
        assert value("t") is None
        await send("hall1/t", "23")
        assert value("t") == 23

        # off_delay 30: a motion sensor that only sends ON turns off 30 s after the last ON
        await send("hall1/motion", "ON")
        assert value("motion") is True
        await clock.advance(20)
        await send("hall1/motion", "ON")  # motion again: the 30 s start over
        await clock.advance(20)
        assert value("motion") is True
        await clock.advance(11)
        assert value("motion") is False
        # an OFF from the device cancels the pending off; the next ON arms it again
        await send("hall1/motion", "ON")
        await send("hall1/motion", "OFF")
        assert value("motion") is False
        await send("hall1/motion", "ON")
        await clock.advance(29)
        assert value("motion") is True
        await clock.advance(2)
        assert value("motion") is False

        # the values the timers set are the device's history like any other
        await hub.db.flush()
        history = [h["value"] for h in await hub.states.history(device_id)
                   if h["attribute"] == "motion"]
        assert history == [True, False, True, False, True, False]

        # an entity announced anew (or removed) takes its running timers with it
        await send("hall1/t", "24")
        await publish_json(dev, "homeassistant/sensor/hall1/t/config",
                           {**TEMPERATURE, "exp_aft": 0})
        await wait_until(lambda: status(hub)["stats"]["configs"] >= 3)
        await clock.advance(120)
        assert value("t") == 24
