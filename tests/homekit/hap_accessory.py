"""A HomeKit accessory (HAP-python: foreign device-side code) run in a device namespace.

`python -m tests.homekit.hap_accessory KIND ADDRESS PORT PINCODE STATEDIR [FLAG...]`
with KIND light | outlet | thermostat. It prints one JSON line when serving, then obeys JSON
lines on stdin (one JSON answer each):
  {"op": "get", "char": "Brightness"}          the accessory's current value
  {"op": "set", "char": "Brightness", "value": 40}   a change on the device (an event)
  {"op": "raw", "char": "Brightness", "value": "x"}  push a value HAP-python would refuse
  {"op": "press", "value": 0}                  the outlet's button (0 single, 1 double, 2 long)
  {"op": "writes"}                             values the controller wrote, in order
  {"op": "paired"}                             whether a controller is paired
  {"op": "refused"}                            pair-setup proofs it refused (wrong codes...)
  {"op": "exit"}
FLAGs: `drop_on_pair`: the process dies in the middle of pair-setup (after M3 arrives).
`stock_srp`: SRP as stock HAP-python, unpadded (see below), with a fixed salt and fixed
secrets b (STOCK_B, then random): the exchanges are the same each run for a controller whose
own secret is fixed too. `short_b_first`: with stock_srp, the first exchange uses SHORT_B,
whose B has a leading zero byte: sent unpadded, a right code is refused there.

By default its SRP verifier pads B, S and K to full width as Apple's accessory kit does (and as
aiohomekit, the hub's controller, expects: its PR #150); stock HAP-python 5.2 does not, and ~1
pair-setup in 85 then fails at M4 with a right code. hub/thirdparty.py has the fix; the hub's
bridge uses it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

from pyhap.accessory import Accessory
from pyhap.accessory_driver import AccessoryDriver
from pyhap.const import CATEGORY_LIGHTBULB, CATEGORY_OUTLET, CATEGORY_THERMOSTAT

from hub.thirdparty import install_padded_srp

WRITES: list[list[Any]] = []
REFUSED = [0]

# stock_srp (values checked by tests/homekit/test_controller.py::test_srp_values_of_the_double)
STOCK_SALT = bytes(range(0x51, 0x61))
SHORT_B = 0xB2091A35CCAA62DBC8CD9066F4485F7B3A09C2B918B15244089D865949DDA9A3  # B: 383 bytes
STOCK_B = (0x17F9EE6725ED09D3A0562D56ABD685A48F165D57B00C7F4781EF86F5C8CC1AB,
           0x38F12D92A28F17D83CE44E27424458B6B6043106A85F68B6DAA8B2A668D605D4)


def _recording(name: str):
    def setter(value: Any) -> None:
        WRITES.append([name, value])
    return setter


class Light(Accessory):
    category = CATEGORY_LIGHTBULB

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        serv = self.add_preload_service(
            "Lightbulb", chars=["On", "Brightness", "ColorTemperature", "Hue", "Saturation"])
        for name in ("On", "Brightness", "ColorTemperature", "Hue", "Saturation"):
            serv.configure_char(name, setter_callback=_recording(name))
        self.chars = {c.display_name: c for c in serv.characteristics}


class Outlet(Accessory):
    category = CATEGORY_OUTLET

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        serv = self.add_preload_service("Outlet", chars=["On", "OutletInUse"])
        serv.configure_char("On", setter_callback=_recording("On"))
        button = self.add_preload_service("StatelessProgrammableSwitch",
                                          chars=["ProgrammableSwitchEvent"])
        self.chars = {c.display_name: c for c in serv.characteristics}
        self.chars.update({c.display_name: c for c in button.characteristics})


class Thermostat(Accessory):
    category = CATEGORY_THERMOSTAT

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        names = ["CurrentHeatingCoolingState", "TargetHeatingCoolingState",
                 "CurrentTemperature", "TargetTemperature", "TemperatureDisplayUnits"]
        serv = self.add_preload_service("Thermostat", chars=names)
        for name in ("TargetHeatingCoolingState", "TargetTemperature"):
            serv.configure_char(name, setter_callback=_recording(name))
        self.chars = {c.display_name: c for c in serv.characteristics}
        self.chars["CurrentTemperature"].set_value(20.5)
        self.chars["TargetTemperature"].set_value(21.0)


KINDS = {"light": Light, "outlet": Outlet, "thermostat": Thermostat}


def stock_srp(secrets: list[int]) -> Any:
    """setup_srp_verifier as stock HAP-python's (unpadded), with fixed salt and secrets."""
    import hashlib

    from pyhap.hsrp import Server
    from pyhap.params import get_srp_context

    def setup(driver: Any) -> None:
        b = secrets.pop(0) if secrets else None
        driver._srp_verifier = Server(get_srp_context(3072, hashlib.sha512, 16),
                                      b"Pair-Setup", driver.state.pincode, s=STOCK_SALT, b=b)

    return setup


async def main(kind: str, address: str, port: int, pincode: str, statedir: str,
               flags: list[str]) -> None:
    if "drop_on_pair" in flags:
        from pyhap.hap_handler import HAPServerHandler

        def die(self: Any, tlv: Any) -> None:
            os._exit(3)  # the accessory drops mid-pairing (power cut, crash)

        HAPServerHandler._pairing_three = die  # type: ignore[method-assign]
    if "stock_srp" in flags:
        secrets = [SHORT_B] * ("short_b_first" in flags) + list(STOCK_B)
        AccessoryDriver.setup_srp_verifier = stock_srp(secrets)  # type: ignore[method-assign]
    else:
        AccessoryDriver.setup_srp_verifier = install_padded_srp  # type: ignore[method-assign]
    count_refusal = AccessoryDriver.register_failed_pairing_attempt

    def refused(driver: Any) -> None:
        REFUSED[0] += 1
        count_refusal(driver)

    AccessoryDriver.register_failed_pairing_attempt = refused  # type: ignore[method-assign]
    driver = AccessoryDriver(address=address, port=port, pincode=pincode.encode(),
                             persist_file=os.path.join(statedir, f"{kind}.state"),
                             loop=asyncio.get_running_loop())
    acc = KINDS[kind](driver, f"Test {kind.title()}")
    driver.add_accessory(accessory=acc)
    out = sys.stdout
    sys.stdout = sys.stderr  # HAP-python prints its setup message: keep stdout for answers
    await driver.async_start()
    out.write(json.dumps({"ready": True, "id": driver.state.mac}) + "\n")
    out.flush()
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd["op"]
        answer: dict[str, Any] = {"ok": True}
        if op == "exit":
            break
        if op == "get":
            answer["value"] = acc.chars[cmd["char"]].value
        elif op == "set":
            acc.chars[cmd["char"]].set_value(cmd["value"])
        elif op == "raw":  # bypass HAP-python's own checks: a buggy accessory
            char = acc.chars[cmd["char"]]
            char.value = cmd["value"]
            char.notify()
        elif op == "press":
            acc.chars["ProgrammableSwitchEvent"].set_value(cmd["value"])
        elif op == "writes":
            answer["writes"] = WRITES
        elif op == "paired":
            answer["paired"] = bool(driver.state.paired)
        elif op == "refused":
            answer["refused"] = REFUSED[0]
        out.write(json.dumps(answer) + "\n")
        out.flush()
    await driver.async_stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    k, addr, p, pin, d = sys.argv[1:6]
    asyncio.run(main(k, addr, int(p), pin, d, sys.argv[6:]))
