"""From MQTT messages to hub devices, and from hub commands to MQTT messages (no network).

Announced entities are grouped into devices by their `device` block. A device is listed as
discovered at once (source `mqtt`); its values are kept in memory only until the owner adopts
it, then every change goes to the hub's state (and so to history). Every refusal (garbage,
oversize, wrong types, unknown component, a state that does not parse, a flood) is counted in
`stats` and logged at debug; none of them raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hub.facade import (
    Device,
    DiscoveryInfo,
    IntegrationContext,
    ValidationError,
)
from integrations.mqtt.discovery import (
    DeviceBlock,
    DiscoveryError,
    EntityConfig,
    decode,
    parse_config,
    parse_device_message,
    parse_topic,
)
from integrations.mqtt.entities import (
    CommandError,
    Entity,
    Publish,
    StateError,
    Timer,
    make_entity,
)
from integrations.mqtt.hubdevice import (
    RateWindow,
    adopted,
    capabilities,
    pick_entity,
    refreshed,
    report,
    withdraw,
)
from integrations.mqtt.templates import TemplateError, Templates

_EVENT = "__event__"
MAX_ENTITIES_PER_DEVICE = 256
MAX_ENTITIES = 20_000  # all devices together: a broker full of junk cannot exhaust memory


@dataclass(slots=True)
class Stats:
    messages: int = 0
    configs: int = 0
    removed: int = 0
    refused_config: int = 0  # every discovery message refused, unknown_component included
    unknown_component: int = 0  # of those: a component the hub does not model
    too_many: int = 0
    refused_state: int = 0
    bad_availability: int = 0  # neither payload_available nor payload_not_available
    oversize: int = 0
    flood_dropped: int = 0
    template_errors: int = 0
    unknown_topic: int = 0
    commands: int = 0
    ignored_keys: int = 0

    #: the counters of refused or ignored input (what health() reports)
    REFUSALS = ("refused_config", "unknown_component", "ignored_keys", "too_many",
                "refused_state", "bad_availability", "oversize", "flood_dropped",
                "template_errors")

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def refusals(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.REFUSALS}


@dataclass(slots=True)
class _Availability:
    """One entity's availability from its topics and availability_mode."""

    mode: str
    seen: dict[str, bool | None] = field(default_factory=dict)
    latest: bool | None = None

    @property
    def available(self) -> bool:
        if not self.seen:
            return True
        if self.mode == "all":
            return all(v is True for v in self.seen.values())
        if self.mode == "any":
            return any(v is True for v in self.seen.values())
        return self.latest is True


@dataclass(slots=True)
class MqttDevice:
    key: str
    block: DeviceBlock | None
    entities: dict[str, Entity] = field(default_factory=dict)  # discovery key -> entity
    values: dict[str, Any] = field(default_factory=dict)  # last values, adopted or not
    availability: dict[str, _Availability] = field(default_factory=dict)
    device_id: str | None = None  # once adopted
    window: RateWindow = field(default_factory=RateWindow)
    refused: int = 0


class Bridge:
    """Discovery, state and commands for one broker connection."""

    def __init__(self, ctx: IntegrationContext, prefix: str, *, max_payload: int,
                 max_rate: float, subscribe: Callable[[str], None],
                 unsubscribe: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.max_payload = max_payload
        self.max_rate = max_rate
        self.stats = Stats()
        self.templates = Templates()
        self.devices: dict[str, MqttDevice] = {}
        self._entity_device: dict[str, str] = {}  # discovery key -> device key
        self._routes: dict[str, list[tuple[str, Entity, Callable[[str], Any]]]] = {}
        self._avail_routes: dict[str, list[tuple[str, str, Any]]] = {}
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._dirty: set[str] = set()
        self.by_discovery_id: dict[str, str] = {}  # DiscoveredDevice id -> device key
        self._device_messages: dict[str, set[str]] = {}  # device discovery -> entity keys
        # last payload of each subscribed topic: an entity added later (another device on
        # Zigbee2MQTT's shared bridge/state topic) gets it, as the retained copy came once
        self._last: dict[str, bytes] = {}
        self._flush_handle: asyncio.Handle | None = None
        # (device key, entity key, timer name) -> its handle on the hub's clock
        self._timers: dict[tuple[str, str, str], Any] = {}
        self.connected = False
        self.log = ctx.log

    # -- messages ---------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """One received message; never raises."""
        self.stats.messages += 1
        if len(payload) > self.max_payload:
            self.stats.oversize += 1
            self._refuse("payload", f"{len(payload)} bytes on {topic[:80]} is over the "
                                    f"{self.max_payload}-byte limit")
            return
        try:
            if topic.endswith("/config") and topic.startswith(self.prefix + "/"):
                self._on_config(topic, payload)
                return
            handled = False
            if topic in self._routes or topic in self._avail_routes:
                self._last[topic] = payload
            for device_key, entity, handle in self._routes.get(topic, ()):
                handled = True
                self._on_state(device_key, entity, handle, payload)
            for device_key, discovery_key, avail in self._avail_routes.get(topic, ()):
                handled = True
                self._on_availability(device_key, discovery_key, avail, payload)
            if not handled:
                self.stats.unknown_topic += 1
        except Exception:  # a bug here must not take the connection down
            self.log.exception("MQTT message on %s could not be handled", topic[:120])

    def _on_config(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(self.prefix, topic)
            if parsed is None:
                return
            raw = decode(payload, self.max_payload)
            if parsed.component == "device":  # one message for a whole device
                configs = parse_device_message(parsed.object_id, raw) if raw else []
                keys = {c.discovery.key for c in configs}
                for key in self._device_messages.pop(parsed.key, set()) - keys:
                    self._remove_entity(key)
                if keys:
                    self._device_messages[parsed.key] = keys
            elif raw is None:
                self._remove_entity(parsed.key)
                return
            else:
                configs = [parse_config(parsed, raw)]
        except DiscoveryError as exc:
            self.stats.refused_config += 1
            if exc.key == "component":
                self.stats.unknown_component += 1
            self._refuse("discovery", f"{topic[:120]}: {exc}")
            return
        for config in configs:
            self._add_entity(config)

    def _on_state(self, device_key: str, entity: Entity, handle: Callable[[str], Any],
                  payload: bytes) -> None:
        device = self.devices.get(device_key)
        if device is None or not self._admit(device):
            return
        try:
            values = handle(payload.decode("utf-8", errors="replace"))
        except TemplateError as exc:
            self.stats.template_errors += 1
            device.refused += 1
            self._refuse("template", f"{entity.key}: {exc}")
            self._mark_dirty(device.key)
            return
        except (StateError, ValueError, TypeError) as exc:
            self.stats.refused_state += 1
            device.refused += 1
            self._refuse("state", f"{device.key}/{entity.key}: {exc}")
            return
        event = values.pop(_EVENT, None)
        if event is not None and device.device_id is not None:
            self.ctx.fire_event(device.device_id, event[0], event[1])
        if values:
            self._set_values(device, values)
            timers = entity.timers(values)
            if timers:
                self._arm(device, entity, timers)

    def _on_availability(self, device_key: str, discovery_key: str, avail: Any,
                         payload: bytes) -> None:
        device = self.devices.get(device_key)
        if device is None:
            return
        state = device.availability.get(discovery_key)
        if state is None:
            return
        text = payload.decode("utf-8", errors="replace")
        try:
            text = self.templates.render_value(avail.value_template, text).strip()
        except TemplateError as exc:
            self.stats.template_errors += 1
            self._refuse("template", f"availability of {discovery_key}: {exc}")
            return
        if text == avail.payload_available:
            value: bool | None = True
        elif text == avail.payload_not_available:
            value = False
        else:
            self.stats.bad_availability += 1
            self._refuse("availability", f"{avail.topic[:120]}: {text[:40]!r} is neither "
                                         f"{avail.payload_available!r} nor "
                                         f"{avail.payload_not_available!r}")
            return
        state.seen[avail.topic] = value
        state.latest = value
        self._availability_changed(device)

    # -- entities and devices ---------------------------------------------------------------

    def _add_entity(self, config: EntityConfig) -> None:
        self.stats.configs += 1
        self.stats.ignored_keys += len(config.ignored_keys)
        dkey = config.discovery.key
        device_key = _device_key(config)
        if dkey not in self._entity_device:
            known = self.devices.get(device_key)
            if len(self._entity_device) >= MAX_ENTITIES or (
                    known is not None and len(known.entities) >= MAX_ENTITIES_PER_DEVICE):
                self.stats.too_many += 1
                self._refuse("discovery", f"{dkey[:120]}: too many entities (at most "
                                          f"{MAX_ENTITIES_PER_DEVICE} per device, "
                                          f"{MAX_ENTITIES} in all)")
                return
        if self._entity_device.get(dkey) not in (None, device_key):
            self._remove_entity(dkey)  # moved to another device
        device = self.devices.get(device_key)
        if device is None:
            device = self.devices[device_key] = MqttDevice(device_key, config.device)
        elif config.device is not None:
            device.block = _merge_blocks(device.block, config.device)
        old = device.entities.get(dkey)
        if old is not None:
            self._drop_routes(device, dkey, old)
            self._disarm(device, old)
        key = _entity_key(config, device, old)
        try:
            entity = make_entity(config, key, self.templates)
            for source in _templates_of(config):
                self.templates.compile(source)
        except TemplateError as exc:
            entity = make_entity(config, key, self.templates)
            entity.error = str(exc)
            self.stats.template_errors += 1
        device.entities[dkey] = entity
        self._entity_device[dkey] = device_key
        for topic, handle in entity.routes().items():
            self._route(topic, (device_key, entity, handle))
        if config.availability:
            device.availability[dkey] = _Availability(config.availability_mode,
                                                      {a.topic: None for a in config.availability})
            for avail in config.availability:
                self._avail_route(avail.topic, (device_key, dkey, avail))
        else:
            device.availability.pop(dkey, None)
        self._mark_dirty(device_key)

    def _remove_entity(self, dkey: str) -> None:
        device_key = self._entity_device.pop(dkey, None)
        if device_key is None:
            return
        self.stats.removed += 1
        device = self.devices[device_key]
        entity = device.entities.pop(dkey)
        self._drop_routes(device, dkey, entity)
        self._disarm(device, entity)
        device.availability.pop(dkey, None)
        for name in entity.all_attributes():
            device.values.pop(name, None)
        self._mark_dirty(device_key)

    def _drop_routes(self, device: MqttDevice, dkey: str, entity: Entity) -> None:
        for topic in list(self._routes):
            kept = [r for r in self._routes[topic] if r[1] is not entity]
            if len(kept) != len(self._routes[topic]):
                self._set_routes(topic, kept)
        for topic in list(self._avail_routes):
            left = [r for r in self._avail_routes[topic]
                    if not (r[0] == device.key and r[1] == dkey)]
            if len(left) != len(self._avail_routes[topic]):
                if left:
                    self._avail_routes[topic] = left
                else:
                    del self._avail_routes[topic]
                    if topic not in self._routes:
                        self._last.pop(topic, None)
                        self._unsubscribe(topic)

    def _route(self, topic: str, route: tuple[str, Entity, Callable[[str], Any]]) -> None:
        routes = self._routes.setdefault(topic, [])
        if not routes and topic not in self._avail_routes:
            self._subscribe(topic)
        routes.append(route)
        last = self._last.get(topic)
        if last is not None:
            self._on_state(route[0], route[1], route[2], last)

    def _set_routes(self, topic: str, routes: list[Any]) -> None:
        if routes:
            self._routes[topic] = routes
            return
        del self._routes[topic]
        if topic not in self._avail_routes:
            self._last.pop(topic, None)
            self._unsubscribe(topic)

    def _avail_route(self, topic: str, route: tuple[str, str, Any]) -> None:
        routes = self._avail_routes.setdefault(topic, [])
        if not routes and topic not in self._routes:
            self._subscribe(topic)
        routes.append(route)
        last = self._last.get(topic)
        if last is not None:
            self._on_availability(route[0], route[1], route[2], last)

    def topics(self) -> list[str]:
        """Every state and availability topic subscribed (resubscribed on reconnect)."""
        return sorted(set(self._routes) | set(self._avail_routes))

    def _set_values(self, device: MqttDevice, values: dict[str, Any]) -> None:
        device.values.update(values)
        if device.device_id is not None and self.ctx.device(device.device_id) is not None:
            self.ctx.set_state(device.device_id, values)

    # -- timers: expire_after, off_delay (on the hub's clock) --------------------------------

    def _arm(self, device: MqttDevice, entity: Entity, timers: dict[str, Timer | None]
             ) -> None:
        clock = self.ctx.clock
        for name, timer in timers.items():
            key = (device.key, entity.key, name)
            running = self._timers.pop(key, None)
            if running is not None:
                running.cancel()
            if timer is not None:
                self._timers[key] = clock.call_at(
                    clock.time() + timer.seconds, partial(self._fire, key, entity, timer))

    def _fire(self, key: tuple[str, str, str], entity: Entity, timer: Timer) -> None:
        self._timers.pop(key, None)
        device = self.devices.get(key[0])
        if device is None or device.entities.get(entity.config.discovery.key) is not entity:
            return  # removed or announced anew since
        try:
            self._set_values(device, dict(timer.values))
        except Exception:  # a timer callback must not raise into the loop
            self.log.exception("MQTT timer %s of %s failed", key[2], key[0][:80])

    def _disarm(self, device: MqttDevice, entity: Entity) -> None:
        for key in [k for k in self._timers if k[0] == device.key and k[1] == entity.key]:
            self._timers.pop(key).cancel()

    def close(self) -> None:
        """Unloading: no timer fires after this."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    # -- flood control ------------------------------------------------------------------------

    def _admit(self, device: MqttDevice) -> bool:
        if not device.window.admit(self.ctx.clock.monotonic(), self.max_rate):
            self.stats.flood_dropped += 1
            if device.window.count == int(self.max_rate) + 1:
                self.log.warning("MQTT device %s sends more than %d messages/s; dropping the "
                                 "excess", device.key[:80], self.max_rate)
            return False
        return True

    # -- availability ---------------------------------------------------------------------------

    def available(self, device: MqttDevice) -> bool:
        if not self.connected or not device.entities:
            return False
        return any(a.available for a in device.availability.values()) \
            if device.availability else True

    def _availability_changed(self, device: MqttDevice) -> None:
        self._mark_dirty(device.key)

    def set_connected(self, connected: bool) -> None:
        """The broker connection came or went: every device follows."""
        self.connected = connected
        for key in self.devices:
            self._mark_dirty(key)
        self.flush()

    # -- publishing devices to the hub (coalesced: one update per device per loop turn) ------

    def _mark_dirty(self, device_key: str) -> None:
        self._dirty.add(device_key)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            device = self.devices.get(key)
            if device is not None:
                try:
                    self._publish_device(device)
                except Exception:
                    self.log.exception("could not update MQTT device %s", key[:80])

    def _publish_device(self, device: MqttDevice) -> None:
        ctx = self.ctx
        if not device.entities:
            withdraw(ctx, device.key, device.device_id)
            del self.devices[device.key]
            return
        available = self.available(device)
        item, device.device_id, existing = report(ctx, device.key, self.discovery_info(device),
                                                  available, device.device_id)
        self.by_discovery_id[item.id] = device.key
        if existing is not None:
            block = device.block
            if block is not None:
                existing = refreshed(existing, model=block.model,
                                     manufacturer=block.manufacturer,
                                     fw_version=block.sw_version, mac=block.mac)
            self._register(device, existing)
            ctx.set_available(existing.id, available)
            ctx.set_problems(existing.id, self.errors(existing.id))

    def discovery_info(self, device: MqttDevice) -> DiscoveryInfo:
        block = device.block
        entities = [{"key": e.key, "component": e.component, "name": e.config.name,
                     **({"error": e.error} if e.error else {})}
                    for e in device.entities.values()]
        name = (block.name if block and block.name else None) or next(
            (e.config.name for e in device.entities.values() if e.config.name), None)
        return DiscoveryInfo(
            name=name or device.key, mac=block.mac if block else None,
            model=block.model if block else None, fw=block.sw_version if block else None,
            data={"manufacturer": block.manufacturer if block else None,
                  "identifiers": list(block.identifiers) if block else [],
                  "entities": sorted(entities, key=lambda e: e["key"]),
                  "refused_messages": device.refused},
        )

    # -- adoption and commands --------------------------------------------------------------------

    def adopt(self, device_key: str, name: str | None) -> Device:
        device = self.devices.get(device_key)
        if device is None or not device.entities:
            raise ValidationError("id", "this MQTT device withdrew its announcement")
        device_id = "mqtt." + _slug(device_key)[:80]
        existing = self.ctx.device(device_id)
        block = device.block
        base = Device(
            id=device_id, integration=self.ctx.name,
            name=name or (existing.name if existing else None) or self.discovery_info(
                device).name or device_key,
            mac=block.mac if block else None, model=block.model if block else None,
            manufacturer=block.manufacturer if block else None,
            fw_version=block.sw_version if block else None, transport="mqtt",
            area=existing.area if existing else (block.suggested_area if block else None),
        )
        device.device_id = device_id
        registered = adopted(self.ctx, base, existing, partial(self._register, device),
                             device.values)
        self.ctx.set_problems(device_id, self.errors(device_id))
        return registered

    def _register(self, device: MqttDevice, base: Device) -> Device:
        return self.ctx.register_device(replace(base, **capabilities(device.entities.values())))

    def metadata(self, device_id: str) -> dict[str, dict[str, Any]]:
        """Per-attribute metadata (unit, device_class, state_class, range, options)."""
        device = self._by_device_id(device_id)
        out: dict[str, dict[str, Any]] = {}
        if device is not None:
            for entity in device.entities.values():
                out.update(entity.all_attributes())
        return out

    def errors(self, device_id: str) -> dict[str, str]:
        device = self._by_device_id(device_id)
        if device is None:
            return {}
        return {e.key: e.error for e in device.entities.values() if e.error}

    def command(self, device_id: str, name: str, params: dict[str, Any]) -> list[Publish]:
        """The messages a command sends (optimistic values are applied here)."""
        device = self._by_device_id(device_id)
        if device is None:
            raise CommandError("command", "the device has no announced entities")
        entity, params = pick_entity(device.entities.values(), name, params)
        error = entity.error
        try:
            outcome = entity.command(name, params)
        except TemplateError:
            # the entity now names the failing template: shown with the device at once
            self.stats.template_errors += 1
            self._problems_changed(device)
            raise
        self.stats.commands += 1
        if entity.error != error:  # a command template that failed works again
            self._problems_changed(device)
        if outcome.optimistic:
            self._set_values(device, outcome.optimistic)
        return outcome.messages

    def _problems_changed(self, device: MqttDevice) -> None:
        if device.device_id is not None:
            self.ctx.set_problems(device.device_id, self.errors(device.device_id))
        self._mark_dirty(device.key)  # data.entities[].error of the discovered item

    def forget(self, device_id: str) -> None:
        device = self._by_device_id(device_id)
        if device is not None:
            device.device_id = None
            device.values.clear()
            self._mark_dirty(device.key)

    def _by_device_id(self, device_id: str) -> MqttDevice | None:
        for device in self.devices.values():
            if device.device_id == device_id:
                return device
        return None

    def _refuse(self, what: str, detail: str) -> None:
        self.ctx.report_malformed(f"MQTT {what}", detail)


def _device_key(config: EntityConfig) -> str:
    if config.device is not None and config.device.key is not None:
        return config.device.key
    return "entity:" + (config.unique_id or config.discovery.key)


def _merge_blocks(old: DeviceBlock | None, new: DeviceBlock) -> DeviceBlock:
    """Entities of one device often repeat only its identifiers: keep what others said."""
    if old is None:
        return new
    fields = {name: getattr(new, name) or getattr(old, name)
              for name in DeviceBlock.__dataclass_fields__}
    return DeviceBlock(**fields)


def _entity_key(config: EntityConfig, device: MqttDevice, old: Entity | None) -> str:
    if old is not None:
        return old.key
    base = _slug(config.discovery.object_id)  # `object_id` in the payload names HA's entity
    strip = [_slug(i) for i in (device.block.identifiers if device.block else ())]
    if config.discovery.node_id:
        strip.append(_slug(config.discovery.node_id))
    for prefix in sorted(strip, key=len, reverse=True):
        if prefix and base == prefix:
            base = config.component  # the object is the device itself: "switch", "light"
            break
        if prefix and base.startswith(prefix + "_") and len(base) > len(prefix) + 1:
            base = base[len(prefix) + 1:]
            break
    if config.component == "device_automation":
        base = "trigger_" + base
    taken = {e.key for e in device.entities.values()}
    key, n = base or config.component, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _templates_of(config: EntityConfig) -> list[str]:
    return [v for k, v in config.options.items()
            if k.endswith("_template") and isinstance(v, str)]


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(p for p in out.split("_") if p)
