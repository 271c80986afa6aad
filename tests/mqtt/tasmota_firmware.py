"""Tasmota's native discovery messages, byte for byte as the firmware prints them.

`config()` follows TasDiscoverMessage() in Tasmota's tasmota/tasmota_xdrv_driver/
xdrv_12_discovery.ino (the key order, the compact JSON of Response_P, the arrays filled to
MAX_FRIENDLYNAMES 8, MAX_RELAYS_SET 32, MAX_SWITCHES_SET 32 and MAX_KEYS_SET 32 of
tasmota/include/tasmota.h, the SetOption map `so`); `sensors()` follows TasDiscovery():
`{"sn":` + MqttShowSensor() + `,"ver":1}`. The devices below are filled with what those
models report (module names of their templates, ENERGY of a BL0937/ADE7953 meter, Shelly
2.5's ANALOG temperature, an RGBCCT bulb's light subtype 5, the iFan03's relay layout).
"""

from __future__ import annotations

import json
from typing import Any

MAX_FRIENDLYNAMES, MAX_RELAYS_SET, MAX_SWITCHES_SET, MAX_KEYS_SET = 8, 32, 32, 32
SO_KEYS = ("4", "11", "13", "17", "20", "30", "68", "73", "82", "114", "117")


def config(*, mac: str, topic: str, device_name: str, friendly: list[str], module: str,
           relays: list[int], switchmodes: list[int] | None = None,
           switchnames: list[str] | None = None, buttons: list[int] | None = None,
           so: dict[str, int] | None = None, light_linked: int = 0, light_subtype: int = 0,
           ifan: int = 0, shutter_options: list[int] | None = None,
           shutter_tilts: list[list[int]] | None = None,
           version: str = "14.3.0(release-tasmota)", ip: str = "192.168.1.50") -> str:
    """The retained tasmota/discovery/<MAC>/config payload."""
    devices_present = len(relays)
    maxfn = min(devices_present, MAX_FRIENDLYNAMES) or 1
    fn = ",".join(json.dumps(friendly[i] if i < len(friendly) else "") if i < maxfn
                  else "null" for i in range(MAX_FRIENDLYNAMES))
    rl = ",".join(str(relays[i] if i < len(relays) else 0) for i in range(MAX_RELAYS_SET))
    modes = switchmodes or []
    swc = ",".join(str(modes[i]) if i < len(modes) else "-1" for i in range(MAX_SWITCHES_SET))
    names = switchnames or []
    swn = ",".join(json.dumps(names[i]) if i < len(names) else "null"
                   for i in range(MAX_SWITCHES_SET))
    keys = buttons or []
    btn = ",".join(str(keys[i] if i < len(keys) else 0) for i in range(MAX_KEYS_SET))
    options = {k: (so or {}).get(k, 0) for k in SO_KEYS}
    so_text = ",".join(f'"{k}":{v}' for k, v in options.items())
    sho = ",".join(str(o) for o in shutter_options or [])  # one per shutter present
    sht = ",".join(f"[{a},{b},{c}]" for a, b, c in shutter_tilts or [])
    hostname = f"{topic.replace('_', '-')}-{int(mac[-4:], 16) & 0x1FFF:04d}"
    return (
        f'{{"ip":"{ip}","dn":{json.dumps(device_name)},"fn":[{fn}],'
        f'"hn":"{hostname}","mac":"{mac}","md":{json.dumps(module)},'
        f'"ty":0,"if":{ifan},"ofln":"Offline","onln":"Online",'
        f'"state":["OFF","ON","TOGGLE","HOLD"],"sw":"{version}","t":"{topic}",'
        f'"ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[{rl}],'
        f'"swc":[{swc}],"swn":[{swn}],"btn":[{btn}],"so":{{{so_text}}},'
        f'"lk":{light_linked},"lt_st":{light_subtype},"bat":0,"dslp":0,"sho":[{sho}],"sht":[{sht}],'
        f'"ver":1}}')


def sensors(readings: dict[str, Any]) -> str:
    """The retained tasmota/discovery/<MAC>/sensors payload."""
    shown = json.dumps({"Time": "2026-12-03T08:00:00", **readings}, separators=(",", ":"))
    return f'{{"sn":{shown},"ver":1}}'


def compact(body: Any) -> str:
    """A state message as Tasmota prints it (no spaces)."""
    return json.dumps(body, separators=(",", ":"))


WIFI = {"AP": 1, "SSId": "home", "BSSId": "AA:BB:CC:DD:EE:01", "Channel": 6, "Mode": "11n",
        "RSSI": 76, "Signal": -62, "LinkCount": 1, "Downtime": "0T00:00:03"}


def state(**power: Any) -> str:
    """tele/<topic>/STATE as the firmware sends it every TelePeriod."""
    return compact({"Time": "2026-12-03T08:00:00", "Uptime": "0T00:10:00", "UptimeSec": 600,
                    "Heap": 26, "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19,
                    "MqttCount": 1, **power, "Wifi": WIFI})


# -- the models ------------------------------------------------------------------------------

PLUG_MAC, PLUG_TOPIC = "A4CF12ABCDEF", "tasmota_ABCDEF"
PLUG_ENERGY = {"TotalStartTime": "2026-11-01T10:00:00", "Total": 1.234, "Yesterday": 0.456,
               "Today": 0.123, "Power": 42, "ApparentPower": 50, "ReactivePower": 27,
               "Factor": 0.84, "Voltage": 230, "Current": 0.217}
PLUG = {
    "config": config(mac=PLUG_MAC, topic=PLUG_TOPIC, device_name="Kitchen plug",
                     friendly=["Kitchen plug"], module="Gosund SP111", relays=[1]),
    "sensors": sensors({"ENERGY": PLUG_ENERGY}),
}

BULB_MAC, BULB_TOPIC = "C45BBE123456", "tasmota_123456"
BULB = {
    "config": config(mac=BULB_MAC, topic=BULB_TOPIC, device_name="Desk lamp",
                     friendly=["Desk lamp"], module="Athom LB01-15W", relays=[2],
                     light_linked=1, light_subtype=5),
    "sensors": sensors({}),
}

SHELLY_MAC, SHELLY_TOPIC = "3C6105C0FFEE", "shelly25_C0FFEE"
SHELLY_ENERGY = {"TotalStartTime": "2026-10-01T09:00:00", "Total": 0.5, "Yesterday": 0.1,
                 "Today": 0.05, "Period": [0, 0], "Power": [12, 0],
                 "ApparentPower": [15, 0], "ReactivePower": [9, 0], "Factor": [0.8, 0],
                 "Frequency": 50, "Voltage": 231, "Current": [0.06, 0]}
SHELLY = {
    "config": config(mac=SHELLY_MAC, topic=SHELLY_TOPIC, device_name="Hall",
                     friendly=["Hall light", "Hall fan"], module="Shelly 2.5",
                     relays=[1, 1], switchmodes=[1, 0], switchnames=["Switch1", "Switch2"],
                     buttons=[1], so={"73": 1, "114": 1}),
    "sensors": sensors({"Switch1": "OFF", "Switch2": "OFF", "ANALOG": {"Temperature": 45.6},
                        "ENERGY": SHELLY_ENERGY, "TempUnit": "C"}),
}

IFAN_MAC, IFAN_TOPIC = "DC4F22A1B2C3", "ifan03_A1B2C3"
IFAN = {
    "config": config(mac=IFAN_MAC, topic=IFAN_TOPIC, device_name="Ceiling fan",
                     friendly=["Ceiling fan", "Fan 2", "Fan 3", "Fan 4"],
                     module="Sonoff iFan03", relays=[2, 0, 0, 0], ifan=1),
    "sensors": sensors({}),
}

# a Shelly 2.5 in shutter mode (SetOption80 1, ShutterRelay1 1): relays 1+2 drive shutter 1,
# tilt configured (ShutterTiltConfig 0 90 10: min, max, duration)
BLIND_MAC, BLIND_TOPIC = "3C6105B11D00", "blind_B11D00"
BLIND = {
    "config": config(mac=BLIND_MAC, topic=BLIND_TOPIC, device_name="Bedroom blind",
                     friendly=["Bedroom blind", "Bedroom blind 2"], module="Shelly 2.5",
                     relays=[3, 3], shutter_options=[0], shutter_tilts=[[0, 90, 10]]),
    "sensors": sensors({"Shutter1": {"Position": 100, "Direction": 0, "Target": 100,
                                     "Tilt": 90}}),
}

MODELS = {PLUG_MAC: PLUG, BULB_MAC: BULB, SHELLY_MAC: SHELLY, IFAN_MAC: IFAN}
TOPICS = {PLUG_MAC: PLUG_TOPIC, BULB_MAC: BULB_TOPIC, SHELLY_MAC: SHELLY_TOPIC,
          IFAN_MAC: IFAN_TOPIC, BLIND_MAC: BLIND_TOPIC}
