"""The hub's one BLE scanner (bleak on BlueZ), kept alive by itself.

No D-Bus, no BlueZ or no adapter at start: one clear warning, BLE is off, the hub runs, and
a background retry picks BLE up if it appears (bluetoothd often starts after us at boot).
At runtime the adapter disappearing, bluetoothd restarting, the adapter powering off or
advertisements stopping (a Pi's built-in adapter does that) is noticed; the scanner is
restarted with capped exponential backoff, logging once on loss and once on recovery (the
core's `ReconnectLoop`; its "connection" is a scanner that delivers advertisements).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.reconnect import BackoffPolicy, ReconnectLoop
from hub.thirdparty import release_bleak_manager

if TYPE_CHECKING:
    from hub.discovery.host import DiscoveryHost

__all__ = ["BleScanner", "BleUnavailable", "release_bleak_manager"]

_LOG = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER_IFACE = "org.bluez.Adapter1"
MONITOR_MANAGER_IFACE = "org.bluez.AdvertisementMonitorManager1"


class BleUnavailable(Exception):
    """BLE cannot run right now; the message says why, for people."""


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    name: str  # hci0
    path: str  # /org/bluez/hci0
    passive: bool  # BlueZ offers advertisement monitors (passive scanning)
    powered: bool


class BleScanner:
    """Supervises one bleak scanner; feeds `service.handle_advertisement`."""

    def __init__(self, service: DiscoveryHost) -> None:
        self.service = service
        self.config = service.config.ble
        self.clock = service.clock
        self.state = "starting"  # starting | scanning | recovering | unavailable | stopped
        self.reason: str | None = None
        self.adapter: str | None = None
        self.mode: str | None = None
        self.losses = 0
        self.restarts = 0
        self.last_advertisement: float | None = None
        self._scanner: Any = None
        self._bus: Any = None
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._awaiting_recovery = False  # recovered on the next advertisement, not at restart
        self._started_at = 0.0
        self._loop = ReconnectLoop(
            "BLE", self._session, clock=self.clock, log=_LOG, describe=self._describe,
            policy=BackoffPolicy(initial=self.config.restart_min,
                                 maximum=max(self.config.restart_min, self.config.restart_max),
                                 auth_failure_delay=0.0))

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._stop_scanner()
        self._close_bus()
        await release_bleak_manager()
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        age = (None if self.last_advertisement is None
               else round(self.clock.monotonic() - self.last_advertisement, 1))
        return {"state": self.state, "reason": self.reason, "adapter": self.adapter,
                "mode": self.mode, "losses": self.losses, "restarts": self.restarts,
                "last_advertisement_age": age}

    # supervision

    async def _session(self) -> None:
        """Find the adapter, scan, and watch until it is lost; raise why (the loop retries)."""
        try:
            adapter = await self._probe()
            # bleak (0.8 MiB of RSS) is loaded only once there is an adapter to scan with,
            # in a thread: a Pi takes ~0.1 s to import it
            await asyncio.to_thread(importlib.import_module, "bleak")
            await self._start_scanner(adapter)
        except Exception as exc:
            reason = _describe(exc)
            await self._stop_scanner()
            self._close_bus()
            self.state = "unavailable" if self.losses == 0 else "recovering"
            self.reason = reason
            raise BleUnavailable(reason) from exc
        self.state, self.reason = "scanning", None
        if not self._awaiting_recovery:  # after a stall, the first advertisement is the proof
            self._loop.connected()
        reason = await self._watch()
        await self._stop_scanner()
        self._close_bus()
        self.losses += 1
        self.restarts += 1
        self.state, self.reason = "recovering", reason
        raise BleUnavailable(f"BLE adapter {adapter.name} lost: {reason}")

    def _describe(self, kind: str, error: BaseException | None) -> str:
        if kind == "failed" and self.losses == 0:
            return (f"BLE is off: {error}. Everything else runs; BLE starts by itself when it "
                    "becomes available.")
        if kind == "up" and self.losses == 0:
            return f"BLE is available: scanning on {self.adapter} ({self.mode})"
        if kind == "up" and self._awaiting_recovery:
            return f"BLE recovered: advertisements arriving again on {self.adapter}"
        if kind == "up":
            return f"BLE recovered: scanning again on {self.adapter} ({self.mode})"
        return f"{error}; restarting it with backoff"

    async def _probe(self) -> AdapterInfo:
        """Connect to the system bus and find the adapter; BleUnavailable says why not."""
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        try:
            bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), 5)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BleUnavailable(f"no D-Bus system bus ({_describe(exc)})") from exc
        except Exception as exc:
            raise BleUnavailable(f"cannot connect to the D-Bus system bus ({exc})") from exc
        self._bus = bus
        reply = await bus.call(Message(destination=BLUEZ, path="/",
                                       interface="org.freedesktop.DBus.ObjectManager",
                                       member="GetManagedObjects"))
        if reply is None or reply.message_type == MessageType.ERROR:
            error = reply.error_name if reply is not None else "no reply"
            raise BleUnavailable(f"BlueZ (bluetoothd) is not running ({error})")
        adapters = sorted(
            (path, ifaces) for path, ifaces in reply.body[0].items() if ADAPTER_IFACE in ifaces)
        if self.config.adapter:
            adapters = [(p, i) for p, i in adapters if p.rsplit("/", 1)[-1] == self.config.adapter]
        if not adapters:
            which = f"adapter {self.config.adapter}" if self.config.adapter else "adapter"
            raise BleUnavailable(f"no Bluetooth {which} found")
        path, ifaces = adapters[0]
        props = ifaces[ADAPTER_IFACE]
        powered = bool(_value(props.get("Powered"), True))
        if not powered:
            raise BleUnavailable(f"Bluetooth adapter {path.rsplit('/', 1)[-1]} is powered off")
        monitor = ifaces.get(MONITOR_MANAGER_IFACE)
        passive = monitor is not None and "or_patterns" in (
            _value(monitor.get("SupportedMonitorTypes"), []) or [])
        self._lost = asyncio.Event()
        bus.add_message_handler(self._on_bus_message)
        for rule in (
            f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.ObjectManager',"
            "member='InterfacesRemoved'",
            f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.Properties',"
            f"member='PropertiesChanged',path='{path}'",
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
            f"member='NameOwnerChanged',arg0='{BLUEZ}'",
        ):
            await bus.call(Message(destination="org.freedesktop.DBus",
                                   path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                                   member="AddMatch", signature="s", body=[rule]))
        return AdapterInfo(path.rsplit("/", 1)[-1], path, passive, powered)

    async def _start_scanner(self, adapter: AdapterInfo) -> None:
        from bleak import BleakScanner
        from bleak.assigned_numbers import AdvertisementDataType

        mode = self.config.scanning_mode
        patterns = self.service.index.or_patterns()
        use_passive = mode == "passive" or (mode == "auto" and adapter.passive
                                            and patterns is not None)
        if mode == "passive" and patterns is None:
            _LOG.warning("passive BLE scanning cannot express every matcher; scanning actively")
            use_passive = False
        self.adapter = adapter.name
        self._scanner = None
        if use_passive:
            try:
                scanner = BleakScanner(self._on_detection, scanning_mode="passive", bluez={
                    "adapter": adapter.name,
                    "or_patterns": [(start, AdvertisementDataType(ad_type), data)
                                    for start, ad_type, data in patterns or []]})
                await scanner.start()
                self._scanner, self.mode = scanner, "passive"
            except Exception as exc:
                _LOG.info("passive BLE scanning unavailable (%s); scanning actively",
                          _describe(exc))
        if self._scanner is None:
            scanner = BleakScanner(self._on_detection, scanning_mode="active",
                                   bluez={"adapter": adapter.name})
            await scanner.start()
            self._scanner, self.mode = scanner, "active"
        self.last_advertisement = None
        self._started_at = self.clock.monotonic()

    async def _stop_scanner(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await asyncio.wait_for(scanner.stop(), 5)
            except Exception as exc:  # the adapter may already be gone
                _LOG.debug("stopping the BLE scanner failed: %s", _describe(exc))

    def _close_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.disconnect()

    async def _watch(self) -> str:
        """Wait until the adapter is lost or stalls; return why."""
        assert self._lost is not None
        stall = self.config.stall_after
        tick = min(max(stall / 4, 0.05), 5.0)
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), tick)
                return self._lost_reason
            except TimeoutError:
                pass
            if self._bus is not None and not self._bus.connected:
                return "D-Bus connection lost"
            since = self.last_advertisement or self._started_at
            if self.clock.monotonic() - since > stall:
                self._awaiting_recovery = True
                return f"no advertisements for {stall:g} s"

    def _on_bus_message(self, msg: Any) -> None:
        from dbus_fast import MessageType

        if msg.message_type != MessageType.SIGNAL or self._lost is None:
            return
        path = f"/org/bluez/{self.adapter}"
        if msg.member == "InterfacesRemoved" and msg.body and msg.body[0] == path and (
                ADAPTER_IFACE in msg.body[1]):
            self._lose("adapter removed")
        elif msg.member == "PropertiesChanged" and msg.path == path and msg.body[0] == (
                ADAPTER_IFACE):
            changed = msg.body[1]
            if "Powered" in changed and not _value(changed["Powered"], True):
                self._lose("adapter powered off")
        elif msg.member == "NameOwnerChanged" and msg.body[0] == BLUEZ and not msg.body[2]:
            self._lose("bluetoothd stopped")

    def _lose(self, reason: str) -> None:
        if self._lost is not None and not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    def _on_detection(self, device: Any, adv: Any) -> None:
        self.last_advertisement = self.clock.monotonic()
        if self._awaiting_recovery:
            self._loop.connected()
            self._awaiting_recovery = False
        try:
            self.service.handle_advertisement(
                device.address, adv.local_name, adv.rssi, tuple(adv.service_uuids),
                adv.service_data, adv.manufacturer_data, adv.tx_power)
        except Exception:  # handle_advertisement never raises; belt and braces for bleak
            self.service.stats.malformed += 1
            _LOG.debug("advertisement from %s failed", device.address, exc_info=True)


def _value(v: Any, default: Any) -> Any:
    if v is None:
        return default
    return getattr(v, "value", v)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, BleUnavailable) else f"{type(exc).__name__}: {text}"
