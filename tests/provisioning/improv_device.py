"""An Improv Wi-Fi device double on the fake BlueZ: the Improv GATT service, the button,
and every error code, played from the test process (the fake emits MethodCalled on writes).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from improv_ble_client.protocol import (
    CHARACTERISTIC_UUID_CAPABILITIES,
    CHARACTERISTIC_UUID_ERROR,
    CHARACTERISTIC_UUID_RPC_COMMAND,
    CHARACTERISTIC_UUID_RPC_RESULT,
    CHARACTERISTIC_UUID_STATE,
    SERVICE_DATA_UUID,
    SERVICE_UUID,
    Error,
    State,
    WiFiSettingsCmd,
    WiFiSettingsRes,
)

from tests.doubles.bluez import FakeBlueZ


@dataclass
class ImprovDevice:
    """An ESPHome-like device waiting for Wi-Fi."""

    fake: FakeBlueZ
    address: str
    needs_button: bool = True
    error: Error | None = None  # answer the Wi-Fi settings with this error
    redirect_url: str | None = "http://10.99.0.5/setup"
    received: list[tuple[str, str]] = field(default_factory=list)  # (ssid, password) seen
    state: State = State.AUTHORIZATION_REQUIRED
    chars: dict[str, str] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.state = State.AUTHORIZATION_REQUIRED if self.needs_button else State.AUTHORIZED
        dev = await self.fake.add_le_device(
            self.address, "esphome-plug", rssi=-55, service_uuids=[SERVICE_UUID],
            service_data={SERVICE_DATA_UUID: self._service_data()})
        svc = await self.fake.add_gatt_service(dev, SERVICE_UUID)
        for uuid, flags, value in (
            (CHARACTERISTIC_UUID_CAPABILITIES, ["read"], b"\x01"),
            (CHARACTERISTIC_UUID_STATE, ["read", "notify"], bytes([self.state])),
            (CHARACTERISTIC_UUID_ERROR, ["read", "notify"], b"\x00"),
            (CHARACTERISTIC_UUID_RPC_COMMAND, ["write"], b""),
            (CHARACTERISTIC_UUID_RPC_RESULT, ["read", "notify"], b""),
        ):
            self.chars[uuid] = await self.fake.add_gatt_characteristic(svc, uuid, flags, value)
        calls = await self.fake.method_calls(self.chars[CHARACTERISTIC_UUID_RPC_COMMAND])
        self._task = asyncio.get_running_loop().create_task(self._serve(calls))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def press_button(self) -> None:
        self.state = State.AUTHORIZED
        await self._notify(CHARACTERISTIC_UUID_STATE, bytes([self.state]))

    def _service_data(self) -> bytes:
        return bytes([self.state, 0x01, 0, 0, 0, 0])

    async def _notify(self, uuid: str, value: bytes) -> None:
        await self.fake.notify(self.chars[uuid], value)

    async def _serve(self, calls: asyncio.Queue[tuple[str, list[Any]]]) -> None:
        while True:
            name, args = await calls.get()
            if name != "WriteValue":
                continue
            cmd = WiFiSettingsCmd.from_bytes(bytes(args[0]))
            self.received.append((cmd.ssid.decode(), cmd.password.decode()))
            if self.state == State.AUTHORIZATION_REQUIRED:
                await self._notify(CHARACTERISTIC_UUID_ERROR, bytes([Error.NOT_AUTHORIZED]))
                continue
            self.state = State.PROVISIONING
            await self._notify(CHARACTERISTIC_UUID_STATE, bytes([self.state]))
            await asyncio.sleep(0.05)
            if self.error is not None:
                self.state = State.AUTHORIZED
                await self._notify(CHARACTERISTIC_UUID_ERROR, bytes([self.error]))
                await self._notify(CHARACTERISTIC_UUID_STATE, bytes([self.state]))
                continue
            self.state = State.PROVISIONED
            await self._notify(CHARACTERISTIC_UUID_STATE, bytes([self.state]))
            url = self.redirect_url.encode() if self.redirect_url else None
            await self._notify(CHARACTERISTIC_UUID_RPC_RESULT,
                               WiFiSettingsRes(url, []).as_bytes())
