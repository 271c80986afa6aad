"""Transport choice for devices reachable over the LAN and over BLE, and why.

The integration owning a device probes the LAN (does its IP answer?) and reads the BLE
signal the scanner heard; `choose_transport` turns that into a choice with a reason people
can read; `Connectivity` keeps the current choice per device (shown by GET /api/devices/{id})
and records it on the device.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from hub.bus import DeviceRegistryChanged

if TYPE_CHECKING:
    from hub.bus import EventBus
    from hub.devices import DeviceRegistry

TransportName = Literal["lan", "ble"]

MIN_RSSI = -90  # below this a BLE link is too weak to rely on
BLE_FRESH = 60.0  # seconds: an advertisement older than this says little about the link


@dataclass(frozen=True, slots=True)
class LanProbe:
    """The result of trying the device's IP."""

    host: str
    port: int
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TransportChoice:
    transport: TransportName | None
    reason: str
    lan: LanProbe | None = None
    rssi: int | None = None
    ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport, "reason": self.reason, "rssi": self.rssi,
            "lan": None if self.lan is None else {
                "host": self.lan.host, "port": self.lan.port, "ok": self.lan.ok,
                "latency_ms": self.lan.latency_ms, "error": self.lan.error},
            "ts": self.ts,
        }


async def probe_lan(host: str, port: int, wait: float = 1.0) -> LanProbe:
    """Does `host:port` accept a TCP connection? (The device's API answering.)"""
    start = time.perf_counter()
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), wait)
    except (OSError, TimeoutError) as exc:
        return LanProbe(host, port, False, error=type(exc).__name__ + (
            f": {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else ""))
    latency = (time.perf_counter() - start) * 1000
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return LanProbe(host, port, True, round(latency, 2))


def choose_transport(lan: LanProbe | None, ble: tuple[int, float] | None, *,
                     prefer: TransportName = "lan", min_rssi: int = MIN_RSSI,
                     ble_fresh: float = BLE_FRESH) -> TransportChoice:
    """LAN when its IP answers (it is faster and does not hold the radio), BLE when the
    LAN fails and the device was heard recently with a usable signal; None otherwise."""
    now = time.time()
    rssi = ble[0] if ble is not None else None
    ble_ok = ble is not None and ble[1] <= ble_fresh and ble[0] >= min_rssi
    if ble is None:
        ble_why = "not heard over BLE"
    elif ble[1] > ble_fresh:
        ble_why = f"last BLE advertisement {ble[1]:.0f} s ago"
    elif ble[0] < min_rssi:
        ble_why = f"BLE signal too weak ({ble[0]} dBm < {min_rssi} dBm)"
    else:
        ble_why = f"BLE RSSI {ble[0]} dBm"
    if lan is None:
        lan_why = "no LAN address known"
    elif lan.ok:
        lan_why = f"{lan.host}:{lan.port} answered in {lan.latency_ms} ms"
    else:
        lan_why = f"{lan.host}:{lan.port} did not answer ({lan.error})"
    lan_ok = lan is not None and lan.ok
    if lan_ok and (prefer == "lan" or not ble_ok):
        reason = f"LAN: {lan_why}" + (f"; {ble_why} kept as fallback" if ble_ok else "")
        return TransportChoice("lan", reason, lan, rssi, now)
    if ble_ok:
        reason = f"BLE: {ble_why}; " + (f"LAN {lan_why}" if not lan_ok else "preferred")
        return TransportChoice("ble", reason, lan, rssi, now)
    return TransportChoice(None, f"unreachable: {lan_why}; {ble_why}", lan, rssi, now)


class Connectivity:
    """The current transport choice of each device that has more than one way in."""

    def __init__(self, devices: DeviceRegistry, bus: EventBus) -> None:
        self._devices = devices
        self._bus = bus
        self._choices: dict[str, TransportChoice] = {}

    def get(self, device_id: str) -> TransportChoice | None:
        return self._choices.get(device_id)

    def to_json(self, device_id: str) -> dict[str, Any] | None:
        choice = self._choices.get(device_id)
        return choice.to_json() if choice is not None else None

    def set(self, device_id: str, choice: TransportChoice) -> None:
        """Record the choice and, when the transport changed, the device's `transport`."""
        previous = self._choices.get(device_id)
        self._choices[device_id] = choice
        device = self._devices.find(device_id)
        if device is None:
            return
        if choice.transport is not None and device.transport != choice.transport:
            self._devices.add(replace(device, transport=choice.transport))
        elif previous is None or previous.reason != choice.reason:
            # the device's JSON shows the choice: let cached copies know
            self._bus.publish(DeviceRegistryChanged("updated", device_id))

    def forget(self, device_id: str) -> None:
        self._choices.pop(device_id, None)
