"""A device written with ha-mqtt-discoverable (foreign code, in its own venv): one device
with a switch, a JSON light, a sensor, a binary sensor, a cover and a button.

Run by tests/mqtt/test_ha_mqtt_discoverable.py inside the device namespace:
`python hmd_device.py HOST PORT`. It follows the hub's commands as a real device does
(publishing its new state), prints one JSON line per event on stdout, and takes JSON
commands on stdin: {"op": "available", "value": false}, {"op": "sensor", "value": 21.5},
{"op": "motion", "value": true}, {"op": "report"} (initial states again),
{"op": "delete", "entity": "sensor"}, {"op": "exit"}.
"""

from __future__ import annotations

import json
import sys
import threading

from ha_mqtt_discoverable import DeviceInfo, Settings
from ha_mqtt_discoverable.sensors import (
    BinarySensor,
    BinarySensorInfo,
    Button,
    ButtonInfo,
    Cover,
    CoverInfo,
    Light,
    LightInfo,
    Sensor,
    SensorInfo,
    Switch,
    SwitchInfo,
)

_LOCK = threading.Lock()


def say(**event: object) -> None:
    with _LOCK:
        print(json.dumps(event), flush=True)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    mqtt = Settings.MQTT(host=host, port=port)
    dev = DeviceInfo(name="HMD Kit", identifiers="hmd-kit-1", manufacturer="ha-mqtt-discoverable",
                     model="Test kit", sw_version="0.26.0",
                     connections=[("mac", "02:00:00:aa:bb:cc")])

    def settings(info: object) -> Settings:
        return Settings(mqtt=mqtt, entity=info, manual_availability=True)

    def on_switch(client, userdata, message) -> None:
        payload = message.payload.decode()
        say(event="command", entity="switch", payload=payload)
        switch.on() if payload == "ON" else switch.off()

    def on_light(client, userdata, message) -> None:
        body = json.loads(message.payload.decode())
        say(event="command", entity="light", payload=body)
        if body.get("state") == "OFF":
            light.off()
        elif "brightness" in body:
            light.brightness(int(body["brightness"]))
        else:
            light.on()

    def on_cover(client, userdata, message) -> None:
        payload = message.payload.decode()
        say(event="command", entity="cover", payload=payload)
        {"OPEN": cover.open, "CLOSE": cover.closed, "STOP": cover.stopped}[payload]()

    def on_button(client, userdata, message) -> None:
        say(event="command", entity="button", payload=message.payload.decode())

    switch = Switch(settings(SwitchInfo(name="Relay", unique_id="hmd-kit-relay", device=dev)),
                    on_switch)
    light = Light(settings(LightInfo(name="Lamp", unique_id="hmd-kit-lamp", device=dev,
                                     brightness=True)), on_light)
    sensor = Sensor(settings(SensorInfo(name="Temperature", unique_id="hmd-kit-temp",
                                        unit_of_measurement="°C", device_class="temperature",
                                        device=dev)))
    motion = BinarySensor(settings(BinarySensorInfo(name="Motion", unique_id="hmd-kit-motion",
                                                    device_class="motion", device=dev)))
    cover = Cover(settings(CoverInfo(name="Blind", unique_id="hmd-kit-blind", device=dev)),
                  on_cover)
    button = Button(settings(ButtonInfo(name="Bell", unique_id="hmd-kit-bell", device=dev)),
                    on_button)
    entities = {"switch": switch, "light": light, "sensor": sensor, "motion": motion,
                "cover": cover, "button": button}
    for entity in entities.values():
        entity.write_config()
        entity.set_availability(True)
    def report() -> None:
        """States are not retained: sent again once the hub listens (the library skips an
        unchanged state unless forced, hence its _update_state)."""
        switch._update_state(switch._entity.payload_off, force_update=True)
        light._update_state(json.dumps({"state": "OFF"}), force_update=True)
        sensor.set_state(20.0)
        motion.off()
        cover._update_state(cover._entity.state_closed, force_update=True)

    report()
    say(event="ready")
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "exit":
            break
        if op == "available":
            for entity in entities.values():
                entity.set_availability(bool(cmd["value"]))
        elif op == "sensor":
            sensor.set_state(cmd["value"])
        elif op == "motion":
            motion.on() if cmd["value"] else motion.off()
        elif op == "report":
            report()
        elif op == "delete":
            entities.pop(cmd["entity"]).delete()
        say(event="done", op=op)
    for entity in entities.values():
        entity.mqtt_client.disconnect()


if __name__ == "__main__":
    main()
