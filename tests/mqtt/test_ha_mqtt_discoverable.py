"""Foreign device code: a device written with ha-mqtt-discoverable 0.26 (PyPI, its own venv,
built by a fixture into ~/.cache/uone-test) runs in a device network namespace, joined by a
veth pair to the hub's, with Debian's mosquitto on the hub's side. Adopt, read state,
command and see the device follow, availability off and on, removal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.discovery import netns
from tests.doubles import mosquitto
from tests.mqtt.conftest import mqtt_discovered, status, wait_until

VERSION = "0.26.0"
VENV = Path(os.environ.get("UONE_TEST_CACHE", Path.home() / ".cache" / "uone-test")) / \
    f"ha-mqtt-discoverable-{VERSION}"
DEVICE = Path(__file__).with_name("hmd_device.py")


@pytest.fixture(scope="session")
def hmd_python() -> Path:
    """The venv's python, built once (pinned version) and cached between runs."""
    python = VENV / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q",
                        f"ha-mqtt-discoverable=={VERSION}"], check=True)
    return python


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    reason = netns.unavailable() or mosquitto.available()
    if reason:
        pytest.skip(reason)
    async with netns.veth_lan(prefix="mqtt", net=78) as lan:
        yield lan


@contextlib.contextmanager
def lan_broker(directory: Path, address: str) -> Any:
    """mosquitto listening on our end of the veth (anonymous: a typical home broker)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"user root\nper_listener_settings true\npersistence false\n"
                    f"log_dest stderr\nlistener {port} {address}\nallow_anonymous true\n")
    log = open(directory / "mosquitto.log", "wb")
    proc = subprocess.Popen([mosquitto.MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=log)
    try:
        import socket
        import time
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection((address, port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)
        log.close()


class Device:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    def commands(self, entity: str) -> list[Any]:
        return [e["payload"] for e in self.events
                if e.get("event") == "command" and e.get("entity") == entity]

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        n = len([e for e in self.events if e.get("event") == "done"])
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        if cmd["op"] != "exit":
            await wait_until(lambda: len([e for e in self.events
                                          if e.get("event") == "done"]) > n, 15)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.send(op="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


async def test_ha_mqtt_discoverable_device(lan, hmd_python, tmp_path, make_hub) -> None:
    with lan_broker(tmp_path / "broker", lan.hub_ip) as port:
        section = {"broker_url": f"mqtt://{lan.hub_ip}:{port}", "backoff_initial": 0.05,
                   "backoff_max": 0.5}
        async with make_hub(section) as hub:
            await wait_until(lambda: status(hub)["state"] == "connected")
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", lan.dev_ns, str(hmd_python), str(DEVICE),
                lan.hub_ip, str(port), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            device = Device(proc)
            try:
                await _exercise(hub, device)
            finally:
                await device.close()


async def _exercise(hub: Any, device: Device) -> None:
    await wait_until(lambda: any(e.get("event") == "ready" for e in device.events), 30)
    item = (await wait_until(lambda: [d for d in mqtt_discovered(hub)
                                      if len(d.data.get("entities", [])) == 6], 15))[0]
    assert item.name == "HMD Kit" and item.model == "Test kit"
    assert item.mac == "02:00:00:aa:bb:cc" and item.fw == "0.26.0"
    assert {e["component"] for e in item.data["entities"]} == {
        "switch", "light", "sensor", "binary_sensor", "cover", "button"}

    d = await hub.discovery.adopt(item.id, "Kit")
    # (each entity also has a json_attributes_topic: its extra attributes as one value)
    assert set(d.attributes) == {"relay", "lamp", "lamp_brightness", "temperature", "motion",
                                 "blind", "relay_attributes", "lamp_attributes",
                                 "temperature_attributes", "motion_attributes",
                                 "blind_attributes", "bell_attributes"}
    assert {c.name for c in d.commands} >= {"turn_on", "turn_off", "open", "close", "stop",
                                            "press"}
    instance = hub.integrations.instance("mqtt")
    await wait_until(lambda: set(instance.bridge.topics()) <= instance.connection.subscribed)
    await device.send(op="report")
    initial = {"temperature": 20, "relay": False, "lamp": False, "blind": "closed"}
    try:
        await wait_until(lambda: {a: hub.states.value(d.id, a) for a in initial} == initial
                         and hub.states.available(d.id) is True)
    except AssertionError:
        raise AssertionError(({a: hub.states.value(d.id, a) for a in initial},
                              hub.states.available(d.id), status(hub))) from None

    # commands reach the device, which follows and reports its new state
    await hub.integrations.command(d.id, "turn_on", {"entity": "relay"})
    await wait_until(lambda: hub.states.value(d.id, "relay") is True)
    # the device's own log of the command comes through its stdout, which may trail the
    # state it published (the hub can handle that first)
    await wait_until(lambda: device.commands("switch") == ["ON"])
    await hub.integrations.command(d.id, "turn_on", {"entity": "lamp", "brightness": 128})
    await wait_until(lambda: hub.states.value(d.id, "lamp_brightness") == 128)
    assert hub.states.value(d.id, "lamp") is True
    await wait_until(lambda: device.commands("light") == [{"state": "ON", "brightness": 128}])
    await hub.integrations.command(d.id, "open", {})
    await wait_until(lambda: hub.states.value(d.id, "blind") == "open")
    await hub.integrations.command(d.id, "press", {})
    await wait_until(lambda: device.commands("button") == ["PRESS"])

    # state from the device
    await device.send(op="sensor", value=23.5)
    await wait_until(lambda: hub.states.value(d.id, "temperature") == 23.5)
    await device.send(op="motion", value=True)
    await wait_until(lambda: hub.states.value(d.id, "motion") is True)

    # availability off and on
    await device.send(op="available", value=False)
    await wait_until(lambda: hub.states.available(d.id) is False)
    await device.send(op="available", value=True)
    await wait_until(lambda: hub.states.available(d.id) is True)

    # removal of one entity (empty retained config)
    await device.send(op="delete", entity="sensor")
    await wait_until(lambda: "temperature" not in hub.devices.get(d.id).attributes)
    assert "relay" in hub.devices.get(d.id).attributes
