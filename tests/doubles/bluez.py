"""A fake BlueZ on a private system bus, for real bleak (scan and GATT) without hardware.

Use from a conftest: `from tests.doubles.bluez import fake_bluez  # noqa: F401`, then ask for
the `fake_bluez` fixture. It starts a private `dbus-daemon` (permissive policy, socket in
the test's tmp dir), points `DBUS_SYSTEM_BUS_ADDRESS` at it, runs python-dbusmock with
`bluez_template.py`, adds adapter `hci0`, and re-emits every LE device's advertisement every
100 ms (bleak only reports advertisements that arrive while it scans). Teardown stops the
task and terminates exactly the processes it started.

`FakeBlueZ` is the test's side of the bus: it adds devices, sets advertisements, builds GATT
services, sends notifications and watches the method calls bleak makes (to play a peripheral).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

TEMPLATE = Path(__file__).with_name("bluez_template.py")
BLUEZ = "org.bluez"
MOCK_IFACE = "org.bluez.Mock"
DBUSMOCK_IFACE = "org.freedesktop.DBus.Mock"
DEVICE_IFACE = "org.bluez.Device1"
ADVERTISE_INTERVAL = 0.1

BUS_CONF = """<busconfig><type>system</type><listen>unix:path={socket}</listen>
<auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/>
<allow send_type="method_call"/><allow send_type="signal"/>
<allow send_type="method_return"/><allow send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="signal"/>
<allow receive_type="method_return"/><allow receive_type="error"/>
</policy></busconfig>
"""


class FakeBlueZError(RuntimeError):
    """The fake could not start, or a call to it failed."""


def available() -> str | None:
    """None if the fake can run here, else the reason it cannot."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed"
    try:
        import dbusmock  # noqa: F401
    except ImportError:
        return "python-dbusmock is not installed"
    return None


@dataclass
class FakeBlueZ:
    """The test's handle on the fake: Mock calls over dbus-fast."""

    address: str
    bus: MessageBus
    adapter: str = "hci0"
    advertising: bool = True  # the fixture's periodic Advertise() runs while True
    advertised: int = 0
    tmp: Path | None = None
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)  # what we started
    _watches: list[tuple[str, asyncio.Queue[tuple[str, list[Any]]]]] = field(
        default_factory=list)

    @property
    def adapter_path(self) -> str:
        return f"/org/bluez/{self.adapter}"

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: Iterable[Any] = ()) -> list[Any]:
        reply = await self.bus.call(Message(
            destination=BLUEZ, path=path, interface=interface, member=member,
            signature=signature, body=list(body)))
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise FakeBlueZError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    async def mock(self, member: str, signature: str = "", *body: Any) -> Any:
        out = await self.call("/", MOCK_IFACE, member, signature, body)
        return out[0] if out else None

    # adapters

    async def add_adapter(self, name: str | None = None) -> str:
        return await self.mock("AddAdapter", "ss", name or self.adapter, "hub")

    async def remove_adapter(self, name: str | None = None) -> None:
        await self.mock("RemoveAdapter", "s", name or self.adapter)

    async def restart_bluez(self, down_for: float = 0.0) -> None:
        """bluetoothd crashes and comes back: the fake leaves the bus (its objects go with
        it), stays away `down_for` seconds, returns with an empty tree plus the adapter."""
        assert self.tmp is not None
        mock = self.procs[-1]
        mock.terminate()
        await asyncio.to_thread(mock.wait, 5)
        await asyncio.sleep(down_for)
        new = await asyncio.to_thread(_start_mock, self.tmp)
        self.procs.append(new)
        await _wait_for_name(self.bus, new, BLUEZ)
        await self.add_adapter()

    # devices and advertisements

    async def add_le_device(
        self, address: str, name: str = "", *, rssi: int = -60,
        manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
        service_uuids: list[str] | None = None,
    ) -> str:
        """Add an LE device and set its advertisement; returns its object path."""
        path = await self.mock("AddLEDevice", "sss", self.adapter, address, name)
        await self.set_advertisement(path, rssi=rssi, manufacturer_data=manufacturer_data,
                                     service_data=service_data, service_uuids=service_uuids)
        return path

    async def set_advertisement(
        self, path: str, *, rssi: int | None = None,
        manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
        service_uuids: list[str] | None = None, name: str | None = None,
    ) -> None:
        """Change what a device advertises (emits PropertiesChanged, like a new advert)."""
        props: dict[str, Variant] = {}
        if rssi is not None:
            props["RSSI"] = Variant("n", rssi)
        if manufacturer_data is not None:
            props["ManufacturerData"] = Variant("a{qv}", {
                k: Variant("ay", bytes(v)) for k, v in manufacturer_data.items()})
        if service_data is not None:
            props["ServiceData"] = Variant("a{sv}", {
                k: Variant("ay", bytes(v)) for k, v in service_data.items()})
        if service_uuids is not None:
            props["UUIDs"] = Variant("as", list(service_uuids))
        if name is not None:
            props["Name"] = Variant("s", name)
            props["Alias"] = Variant("s", name)
        if props:
            await self.call(path, DBUSMOCK_IFACE, "UpdateProperties", "sa{sv}",
                            [DEVICE_IFACE, props])

    async def advertise(self) -> int:
        """Re-emit every LE device's advertisement once; returns how many."""
        return int(await self.mock("Advertise"))

    async def set_connected(self, device_path: str, connected: bool) -> None:
        """The device drops (or takes) the link by itself."""
        await self.call(device_path, DBUSMOCK_IFACE, "UpdateProperties", "sa{sv}", [
            DEVICE_IFACE, {"Connected": Variant("b", connected),
                           "ServicesResolved": Variant("b", connected)}])

    # GATT

    async def add_gatt_service(self, device_path: str, uuid: str) -> str:
        return await self.mock("AddGattService", "os", device_path, uuid)

    async def add_gatt_characteristic(self, service_path: str, uuid: str,
                                      flags: Iterable[str], value: bytes = b"") -> str:
        return await self.mock("AddGattCharacteristic", "osasay", service_path, uuid,
                               list(flags), bytes(value))

    async def notify(self, char_path: str, value: bytes) -> None:
        await self.mock("Notify", "oay", char_path, bytes(value))

    async def value(self, char_path: str) -> bytes:
        out = await self.call(char_path, "org.freedesktop.DBus.Properties", "Get", "ss",
                              ["org.bluez.GattCharacteristic1", "Value"])
        return bytes(out[0].value)

    async def method_calls(self, path: str) -> asyncio.Queue[tuple[str, list[Any]]]:
        """A queue of (method, args) for every call bleak makes on `path` (e.g. WriteValue)."""
        queue: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        rule = (f"type='signal',interface='{DBUSMOCK_IFACE}',member='MethodCalled',"
                f"path='{path}'")
        await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))
        self._watches.append((path, queue))
        return queue

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL or msg.member != "MethodCalled":
            return
        for path, queue in self._watches:
            if msg.path == path:
                name, args = msg.body
                queue.put_nowait((name, [_plain(a) for a in args]))


def _plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return _plain(value.value)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return bytes(value)
    return value


@contextlib.asynccontextmanager
async def running_fake_bluez(tmp: Path, *, adapter: str | None = "hci0",
                             advertise_every: float | None = ADVERTISE_INTERVAL
                             ) -> AsyncIterator[FakeBlueZ]:
    """Start bus + fake BlueZ; sets DBUS_SYSTEM_BUS_ADDRESS for this process while running."""
    reason = available()
    if reason is not None:
        raise FakeBlueZError(reason)
    started: list[subprocess.Popen[Any]] = []
    previous = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    bus: MessageBus | None = None
    task: asyncio.Task[None] | None = None
    try:
        address = await asyncio.to_thread(_start_processes, tmp, started)
        mock = started[-1]
        bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        fake = FakeBlueZ(address, bus, adapter or "hci0", tmp=tmp, procs=started)
        bus.add_message_handler(fake._on_message)  # type: ignore[arg-type]
        await _wait_for_name(bus, mock, BLUEZ)
        if adapter is not None:
            await fake.add_adapter(adapter)
        if advertise_every is not None:
            task = asyncio.create_task(_advertise_forever(fake, advertise_every),
                                       name="fake-bluez-advertise")
        yield fake
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.wait_for_disconnect(), 1)
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, 3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
            if proc.stdout is not None:
                proc.stdout.close()
        if previous is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = previous


@pytest.fixture
async def fake_bluez(tmp_path: Path) -> AsyncIterator[FakeBlueZ]:
    """A fake BlueZ with adapter hci0 advertising every 100 ms (fails, never skips, if it
    cannot start: CI installs dbus and python-dbusmock)."""
    async with running_fake_bluez(tmp_path / "bluez") as fake:
        yield fake


def _start_processes(tmp: Path, started: list[subprocess.Popen[Any]]) -> str:
    """Start the private bus and dbusmock (appending each to `started`); the bus address."""
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "bus.conf"
    conf.write_text(BUS_CONF.format(socket=tmp / "system_bus"))
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    started.append(daemon)
    assert daemon.stdout is not None
    address = daemon.stdout.readline().strip()
    if not address:
        raise FakeBlueZError("dbus-daemon did not start")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
    started.append(_start_mock(tmp))
    return address


def _start_mock(tmp: Path) -> subprocess.Popen[Any]:
    with open(tmp / "dbusmock.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dbusmock", "--system", "--template", str(TEMPLATE)],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


async def _wait_for_name(bus: MessageBus, proc: subprocess.Popen[Any], name: str) -> None:
    for _ in range(250):
        if proc.poll() is not None:
            raise FakeBlueZError(f"dbusmock exited with {proc.returncode}")
        reply = await bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
            body=[name]))
        if reply is not None and reply.body and reply.body[0]:
            return
        await asyncio.sleep(0.02)
    raise FakeBlueZError(f"{name} did not appear on the bus within 5 s")


async def _advertise_forever(fake: FakeBlueZ, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if not fake.advertising:
            continue
        try:
            fake.advertised += await fake.advertise()
        except FakeBlueZError:
            continue  # e.g. the adapter was just removed by the test
