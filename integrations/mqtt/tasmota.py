"""Tasmota's native discovery (`tasmota/discovery/<MAC>/config` and `.../sensors`, retained),
read with hatasmota, the library Home Assistant uses, on the MQTT integration's connection.

hatasmota parses the firmware's discovery messages into entities (relays, lights, fans,
shutters, switch inputs, sensors, status sensors, button and switch triggers), reads their
state and publishes their commands; tasmota_broker.Broker gives it our broker connection,
and this module turns its entities (tasmota_parts) into hub devices listed in
/api/discovered (source `mqtt`) for adoption. As for the convention's devices, values are
held in memory only until the owner adopts a device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hatasmota.discovery import (
    TasmotaDiscovery,
    get_device_config,
    get_entities_for_platform,
    get_entity,
    get_trigger,
    get_triggers,
)
from hatasmota.entity import TasmotaAvailability
from hatasmota.mqtt import TasmotaMQTTClient
from hatasmota.trigger import TasmotaTrigger

from hub.facade import (
    Device,
    DiscoveryInfo,
    IntegrationContext,
    ValidationError,
    normalize_mac,
)
from integrations.mqtt.connection import Connection
from integrations.mqtt.entities import CommandError
from integrations.mqtt.hubdevice import (
    RateWindow,
    adopted,
    capabilities,
    pick_entity,
    refreshed,
    report,
    withdraw,
)
from integrations.mqtt.tasmota_broker import RECORDING, Broker
from integrations.mqtt.tasmota_parts import Part, make_part, slug

DEFAULT_PREFIX = "tasmota/discovery"
PLATFORMS = ("switch", "light", "fan", "cover", "binary_sensor", "sensor")
MAX_DEVICES = 2000


@dataclass(slots=True)
class TasmotaStats:
    messages: int = 0
    oversize: int = 0
    flood_dropped: int = 0
    refused: int = 0
    devices: int = 0
    removed: int = 0
    commands: int = 0


@dataclass(slots=True)
class TasmotaDevice:
    mac: str
    config: dict[str, Any]
    client: TasmotaMQTTClient
    parts: dict[str, Part] = field(default_factory=dict)  # hatasmota unique id -> part
    triggers: dict[str, tuple[TasmotaTrigger, str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    online: bool | None = None
    device_id: str | None = None
    window: RateWindow = field(default_factory=RateWindow)

    @property
    def key(self) -> str:
        return f"tasmota:{self.mac}"

    @property
    def deep_sleep(self) -> bool:
        return bool(self.config.get("dslp"))


class Tasmota:
    """Tasmota devices from their native discovery, on the integration's broker."""

    def __init__(self, ctx: IntegrationContext, prefix: str, connection: Connection, *,
                 max_payload: int, max_rate: float) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.broker = Broker(connection.subscribe, connection.unsubscribe, connection.publish,
                             self.refuse, ctx.log)
        self.max_payload = max_payload
        self.max_rate = max_rate
        self.stats = TasmotaStats()
        self.devices: dict[str, TasmotaDevice] = {}  # MAC -> device
        self.by_discovery_id: dict[str, str] = {}  # DiscoveredDevice id -> MAC
        self.connected = False
        self._discovery = TasmotaDiscovery(prefix, self.broker.client("discovery"))

    async def start(self) -> None:
        await self._discovery.start_discovery(self._device_discovered,
                                              self._sensors_discovered)

    async def stop(self) -> None:
        await self.broker.stop()

    def on_message(self, topic: str, payload: bytes) -> bool:
        """Hand a message to hatasmota if one of its subscriptions wants it (never raises);
        False when none does."""
        subs = self.broker.matches(topic)
        if not subs:
            return False
        self.stats.messages += 1
        if len(payload) > self.max_payload:
            self.stats.oversize += 1
            self.refuse(f"{len(payload)} bytes on {topic[:80]} is over the "
                         f"{self.max_payload}-byte limit")
            return True
        owner = subs[0].owner
        if owner == "discovery" and payload and not _is_json(payload):  # hatasmota would
            self.refuse(f"{topic[:120]}: not JSON")  # only log it
            return True
        device = self.devices.get(owner)
        if device is not None and not self._admit(device):
            return True
        try:
            self.broker.dispatch(subs, topic, payload)
        except Exception:  # a bug here must not take the connection down
            self.ctx.log.exception("Tasmota message on %s could not be handled", topic[:120])
        return True

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        for device in list(self.devices.values()):
            self._publish_device(device)

    # -- discovery (hatasmota's callbacks) -----------------------------------------------------

    async def _device_discovered(self, payload: dict[str, Any], mac: str) -> None:
        device = self.devices.get(mac)
        if not payload:  # the empty retained config: Tasmota was reset or SetOption19 1
            if device is not None:
                await self._remove(device)
            return
        if device is None:
            if len(self.devices) >= MAX_DEVICES:
                self.refuse(f"Tasmota device {mac}: more than {MAX_DEVICES} devices")
                return
            device = self.devices[mac] = TasmotaDevice(mac, dict(payload),
                                                       self.broker.client(mac))
            self.stats.devices += 1
        device.config = dict(payload)
        wanted: dict[str, Any] = {}
        for platform in PLATFORMS:
            for config, _hash in get_entities_for_platform(payload, platform):
                if config is not None:
                    wanted[config.unique_id] = config
        await self._sync_parts(device, wanted, origin="config")
        triggers = {t.trigger_id: t for t in get_triggers(payload) if t.is_active}
        for tid in set(device.triggers) - set(triggers):
            await device.triggers.pop(tid)[0].unsubscribe_topics()
        for tid, tconfig in triggers.items():
            known = device.triggers.get(tid)
            if known is not None and known[0].config_same(tconfig):
                continue
            if known is not None:
                await known[0].unsubscribe_topics()
            trigger = get_trigger(tconfig, device.client)
            if trigger is None:
                continue
            name = slug(f"{tconfig.type}_{tconfig.subtype}")
            trigger.set_on_trigger_callback(partial(self._fired, device, name, tconfig))
            device.triggers[tid] = (trigger, name)
            await trigger.subscribe_topics()
        self._publish_device(device)

    async def _sensors_discovered(self, sensors: list[tuple[Any, Any]], mac: str) -> None:
        device = self.devices.get(mac)
        if device is None:
            return
        wanted = {config.unique_id: config for config, _hash in sensors
                  if config.endpoint == "sensor"}  # status sensors come with the config
        await self._sync_parts(device, wanted, origin="sensors")
        self._publish_device(device)

    async def _sync_parts(self, device: TasmotaDevice, wanted: dict[str, Any],
                          origin: str) -> None:
        for uid in [u for u, p in device.parts.items() if p.origin == origin
                    and u not in wanted]:
            part = device.parts.pop(uid)
            await part.entity.unsubscribe_topics()
            for name in part.attributes():
                device.values.pop(name, None)
        for uid, config in wanted.items():
            known = device.parts.get(uid)
            if known is not None and known.entity.config_same(config):
                continue
            if known is not None:
                await known.entity.unsubscribe_topics()
            entity = get_entity(config, device.client)
            if entity is None:
                continue
            part = make_part(entity)
            device.parts[uid] = part
            entity.set_on_state_callback(partial(self._state, device, part))
            if isinstance(entity, TasmotaAvailability):
                entity.set_on_availability_callback(partial(self._availability, device))
            await entity.subscribe_topics()

    async def _remove(self, device: TasmotaDevice) -> None:
        self.stats.removed += 1
        for part in device.parts.values():
            await part.entity.unsubscribe_topics()
        for trigger, _name in device.triggers.values():
            await trigger.unsubscribe_topics()
        device.parts.clear()
        device.triggers.clear()
        withdraw(self.ctx, device.key, device.device_id)
        del self.devices[device.mac]

    # -- state (hatasmota's entity callbacks) ----------------------------------------------------

    def _state(self, device: TasmotaDevice, part: Part, *args: Any, **kwargs: Any) -> None:
        if self.devices.get(device.mac) is not device or part not in device.parts.values():
            return
        try:
            values = part.state(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            self.refuse(f"{device.mac}/{part.key}: {exc}")
            return
        self._set_values(device, values)

    async def _availability(self, device: TasmotaDevice, online: bool) -> None:
        if device.online != online:
            device.online = online
            self._publish_device(device)

    def _fired(self, device: TasmotaDevice, name: str, config: Any) -> None:
        if device.device_id is not None and self.ctx.device(device.device_id) is not None:
            self.ctx.fire_event(device.device_id, name, {"type": config.type,
                                                         "subtype": config.subtype})

    def _set_values(self, device: TasmotaDevice, values: dict[str, Any]) -> None:
        if not values:
            return
        device.values.update(values)
        if device.device_id is not None and self.ctx.device(device.device_id) is not None:
            self.ctx.set_state(device.device_id, values)

    def _admit(self, device: TasmotaDevice) -> bool:
        if device.window.admit(self.ctx.clock.monotonic(), self.max_rate):
            return True
        self.stats.flood_dropped += 1
        return False

    # -- the hub's side: discovered items, adoption, commands ------------------------------------

    def available(self, device: TasmotaDevice) -> bool:
        return self.connected and bool(device.parts) and (device.deep_sleep
                                                          or device.online is True)

    def discovery_info(self, device: TasmotaDevice) -> DiscoveryInfo:
        info = get_device_config(device.config)
        parts = [{"key": p.key, "component": p.component}
                 for p in device.parts.values()]
        return DiscoveryInfo(
            name=info.get("name") or device.mac, mac=normalize_mac(device.mac),
            model=info.get("md") or device.config.get("md"), fw=info.get("sw"),
            data={"manufacturer": "Tasmota", "identifiers": [device.mac],
                  "protocol": "tasmota", "topic": device.config.get("t"),
                  "ip": device.config.get("ip"),
                  "entities": sorted(parts, key=lambda p: p["key"]),
                  "events": sorted(name for _t, name in device.triggers.values())})

    def adopt(self, mac: str, name: str | None) -> Device:
        device = self.devices.get(mac)
        if device is None or not device.parts:
            raise ValidationError("id", "this Tasmota device withdrew its announcement")
        device_id = "mqtt.tasmota_" + mac.lower()
        existing = self.ctx.device(device_id)
        info = self.discovery_info(device)
        base = Device(id=device_id, integration=self.ctx.name,
                      name=name or (existing.name if existing else None) or info.name
                      or mac, mac=info.mac, model=info.model, manufacturer="Tasmota",
                      fw_version=info.fw, transport="mqtt",
                      area=existing.area if existing else None)
        device.device_id = device_id
        registered = adopted(self.ctx, base, existing, partial(self._register, device),
                             device.values)
        self.ctx.set_available(device_id, self.available(device))
        return registered

    async def command(self, device_id: str, name: str,
                      params: dict[str, Any]) -> list[tuple[str, str]]:
        """Carry out a command through hatasmota; returns what it published."""
        device = self._by_device_id(device_id)
        if device is None:
            raise CommandError("command", "the Tasmota device is not announced")
        part, params = pick_entity(device.parts.values(), name, params)
        recording: list[tuple[str, str]] = []
        token = RECORDING.set(recording)
        try:
            assumed = await part.command(name, params)
        finally:
            RECORDING.reset(token)
        self.stats.commands += 1
        self._set_values(device, assumed)
        return recording

    def forget(self, device_id: str) -> None:
        device = self._by_device_id(device_id)
        if device is not None:
            device.device_id = None
            device.values.clear()
            self._publish_device(device)

    def owns(self, device_id: str) -> bool:
        return device_id.startswith("mqtt.tasmota_")

    # -- helpers -------------------------------------------------------------------------------

    def _publish_device(self, device: TasmotaDevice) -> None:
        available = self.available(device)
        info = self.discovery_info(device)
        item, device.device_id, existing = report(self.ctx, device.key, info, available,
                                                  device.device_id)
        self.by_discovery_id[item.id] = device.mac
        if existing is not None:
            self._register(device, refreshed(existing, model=info.model, manufacturer=None,
                                             fw_version=info.fw, mac=info.mac))
            self.ctx.set_available(existing.id, available)

    def _register(self, device: TasmotaDevice, base: Device) -> Device:
        events = sorted({name for _trigger, name in device.triggers.values()})
        return self.ctx.register_device(replace(base, **capabilities(device.parts.values(),
                                                                     events)))

    def _by_device_id(self, device_id: str) -> TasmotaDevice | None:
        return next((d for d in self.devices.values() if d.device_id == device_id), None)

    def refuse(self, detail: str) -> None:
        """Bad input from a Tasmota device or a hostile client: counted, logged at debug."""
        self.stats.refused += 1
        self.ctx.report_malformed("Tasmota message", detail)


def _is_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True
