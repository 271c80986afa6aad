"""BTHome v2 sensors over BLE: readings become device state, button presses device events.

Advertisements reach us through the hub's one scanner (matcher: service data 0xFCD2).
Parsing, decryption (AES-CCM with the device's bind key) and replay checks are bthome-ble's;
this module maps its results onto the hub. Until a sensor is adopted only what identifies
it (name, encryption, which sensors it has) is shown as discovered; readings are not kept.

bthome-ble remembers the last encryption counter only in memory, so after a restart it took
any older (replayed) advertisement. The last accepted counter of each sensor is therefore
kept durably (`ctx.store_value`) and an advertisement with an older one is refused, across
restarts. A sensor whose counter really restarted (a battery change) looks the same as a
replay; when the old-counter advertisement decrypts with the sensor's key, the owner is
asked (`counter_reset` confirmation on the device) and only their confirmation resets it:
the counter they confirmed becomes the new durable floor (older ones are still refused).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from hub.facade import (
    AttributeMeta,
    BleAdvertisement,
    Device,
    DiscoveredDevice,
    DiscoveryInfo,
    IntegrationContext,
)

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
# bookkeeping values of the format, not readings of the sensor
_NOT_STATE = {"packet_id", "signal_strength"}
_EVENTS = ("press", "double_press", "triple_press", "long_press", "long_double_press",
           "long_triple_press", "hold_press", "rotate_left", "rotate_right")


def _key_name(address: str) -> str:
    return "bind_key:" + address.upper()


def _counter_key(address: str) -> str:
    return "counter:" + address.upper()


def _device_id(address: str) -> str:
    return "bthome." + address.replace(":", "").lower()


def _address(key_name: str) -> str:
    return key_name.removeprefix("bind_key:")


def create() -> BTHomeIntegration:
    return BTHomeIntegration()


@dataclass
class _Sensor:
    parser: Any  # bthome_ble.BTHomeBluetoothDeviceData
    sensors: set[str] = field(default_factory=set)
    meta: dict[str, AttributeMeta] = field(default_factory=dict)  # units, device classes
    described: set[str] = field(default_factory=set)  # objects whose meta was looked at
    encrypted: bool = False
    name: str | None = None
    model: str | None = None
    went_back: tuple[int, int] | None = None  # (last accepted, seen) counters, refused


@dataclass
class BTHomeIntegration:
    keys: dict[str, bytes] = field(default_factory=dict)
    sensors: dict[str, _Sensor] = field(default_factory=dict)
    adopted: dict[str, str] = field(default_factory=dict)  # BLE address -> device id
    counters: dict[str, int] = field(default_factory=dict)  # last accepted, durable
    ctx: IntegrationContext | None = None

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        # Bind keys live encrypted in the vault. Keys written in the config are moved there
        # at start (the owner may then remove them from the file).
        # (the schema checks only the length: a pattern error would echo the key)
        imported = 0
        for address, key in (ctx.config.get("bind_keys") or {}).items():
            try:
                raw = bytes.fromhex(key)
            except ValueError:
                ctx.log.error("bind key for %s is not 32 hex digits; ignored", address)
                continue
            name = _key_name(address)
            stored = await ctx.device_secret(name)
            if stored is None or stored.get("bind_key") != raw.hex():
                await ctx.store_device_secret(name, {"bind_key": raw.hex()},
                                              device_id=_device_id(address))
                imported += 1
        if imported:
            ctx.log.info("moved %d bind key(s) from the config into the encrypted vault; "
                         "they can be removed from the config file now", imported)
        for name in await ctx.device_secret_names():
            secret = await ctx.device_secret(name)
            if secret and "bind_key" in secret:
                self.keys[_address(name)] = bytes.fromhex(secret["bind_key"])
        for device in ctx.devices():
            if device.mac:
                self.adopted[device.mac.upper()] = device.id
        for key, value in (await ctx.stored_values()).items():
            if key.startswith("counter:") and isinstance(value, int):
                self.counters[key.removeprefix("counter:")] = value
        ctx.on_advertisement(self._on_advertisement)
        ctx.on_adopt(self._adopt)
        if self.adopted or self.keys:
            # this home has BTHome sensors: bthome-ble (~150 ms of imports, ~7 MiB with
            # habluetooth) is loaded off the loop a little after start. A home without any
            # loads it only when a BTHome advertisement is first heard (bench.core).
            ctx.create_task(_prewarm(ctx, "bthome_ble"), "import")

    async def unload(self, ctx: IntegrationContext) -> None:
        for device_id in self.adopted.values():
            ctx.set_available(device_id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        raise NotImplementedError("BTHome sensors accept no commands")  # none declared

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: its bind key and what was kept about it go."""
        address = (device.mac or "").upper()
        self.adopted.pop(address, None)
        self.sensors.pop(address, None)
        self.keys.pop(address, None)
        if self.counters.pop(address, None) is not None:
            ctx.forget_value(_counter_key(address))
        await ctx.forget_device_secret(_key_name(address))

    # advertisements

    def _on_advertisement(self, adv: BleAdvertisement) -> DiscoveryInfo | None:
        ctx = self.ctx
        assert ctx is not None
        data = adv.service_data.get(BTHOME_UUID)
        if not data or data[0] >> 5 != 2:
            ctx.report_malformed("BTHome advertisement", f"from {adv.address}: not BTHome v2")
            return None
        address = adv.address.upper()
        sensor = self.sensors.get(address)
        if sensor is None:
            from bthome_ble import BTHomeBluetoothDeviceData

            sensor = self.sensors[address] = _Sensor(
                BTHomeBluetoothDeviceData(self.keys.get(address)))
        sensor.encrypted = bool(data[0] & 0x01)
        counter = _counter(data) if sensor.encrypted else None
        last = self.counters.get(address)
        if counter is not None and last is not None and counter < last:
            sensor.name = sensor.name or adv.name
            self._went_back(ctx, address, sensor, adv, last, counter)
            return self._info(address, sensor)
        try:
            update = sensor.parser.update(_service_info(adv))
        except Exception as exc:  # the library must not take the scanner down
            ctx.report_malformed("BTHome payload", f"from {address}: {type(exc).__name__}")
            return None
        if counter is not None and sensor.parser.bindkey_verified \
                and sensor.parser.encryption_counter == counter and counter != last:
            self._accepted(ctx, address, sensor, counter)
        readings = {k.key: v.native_value for k, v in update.entity_values.items()
                    if k.key not in _NOT_STATE}
        readings.update({k.key: bool(v.native_value)
                         for k, v in update.binary_entity_values.items()})
        events = [(k.key, e.event_type) for k, e in update.events.items() if e.event_type]
        if not readings and not events and not sensor.encrypted and len(data) > 1:
            ctx.report_malformed("BTHome payload", f"from {address}: no known object")
        sensor.sensors.update(readings)
        sensor.name, sensor.model = update.title or adv.name, _model(update)
        if not readings.keys() <= sensor.described:
            sensor.meta.update(_meta(update, readings))
            sensor.described.update(readings)
        device_id = self.adopted.get(address)
        if device_id is not None and ctx.device(device_id) is not None:
            self._deliver(ctx, device_id, sensor, readings, events)
        return self._info(address, sensor)

    def _info(self, address: str, sensor: _Sensor) -> DiscoveryInfo:
        data: dict[str, Any] = {"encrypted": sensor.encrypted,
                                "bind_key": _key_state(sensor, self.keys, address),
                                "sensors": sorted(sensor.sensors)}
        if sensor.went_back is not None:
            data["counter"] = {"state": "went_back", "last_accepted": sensor.went_back[0],
                               "seen": sensor.went_back[1]}
        return DiscoveryInfo(name=sensor.name, mac=address, model=sensor.model, data=data)

    # the encryption counter (replay protection that survives a restart)

    def _accepted(self, ctx: IntegrationContext, address: str, sensor: _Sensor,
                  counter: int) -> None:
        self.counters[address] = counter
        ctx.store_value(_counter_key(address), counter)
        if sensor.went_back is not None:  # the sensor went on from its old counter
            sensor.went_back = None
            device_id = self.adopted.get(address)
            if device_id is not None:
                ctx.withdraw_confirmation(device_id, "counter_reset")

    def _went_back(self, ctx: IntegrationContext, address: str, sensor: _Sensor,
                   adv: BleAdvertisement, last: int, seen: int) -> None:
        """Refuse; if the advertisement is genuine (decrypts with the key), ask the owner."""
        if not _decrypts(self.keys.get(address), adv):
            ctx.report_malformed("BTHome payload", f"from {address}: old counter, bad MIC")
            return
        if sensor.went_back is None:
            ctx.log.warning("%s: encryption counter %d is older than the last accepted %d: "
                            "refused (a replay, or the sensor restarted: the owner decides)",
                            address, seen, last)
        sensor.went_back = (last, seen)
        device_id = self.adopted.get(address)
        if device_id is None:
            return

        async def reset() -> None:
            # The owner confirmed the counter they were shown: it becomes the floor (kept
            # durably), so anything older is still refused as a replay, now and after a
            # restart. bthome-ble's own check starts again from it (ours runs first).
            self.counters[address] = seen
            ctx.store_value(_counter_key(address), seen)
            sensor.parser.reset_encryption_counter()
            sensor.went_back = None

        ctx.ask_confirmation(
            device_id, "counter_reset",
            f"{address} sent an encryption counter ({seen}) older than the last one accepted "
            f"({last}). Its readings are refused. If its battery was just changed, confirm "
            f"to accept its new counter; otherwise someone may be replaying old "
            f"advertisements.", {"last_accepted": last, "seen": seen}, reset)

    def _deliver(self, ctx: IntegrationContext, device_id: str, sensor: _Sensor,
                 readings: dict[str, Any], events: list[tuple[str, str]]) -> None:
        device = ctx.device(device_id)
        if device is not None and (not set(sensor.sensors) <= set(device.attributes)
                                   or device.attribute_meta != sensor.meta):
            ctx.register_device(replace(device, attributes=tuple(sorted(sensor.sensors)),
                                        attribute_meta=dict(sensor.meta)))
        if readings:
            ctx.set_state(device_id, readings)
        for source, event_type in events:
            ctx.fire_event(device_id, event_type, {"source": source})

    # adoption

    async def _adopt(self, item: DiscoveredDevice, name: str | None) -> Device:
        assert self.ctx is not None
        address = (item.address or "").upper()
        device_id = _device_id(address)
        existing = self.ctx.device(device_id)
        sensor = self.sensors.get(address)
        device = self.ctx.register_device(Device(
            id=device_id, name=name or (existing.name if existing else item.name),
            integration=self.ctx.name, mac=address, model=item.model or "BTHome sensor",
            transport="ble", attributes=tuple(sorted(sensor.sensors)) if sensor else (),
            attribute_meta=dict(sensor.meta) if sensor else {}, events=_EVENTS,
        ))
        self.adopted[address] = device.id
        return device


def _service_info(adv: BleAdvertisement) -> Any:
    from habluetooth import BluetoothServiceInfoBleak

    return BluetoothServiceInfoBleak(
        name=adv.name or "", address=adv.address, rssi=adv.rssi,
        manufacturer_data=adv.manufacturer_data, service_data=adv.service_data,
        service_uuids=list(adv.service_uuids), source="local",
        device=None,  # type: ignore[arg-type]  # bthome-ble reads the advertisement only
        advertisement=None, connectable=False, time=time.monotonic(),
        tx_power=adv.tx_power)


def _counter(data: bytes) -> int | None:
    """The encryption counter of an encrypted BTHome v2 payload: the 4 bytes (little-endian)
    before the 4-byte MIC at its end (info byte + ciphertext + counter + MIC)."""
    if len(data) < 9:
        return None
    return int.from_bytes(data[-8:-4], "little")


def _decrypts(key: bytes | None, adv: BleAdvertisement) -> bool:
    """Whether bthome-ble decrypts the advertisement with the key (a fresh parser: the
    sensor's own keeps its state)."""
    if key is None:
        return False
    from bthome_ble import BTHomeBluetoothDeviceData

    probe = BTHomeBluetoothDeviceData(key)
    try:
        probe.update(_service_info(adv))
    except Exception:
        return False
    return bool(probe.bindkey_verified)


def _meta(update: Any, readings: dict[str, Any]) -> dict[str, AttributeMeta]:
    """Units and device classes bthome-ble states for each object of the format."""
    out: dict[str, AttributeMeta] = {}
    for descriptions in (update.entity_descriptions, update.binary_entity_descriptions):
        for key, desc in descriptions.items():
            if key.key not in readings:
                continue
            unit = getattr(desc, "native_unit_of_measurement", None)
            kind = desc.device_class
            out[key.key] = AttributeMeta(
                unit=getattr(unit, "value", unit), device_class=getattr(kind, "value", kind))
    return {k: v for k, v in out.items() if v.to_json()}


def _model(update: Any) -> str:
    for info in update.devices.values():
        if info.model:
            return str(info.model)
    return "BTHome sensor"


def _key_state(sensor: _Sensor, keys: dict[str, bytes], address: str) -> str:
    if not sensor.encrypted:
        return "not needed"
    if address not in keys:
        return "missing"
    return "ok" if sensor.parser.bindkey_verified else "not verified"


async def _prewarm(ctx: IntegrationContext, module: str) -> None:
    """Import the parser library off the loop, a little after start-up (not before READY)."""
    await ctx.clock.sleep(2.0)
    await asyncio.to_thread(importlib.import_module, module)
