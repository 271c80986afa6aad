"""The discovery service: one mDNS browser, one BLE scanner, matching, dedupe, adoption.

Hot path (every BLE advertisement): a dict lookup by address decides whether the content
changed since the last one; unchanged repeats only move RSSI/last-seen. Changed ones are
matched through the index and handed to the matching integrations' listeners, which say
what they recognised; that becomes (or updates) a discovered device.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.bus import DeviceRegistryChanged
from hub.discovery.config import DiscoveryConfig
from hub.discovery.connectivity import Connectivity
from hub.discovery.host import DiscoveryStats
from hub.discovery.matcher import MatcherIndex
from hub.discovery.models import (
    BleAdvertisement,
    DiscoveredDevice,
    DiscoveryInfo,
    MdnsService,
    ble_id,
    mdns_id,
    normalize_mac,
    reported_id,
)
from hub.discovery.registry import DiscoveredRegistry
from hub.discovery.sources import LOCAL, BleSource, BleSourceStatus
from hub.errors import Conflict, DeviceUnavailable, ValidationError
from hub.tasks import BackgroundTasks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.devices import Device, DeviceRegistry
    from hub.manifests import Manifest
    from hub.state import StateStore
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

AdvertisementListener = Callable[[BleAdvertisement], DiscoveryInfo | None]
MdnsListener = Callable[[MdnsService, bool], DiscoveryInfo | None]
AdoptHandler = Callable[..., Awaitable["Device"]]  # (item, name[, credentials])

MAX_TRACKED_ADDRESSES = 20_000  # phones rotate random addresses: bound what we remember
TOUCH_EVERY = 5.0  # s: how often last-seen of an unchanged, same-RSSI device is refreshed
SOURCE_FRESH = 10.0  # s: a source's reading of a device counts for the best signal this long


@dataclass(slots=True)
class _Heard:
    """The last advertisement content from one BLE address."""

    content: tuple[Any, ...]
    rssi: int
    last_seen: float  # monotonic
    discovery_id: str | None = None
    available: bool = True
    reported: float = 0.0  # when RSSI/last-seen were last copied to the registry
    rssi_reported: int | None = None
    info: tuple[str, DiscoveryInfo] | None = None  # what an integration last recognised
    source: str = LOCAL  # who hears it best (the local adapter or a proxy)
    sources: dict[str, tuple[int, float]] | None = None  # source -> (RSSI, when); only if >1


@dataclass(slots=True)
class _Listeners:
    ble: dict[str, list[AdvertisementListener]] = field(default_factory=dict)
    mdns: dict[str, list[MdnsListener]] = field(default_factory=dict)
    adopt: dict[str, tuple[AdoptHandler, tuple[str, ...]]] = field(default_factory=dict)


class DiscoveryService:
    """Owns the shared zeroconf and BLE scanner; integrations subscribe through their ctx."""

    def __init__(self, config: DiscoveryConfig, *, db: Database, bus: EventBus, clock: Clock,
                 devices: DeviceRegistry, states: StateStore, manifests: dict[str, Manifest],
                 configured: Iterable[str], api_host: str, version: str,
                 integration_loaded: Callable[[str], bool]) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus
        self.db = db
        self.devices = devices
        self.states = states
        self.manifests = manifests
        self.configured = list(configured)  # integrations in the config, loaded or not
        self.api_host = api_host  # mDNS advertises the hub unless the API is loopback-only
        self.version = version
        self._integration_loaded = integration_loaded  # the integration host's, once built
        self.registry = DiscoveredRegistry(db, bus, clock, self.config.max_discovered)
        self.stats = DiscoveryStats()
        self.connectivity = Connectivity(devices, bus)
        self.index = MatcherIndex(())
        self._listeners = _Listeners()
        self._heard: dict[str, _Heard] = {}
        self._tasks = BackgroundTasks(_LOG)
        self._unsubscribe: Callable[[], None] | None = None
        self.ble: Any = None  # hub.discovery.ble.BleScanner once started
        self.mdns: Any = None  # hub.discovery.mdns.MdnsDiscovery once started
        self._api: tuple[int, str, str | None] | None = None
        self.ble_sources: dict[str, BleSource] = {}
        # integrations whose devices' availability follows their own connection, not the
        # presence of their discoveries (ESPHome: the native API connection)
        self.own_availability: set[str] = set()
        self.own_services: set[str] = set()  # mDNS names the hub itself announces
        self._deferred = False
        self._go: asyncio.Event | None = None
        self._mdns_asked = False  # a service (the HomeKit bridge) asked for zeroconf
        self._zeroconf_users: list[Callable[[], None]] = []
        self._address_users: list[Callable[[], None]] = []
        self._zeroconf_waiters: set[asyncio.Future[None]] = set()  # zeroconf(within) callers
        self._mdns_lock = asyncio.Lock()
        self.running = False

    # lifecycle

    def defer_until_api_ready(self) -> None:
        """Start browsing and scanning only once `api_ready` is called (the daemon does this
        so zeroconf/bleak imports and sockets never delay READY)."""
        self._deferred = True

    async def start(self) -> None:
        """Build the matcher index from configured integrations; start browsing/scanning
        in the background (zeroconf and bleak are imported only then, only if enabled; bleak
        only once a Bluetooth adapter is there)."""
        manifests = self.manifests
        configured = [manifests[n] for n in self.configured if n in manifests]
        self.index = MatcherIndex(configured)
        await self.registry.load()
        self._unsubscribe = self.bus.subscribe(DeviceRegistryChanged,
                                                   self._on_registry_changed)
        self.running = True
        self._go = asyncio.Event()
        if not self._deferred or self._api is not None:
            self._go.set()
        self._tasks.spawn(self._start_finding(), "discovery-start")
        self._tasks.spawn(self._sweep(), "discovery-sweep")

    async def _start_finding(self) -> None:
        assert self._go is not None
        await self._go.wait()
        if self.config.mdns.enabled and (self.index.mdns_types or self.config.mdns.advertise
                                         or self._mdns_asked):
            await self._start_mdns()
        if self.config.ble.enabled and self.index.has_ble:
            # what the adapter probe uses; bleak follows once there is an adapter
            await asyncio.to_thread(importlib.import_module, "dbus_fast.aio")
            from hub.discovery.ble import BleScanner

            self.ble = BleScanner(self)
            await self.ble.start()

    async def _start_mdns(self) -> None:
        async with self._mdns_lock:
            if self.mdns is not None or not self.running:
                return
            await asyncio.to_thread(importlib.import_module, "zeroconf.asyncio")
            from hub.discovery.mdns import MdnsDiscovery

            self.mdns = MdnsDiscovery(self)  # set first: stop() closes a half-started one
            await self.mdns.start()
            if self._api is not None:
                self.mdns.advertise_hub(*self._api)

    async def stop(self) -> None:
        self.running = False
        await self._tasks.stop()
        if self.ble is not None:
            await self.ble.stop()
        if self.mdns is not None:
            await self.mdns.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def api_ready(self, port: int, scheme: str, fingerprint: str | None) -> None:
        """The API listens: advertise the hub on mDNS (if configured)."""
        self._api = (port, scheme, fingerprint)
        if self._go is not None:
            self._go.set()
        if self.mdns is not None:
            self.mdns.advertise_hub(port, scheme, fingerprint)

    def health(self) -> dict[str, Any]:
        ble_wanted = self.config.ble.enabled and self.index.has_ble
        mdns_wanted = self.config.mdns.enabled and bool(
            self.index.mdns_types or self.config.mdns.advertise or self._mdns_asked)
        return {
            "ble": self.ble.status() if self.ble is not None else {
                "state": "starting" if ble_wanted and self.running else "off",
                "reason": None if ble_wanted else "disabled" if not self.config.ble.enabled
                else "no integration wants BLE"},
            "mdns": self.mdns.status() if self.mdns is not None else {
                "state": "starting" if mdns_wanted and self.running else "off",
                "reason": None if mdns_wanted else "disabled" if not self.config.mdns.enabled
                else "nothing to browse or advertise"},
            "ble_sources": {name: src.to_json(self.clock.monotonic())
                            for name, src in sorted(self.ble_sources.items())},
            "discovered": len(self.registry),
            "stats": self.stats.as_dict(),
        }

    # integrations subscribe (through IntegrationContext)

    def add_advertisement_listener(self, integration: str,
                                   listener: AdvertisementListener) -> Callable[[], None]:
        return _add(self._listeners.ble, integration, listener)

    def add_mdns_listener(self, integration: str, listener: MdnsListener) -> Callable[[], None]:
        return _add(self._listeners.mdns, integration, listener)

    def set_adopt_handler(self, integration: str, handler: AdoptHandler,
                          credentials: tuple[str, ...] = ()) -> Callable[[], None]:
        """`credentials`: the secret fields adoption may carry (then passed to the handler
        as `credentials=`, a dict); any other field is refused."""
        entry = (handler, credentials)
        self._listeners.adopt[integration] = entry

        def undo() -> None:
            if self._listeners.adopt.get(integration) is entry:
                del self._listeners.adopt[integration]

        return undo

    def add_ble_source(self, name: str, kind: str) -> Callable[[], None]:
        """Register a remote BLE source (a proxy); returns its removal. See `ble_source`."""
        if name == LOCAL or name in self.ble_sources:
            raise Conflict(f"BLE source {name!r} exists already")
        source = BleSource(BleSourceStatus(name, kind), self.clock,
                           self.handle_advertisement, self._forget_source)
        self.ble_sources[name] = source

        def remove() -> None:
            if self.ble_sources.get(name) is source:
                source.lost("removed")
                del self.ble_sources[name]

        return remove

    def ble_source(self, name: str) -> BleSource:
        return self.ble_sources[name]

    async def zeroconf(self, within: float) -> Any:
        """The hub's one AsyncZeroconf, waiting up to `within` s for mDNS to start; None if
        mDNS is off or not up by then (callers must then not open one of their own)."""
        if not self.config.mdns.enabled:
            return None
        if not self._mdns_asked:  # no integration browses and the hub does not advertise:
            self._mdns_asked = True  # mDNS starts for the one who asks
            if self._go is not None and self._go.is_set() and self.mdns is None:
                self._tasks.spawn(self._start_mdns(), "discovery-mdns")
        # Integrations load before discovery starts: wait for mDNS too, woken the moment it
        # opens its sockets (`zeroconf_opened`), at most `within` s on the injected clock.
        deadline = self.clock.monotonic() + within
        while True:
            if self.mdns is not None and self.mdns.zc is not None:
                return self.mdns.zc
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return None
            opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            timer = asyncio.ensure_future(self.clock.sleep(remaining))
            self._zeroconf_waiters.add(opened)
            try:
                await asyncio.wait((opened, timer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._zeroconf_waiters.discard(opened)
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer

    def zeroconf_opened(self) -> None:
        """mDNS opened its sockets (hub.discovery.mdns): wake those waiting in `zeroconf`."""
        for waiter in self._zeroconf_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def on_zeroconf_replaced(self, callback: Callable[[], None]) -> Callable[[], None]:
        """`callback()` when the hub's AsyncZeroconf was closed and a new one opened (mDNS
        could not re-bind to changed interfaces): what was built on the old one (an
        aiohomekit Controller, HAP-python's advertiser) must move to `zeroconf()`'s."""
        self._zeroconf_users.append(callback)
        return lambda: self._zeroconf_users.remove(callback)

    def zeroconf_replaced(self) -> None:
        self._notify(self._zeroconf_users, "follow the new zeroconf")

    def on_addresses_changed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """`callback()` when mDNS re-bound the same zeroconf to changed interface addresses
        (a DHCP renewal, a second address): what listens on or advertises the old ones (the
        HomeKit bridge's HAP server) must follow."""
        self._address_users.append(callback)
        return lambda: self._address_users.remove(callback)

    def addresses_changed(self) -> None:
        self._notify(self._address_users, "follow the new interface addresses")

    def _notify(self, callbacks: list[Callable[[], None]], what: str) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:
                self.stats.listener_errors += 1
                _LOG.exception("a zeroconf user failed to %s", what)

    def annotate(self, discovery_id: str, data: dict[str, Any]) -> None:
        """Merge what an integration learned (an error, a key needed) into a discovered
        device's data; published as a change."""
        self.registry.annotate(discovery_id, data)

    def ble_seen(self, address: str) -> tuple[int, float] | None:
        """(RSSI, seconds since heard) for a BLE address, or None if never heard."""
        heard = self._heard.get(address) or self._heard.get(address.upper())
        if heard is None:
            return None
        return heard.rssi, self.clock.monotonic() - heard.last_seen

    # ingest: BLE

    def handle_advertisement(
        self, address: str, name: str | None, rssi: int, service_uuids: tuple[str, ...],
        service_data: dict[str, bytes], manufacturer_data: dict[int, bytes],
        tx_power: int | None = None, source: str = LOCAL,
    ) -> None:
        """One advertisement from the scanner, a remote source (`source`: a proxy's name)
        or a benchmark. The same content heard by several sources is one sighting with the
        best recent signal. Never raises."""
        stats = self.stats
        stats.advertisements += 1
        now = self.clock.monotonic()
        content = (name, service_uuids, service_data, manufacturer_data)
        heard = self._heard.get(address)
        if heard is not None and (heard.sources is not None or source != heard.source):
            rssi, source = _best_signal(heard, source, rssi, now)
        if heard is not None and heard.content == content:
            stats.duplicates += 1
            heard.last_seen = now
            if heard.discovery_id is not None and (
                    rssi != heard.rssi or source != heard.source
                    or now - heard.reported > TOUCH_EVERY):
                heard.reported = now
                self.registry.touch(heard.discovery_id, rssi, self.clock.time(), source)
            heard.rssi, heard.source = rssi, source
            if not heard.available:
                self._back(address, heard)
            return
        if heard is None:
            if len(self._heard) >= MAX_TRACKED_ADDRESSES:
                self._forget_oldest()
            heard = self._heard[address] = _Heard(content, rssi, now, source=source)
        else:
            heard.content, heard.rssi, heard.last_seen = content, rssi, now
            heard.source = source
            if not heard.available:
                self._back(address, heard)
        adv = BleAdvertisement(address, name, rssi, service_uuids, service_data,
                               manufacturer_data, tx_power, self.clock.time())
        try:
            integrations = self.index.match(adv)
        except Exception:  # a matcher must never take the scanner down
            stats.malformed += 1
            _LOG.debug("matching failed for %s", address, exc_info=True)
            return
        if not integrations:
            stats.unmatched += 1
            return
        stats.dispatched += 1
        recognised: tuple[str, DiscoveryInfo] | None = None
        for integration in integrations:
            for listener in self._listeners.ble.get(integration, ()):
                info = self._call(listener, adv)
                if info is not None and recognised is None:
                    recognised = (integration, info)
        if recognised is None:
            return
        integration, info = recognised
        if heard.info is not None and heard.info == recognised and (
                heard.discovery_id is not None and heard.discovery_id in self.registry):
            # what the integration recognised did not change (e.g. only a new reading)
            if now - heard.reported > TOUCH_EVERY or rssi != heard.rssi_reported:
                heard.reported, heard.rssi_reported = now, rssi
                self.registry.touch(heard.discovery_id, rssi, adv.time, source)
            return
        heard.info = recognised
        heard.rssi_reported = rssi
        item = DiscoveredDevice(
            id=ble_id(address), source="ble", integration=integration,
            integrations=integrations,
            name=info.name or name or address, addresses=(address,),
            mac=normalize_mac(info.mac) or normalize_mac(address), did=info.did,
            model=info.model, fw=info.fw, rssi=rssi, data=dict(info.data),
            last_seen=adv.time, ble_source=source,
        )
        heard.discovery_id = item.id
        heard.reported = now
        self._record(item)

    # ingest: mDNS

    def handle_mdns(self, service: MdnsService, removed: bool = False) -> None:
        """A resolved (or removed) mDNS service from the browser. Never raises."""
        if service.name in self.own_services:
            return  # the hub's own (its HomeKit bridge): nothing to adopt
        discovery_id = mdns_id(service.type, service.name)
        if removed:
            self.stats.mdns_removed += 1
            item = self.registry.set_present(discovery_id, False)
            if item is not None:
                self._presence_changed(item)
            for integration in self.index.mdns_integrations(service.type):
                for listener in self._listeners.mdns.get(integration, ()):
                    self._call(listener, service, True)
            return
        existing = self.registry.find(discovery_id)
        if existing is None or not existing.present:
            self.stats.mdns_added += 1
        else:
            self.stats.mdns_updated += 1
        integrations = self.index.mdns_integrations(service.type)
        recognised: tuple[str, DiscoveryInfo] | None = None
        listened = False
        for integration in integrations:
            for listener in self._listeners.mdns.get(integration, ()):
                listened = True
                info = self._call(listener, service, False)
                if info is not None and recognised is None:
                    recognised = (integration, info)
        if recognised is None:
            if listened or not integrations:
                return  # not one of theirs, or malformed: listed nowhere
            # nobody listening (integration failed to load): still list it, from the TXT
            recognised = (integrations[0], DiscoveryInfo())
        integration, info = recognised
        txt = service.txt
        item = DiscoveredDevice(
            id=discovery_id, source="mdns", integration=integration,
            integrations=integrations, name=info.name or service.instance,
            addresses=service.addresses, port=service.port,
            mac=normalize_mac(info.mac or txt.get("mac")), did=info.did or txt.get("did"),
            model=info.model or txt.get("model"), fw=info.fw or txt.get("fw"),
            service_type=service.type, host=service.host, txt=dict(txt),
            data=dict(info.data), last_seen=self.clock.time(), present=True,
        )
        self._record(item)

    # ingest: devices an integration found itself (MQTT discovery messages...)

    def report(self, integration: str, source: str, key: str, info: DiscoveryInfo,
               present: bool = True) -> DiscoveredDevice:
        """List (or update) a device `integration` found by its own means, under a stable id
        made from `key`; `present` False marks it unavailable (an adopted device follows)."""
        now = self.clock.time()
        item = DiscoveredDevice(
            id=reported_id(source, key), source=source, integration=integration,  # type: ignore[arg-type]
            integrations=(integration,), name=info.name or key, mac=normalize_mac(info.mac),
            did=info.did, model=info.model, fw=info.fw, data=dict(info.data),
            last_seen=now, present=present,
        )
        self._record(item)  # an adopted device's availability follows `present`
        return self.registry.get(item.id)

    def withdraw(self, source: str, key: str) -> None:
        """The device reported under `key` is gone (its announcements were removed)."""
        self.registry.remove(reported_id(source, key))

    # adoption

    async def adopt(self, discovery_id: str, name: str | None = None,
                    area: str | None = None,
                    credentials: dict[str, str] | None = None) -> Device:
        """Hand a discovered device to its integration, which registers it.

        `credentials` (e.g. an ESPHome encryption key) go to the integration only, which
        keeps them in the vault; an adopted device may be adopted again with new ones."""
        item = self.registry.get(discovery_id)
        if item.state == "adopted" and item.device_id and item.device_id in self.devices:
            if not credentials:
                raise Conflict(f"{discovery_id} is already adopted as {item.device_id}")
        entry = self._listeners.adopt.get(item.integration)
        if entry is None:
            if self._integration_loaded(item.integration):
                raise Conflict(f"integration {item.integration!r} does not adopt devices")
            raise DeviceUnavailable(f"integration {item.integration!r} is not running")
        handler, accepted = entry
        if name is not None and (not name.strip() or len(name) > 100):
            raise ValidationError("name", "must be 1-100 characters")
        for key, value in (credentials or {}).items():
            if key not in accepted:
                raise ValidationError(f"credentials.{key}", (
                    f"integration {item.integration!r} takes "
                    + (", ".join(accepted) if accepted else "no credentials")))
            if not isinstance(value, str):
                raise ValidationError(f"credentials.{key}", "expected a string")
        if accepted:
            device = await handler(item, name.strip() if name else None,
                                   credentials=dict(credentials or {}))
        else:
            device = await handler(item, name.strip() if name else None)
        if area is not None:
            device = await self.devices.update(device.id, area=area)
        await self.db.flush()
        for each in [item, *self.registry.related(item)]:
            if each.integration == item.integration or each.id == item.id:
                await self.registry.decide(each, "adopted", device.id)
        self.stats.adopted += 1
        if item.integration not in self.own_availability:
            self.states.set_available(device.id, item.present)
        _LOG.info("adopted %s (%s) as %s", discovery_id, item.integration, device.id)
        return device

    async def ignore(self, discovery_id: str) -> DiscoveredDevice:
        item = self.registry.get(discovery_id)
        if item.state == "adopted":
            raise Conflict(f"{discovery_id} is adopted as {item.device_id}; remove the device")
        return await self.registry.decide(item, "ignored")

    # internals

    def _record(self, item: DiscoveredDevice) -> None:
        stored, action = self.registry.upsert(item)
        if action == "new" and stored.state == "new" and (
                stored.integration in self.config.auto_adopt):
            self._tasks.spawn(self._auto_adopt(stored.id), f"auto-adopt-{stored.id}")
        if stored.device_id is not None and action != "seen":
            self._presence_changed(stored)

    async def _auto_adopt(self, discovery_id: str) -> None:
        try:
            await self.adopt(discovery_id)
        except Exception as exc:  # logged, the device stays discovered
            _LOG.warning("auto-adoption of %s failed: %s", discovery_id, exc)

    def _call(self, listener: Callable[..., DiscoveryInfo | None], *args: Any
              ) -> DiscoveryInfo | None:
        try:
            info = listener(*args)
        except Exception:
            self.stats.listener_errors += 1
            _LOG.debug("discovery listener %r failed", listener, exc_info=True)
            return None
        return info if isinstance(info, DiscoveryInfo) else None

    def _presence_changed(self, item: DiscoveredDevice) -> None:
        """An adopted device is available while any of its discoveries is present."""
        if item.device_id is None or item.device_id not in self.devices:
            return
        if item.integration in self.own_availability:
            return
        present = any(d.present for d in self.registry.by_device(item.device_id))
        self.states.set_available(item.device_id, present)

    def _back(self, address: str, heard: _Heard) -> None:
        heard.available = True
        if heard.discovery_id is not None:
            item = self.registry.set_present(heard.discovery_id, True)
            if item is not None:
                self._presence_changed(item)

    def _forget_source(self, source: str) -> None:
        """A remote source is gone: its readings no longer count for the best signal, and
        what it heard best moves to the best other source at once (the discovered item and
        the device show it without waiting for that source's next advertisement). A device
        nobody else hears keeps its last source until the sweep marks it unavailable."""
        now = self.clock.monotonic()
        for heard in self._heard.values():
            if not heard.sources or source not in heard.sources:
                continue
            del heard.sources[source]
            if heard.source != source or not heard.sources:
                continue
            fresh = {k: v for k, v in heard.sources.items() if now - v[1] <= SOURCE_FRESH}
            name, (rssi, _) = max((fresh or heard.sources).items(), key=lambda kv: kv[1][0])
            heard.source, heard.rssi = name, rssi
            if heard.discovery_id is not None:
                heard.reported = now
                self.registry.touch(heard.discovery_id, rssi,
                                    self.clock.time() - (now - heard.last_seen), name)

    def ble_reception(self, device_id: str) -> dict[str, Any] | None:
        """How an adopted BLE device is heard: the source that hears it best (`local`, a
        proxy's name) and that signal, from its most recent BLE discovery; None if none."""
        best: DiscoveredDevice | None = None
        for item in self.registry.by_device(device_id):
            if item.source != "ble":
                continue
            item = self.registry.find(item.id) or item  # with the latest RSSI and source
            if item.ble_source and (best is None or item.last_seen > best.last_seen):
                best = item
        if best is None:
            return None
        return {"ble_source": best.ble_source, "rssi": best.rssi}

    def _forget_oldest(self) -> None:
        oldest = next(iter(self._heard))
        del self._heard[oldest]

    async def _sweep(self) -> None:
        """Mark BLE devices unheard for `unavailable_after` as lost."""
        limit = self.config.ble.unavailable_after
        every = max(0.05, min(limit / 4, 30.0))
        while True:
            await self.clock.sleep(every)
            now = self.clock.monotonic()
            for heard in list(self._heard.values()):
                if heard.available and now - heard.last_seen > limit:
                    heard.available = False
                    if heard.discovery_id is not None:
                        item = self.registry.set_present(heard.discovery_id, False)
                        if item is not None:
                            self._presence_changed(item)
            for discovery_id, heard in list(self._heard.items()):
                if not heard.available and heard.discovery_id is None:
                    del self._heard[discovery_id]  # unmatched and gone: forget

    def _on_registry_changed(self, event: DeviceRegistryChanged) -> None:
        if event.action == "removed" and self.registry.has_device(event.device_id):
            self._tasks.spawn(self.registry.forget_device(event.device_id), "discovery-forget")


def _best_signal(heard: _Heard, source: str, rssi: int, now: float) -> tuple[int, str]:
    """(best RSSI, its source) among the sources that heard `heard` recently."""
    sources = heard.sources
    if sources is None:
        sources = heard.sources = {heard.source: (heard.rssi, heard.last_seen)}
    sources[source] = (rssi, now)
    best_rssi, best_source = rssi, source
    for name, (r, t) in list(sources.items()):
        if now - t > SOURCE_FRESH:
            del sources[name]
        elif r > best_rssi:
            best_rssi, best_source = r, name
    return best_rssi, best_source


def _add(table: dict[str, list[Any]], integration: str, listener: Any) -> Callable[[], None]:
    bucket = table.setdefault(integration, [])
    bucket.append(listener)

    def undo() -> None:
        if listener in bucket:
            bucket.remove(listener)

    return undo

