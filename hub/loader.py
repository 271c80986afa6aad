"""Loading integrations: the Protocol they implement, their context, isolation and restart.

An integration that raises during setup or in one of its tasks is unloaded (everything it
subscribed to is undone), logged once, and restarted with capped exponential backoff (one
`ReconnectLoop` per integration: its "connection" is a successful setup). It never takes the
hub down.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from hub import namedsecrets
from hub.bus import DeviceEvent, DeviceRegistryChanged, Event, EventBus
from hub.clock import Clock
from hub.confirmations import Confirmations
from hub.devices import Device, DeviceRegistry
from hub.errors import DeviceUnavailable, IntegrationError, NotFound
from hub.integration_values import IntegrationValues
from hub.manifests import Manifest
from hub.privacy.consent import ConsentChanged
from hub.reconnect import BackoffPolicy, ReconnectLoop, ReconnectState
from hub.state import StateStore
from hub.vault import Vault

if TYPE_CHECKING:
    from hub.audit import AuditLog
    from hub.discovery.connectivity import TransportChoice
    from hub.discovery.models import DiscoveredDevice, DiscoveryInfo
    from hub.discovery.service import (
        AdoptHandler,
        AdvertisementListener,
        DiscoveryService,
        MdnsListener,
    )
    from hub.discovery.sources import BleSource
    from hub.egress import EgressGuard
    from hub.provisioning.evidence import Attestation, Evidence
    from hub.storage import Database

E = TypeVar("E", bound=Event)
T = TypeVar("T")

_LOG = logging.getLogger(__name__)

SETUP_TIMEOUT = 30.0
BACKOFF_START = 1.0
BACKOFF_CAP = 300.0
HEALTHY_AFTER = 300.0  # seconds of good running that reset the backoff


@runtime_checkable
class Integration(Protocol):
    """What every integration implements. Per-instance state lives on the instance."""

    async def setup(self, ctx: IntegrationContext) -> None:
        """Start: register devices, subscribe, start tasks through `ctx`."""
        ...

    async def unload(self, ctx: IntegrationContext) -> None:
        """Stop. Subscriptions and tasks made through `ctx` are undone by the hub afterwards."""
        ...

    async def command(
        self, ctx: IntegrationContext, device: Device, command: str, params: dict[str, Any]
    ) -> Any:
        """Carry out a validated command on one of this integration's devices."""
        ...

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """The device is being deleted or erased: end its connections, drop what is kept
        about it, delete its secrets (the hub also deletes every vault entry stored with
        `device_id=device.id`, and the device's rows, after this)."""
        ...


class IntegrationContext:
    """Everything an integration may do with the hub; all it registers is undone on unload."""

    def __init__(self, host: IntegrationHost, manifest: Manifest, config: dict[str, Any]):
        self._host = host
        self.manifest = manifest
        self.name = manifest.name
        self.config = config
        self.log = logging.getLogger(f"integrations.{manifest.name}")
        self.clock = host.clock
        self._values = IntegrationValues(host.db, manifest.name)
        self._undo: list[Callable[[], object]] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self.closed = False

    # devices and state

    def register_device(self, device: Device) -> Device:
        """Add or update one of this integration's devices in the registry."""
        existing = self._host.devices.find(device.id)
        restricted = existing.restricted if existing is not None else False
        # restriction is the owner's decision (privacy center): an integration cannot lift it
        return self._host.devices.add(replace(device, integration=self.name,
                                             restricted=restricted))

    def devices(self) -> list[Device]:
        return self._host.devices.by_integration(self.name)

    def device(self, device_id: str) -> Device | None:
        d = self._host.devices.find(device_id)
        return d if d is not None and d.integration == self.name else None

    def set_state(self, device_id: str, attributes: dict[str, Any]) -> int:
        return self._host.states.set(device_id, attributes)

    def state(self, device_id: str, attribute: str, default: Any = None) -> Any:
        return self._host.states.value(device_id, attribute, default)

    def set_available(self, device_id: str, available: bool) -> None:
        self._host.states.set_available(device_id, available)

    def fire_event(self, device_id: str, event_type: str,
                   data: dict[str, Any] | None = None) -> None:
        ts = self.clock.time()
        payload = data or {}
        if self._host.devices.find(device_id) is not None:  # adopted: kept with its history
            self._host.states.record_event(device_id, event_type, payload, ts)
        self._host.bus.publish(DeviceEvent(device_id, event_type, payload, ts))

    # attestation and device keys (the Uone integration re-attests at every reconnection)

    @property
    def hub_id(self) -> str:
        """This hub's stable id: what devices sign with attestation nonces."""
        return self._host.attestation.hub_id

    def verify_attestation(self, evidence: Evidence) -> Attestation:
        """Check a device's attestation evidence against the configured trust anchors."""
        return self._host.attestation.verify(evidence)

    async def device_secret(self, name: str) -> dict[str, Any] | None:
        """This integration's vault entry `name` (kind device_key), or None."""
        try:
            return await self._host.vault.get("device_key", f"{self.name}:{name}")
        except NotFound:
            return None

    async def store_device_secret(self, name: str, secret: dict[str, Any], *,
                                  device_id: str | None = None) -> None:
        """Store a secret; with `device_id` it is deleted with that device (erase, delete)
        even when this integration is not running then."""
        public = {"device_id": device_id} if device_id else None
        await self._host.vault.put("device_key", f"{self.name}:{name}", secret, public)

    async def device_secret_names(self) -> list[str]:
        """Names of this integration's vault entries (never their secrets)."""
        prefix = f"{self.name}:"
        return [e.name[len(prefix):] for e in await self._host.vault.entries("device_key")
                if e.name.startswith(prefix)]

    async def forget_device_secret(self, name: str) -> None:
        await self._host.vault.delete("device_key", f"{self.name}:{name}")

    # durable values (not secrets: those go to the vault) and questions to the owner

    async def stored_values(self) -> dict[str, Any]:
        """Every value this integration stored (`store_value`), by key."""
        return await self._values.all()

    def store_value(self, key: str, value: Any) -> None:
        """Keep a JSON value across restarts; durable within `storage.commit_interval`."""
        self._values.set(key, value, self.clock.time())

    def forget_value(self, key: str) -> None:
        self._values.delete(key)

    def ask_confirmation(self, device_id: str, kind: str, message: str,
                         details: dict[str, Any],
                         on_confirm: Callable[[], Awaitable[None]]) -> None:
        """Ask the owner (an admin) about one of this integration's devices: shown on the
        device and as a notification; `await on_confirm()` runs when they confirm through
        `POST /api/devices/{id}/confirmations/{kind}` (audited)."""
        if self.device(device_id) is not None:
            self._host.confirmations.ask(device_id, kind, self.name, message, details,
                                         on_confirm)

    def withdraw_confirmation(self, device_id: str, kind: str) -> None:
        self._host.confirmations.withdraw(device_id, kind)

    def set_problems(self, device_id: str, problems: dict[str, str]) -> None:
        """What of one of this integration's devices is failing and why (part -> reason,
        e.g. an MQTT entity whose template was refused); shown with the device in the API
        and the dashboard. An empty dict clears them."""
        if self.device(device_id) is None:
            return
        host = self._host
        if host.problems.get(device_id, {}) == problems:
            return
        if problems:
            host.problems[device_id] = dict(problems)
        else:
            host.problems.pop(device_id, None)
        host.bus.publish(DeviceRegistryChanged("updated", device_id))

    async def named_secret(self, name: str) -> str | None:
        """The owner's named secret `name` (vault kind "secret", {"value": ...}), or None:
        what a config key like `password_secret` refers to."""
        try:
            secret = await self._host.vault.get(namedsecrets.KIND, name)
        except NotFound:
            return None
        value = secret.get("value")
        return value if isinstance(value, str) else None

    # the network

    async def check_egress(self, host: str, purpose: str | None = None) -> list[str]:
        """Resolve `host` and raise EgressDenied unless it is on the LAN or the owner gave
        `purpose` consent (e.g. "external_broker"); returns its addresses. A library that
        connects from its own thread then passes the process-wide guard too."""
        return await self._host.egress.check_destination(host, purpose)

    def on_consent_changed(self, purpose: str, callback: Callable[[bool], None]) -> None:
        """`callback(allowed)` each time the owner grants or withdraws `purpose` (or a new
        privacy notice pauses it), e.g. to drop a connection only that consent allowed
        (check_egress says whether it still is). Undone on unload."""
        self._undo.append(self._host.bus.subscribe(
            ConsentChanged, lambda event: callback(event.allowed), key=purpose))

    # subscriptions and tasks

    def subscribe(
        self, etype: type[E], callback: Callable[[E], None], *, key: str | None = None
    ) -> None:
        self._undo.append(self._host.bus.subscribe(etype, callback, key=key))

    def on_unload(self, callback: Callable[[], object]) -> None:
        self._undo.append(callback)

    # discovery (one shared zeroconf and BLE scanner; matched by this manifest's matchers)

    def on_advertisement(self, callback: AdvertisementListener) -> None:
        """`callback(BleAdvertisement) -> DiscoveryInfo | None` for each changed advertisement
        that matches this integration's BLE matchers; returning info lists it as discovered."""
        self._undo.append(self._host.discovery.add_advertisement_listener(self.name, callback))

    def on_mdns_service(self, callback: MdnsListener) -> None:
        """`callback(MdnsService, removed) -> DiscoveryInfo | None` for this integration's
        mDNS service types (added, updated, removed)."""
        self._undo.append(self._host.discovery.add_mdns_listener(self.name, callback))

    def on_adopt(self, handler: AdoptHandler, credentials: tuple[str, ...] = ()) -> None:
        """`await handler(DiscoveredDevice, name)` registers the device and returns it.

        With `credentials` (the secret fields adoption may carry, e.g. an encryption key)
        it is called as `handler(item, name, credentials={...})`; the integration keeps
        them in the vault (`store_device_secret`), never in state, logs or answers."""
        self._undo.append(self._host.discovery.set_adopt_handler(self.name, handler,
                                                                 credentials))

    def report_discovered(self, key: str, info: DiscoveryInfo, *, source: str,
                          present: bool = True) -> DiscoveredDevice:
        """List a device this integration found by its own means (an MQTT discovery
        message...) for the owner to adopt; `key` is stable for the device. Returns the
        DiscoveredDevice (its `device_id` is set once adopted)."""
        return self._host.discovery.report(self.name, source, key, info, present)

    def withdraw_discovered(self, key: str, *, source: str) -> None:
        """A device reported with `report_discovered` is gone."""
        self._host.discovery.withdraw(source, key)

    def annotate_discovered(self, discovery_id: str, **data: Any) -> None:
        """Tell the owner something about one of this integration's discovered devices
        (an error, a key needed): merged into its `data` (None removes a key)."""
        item = self._host.discovery.registry.find(discovery_id)
        if item is not None and item.integration == self.name:
            self._host.discovery.annotate(discovery_id, data)

    def own_availability(self) -> None:
        """This integration's devices are available while its own connection to them is up
        (set_available); the presence of their mDNS/BLE discoveries no longer decides."""
        owners = self._host.discovery.own_availability
        owners.add(self.name)
        self._undo.append(lambda: owners.discard(self.name))

    async def zeroconf(self, within: float = 10.0) -> Any:
        """The hub's one AsyncZeroconf (None if mDNS is off). Never open another."""
        return await self._host.discovery.zeroconf(within)

    def on_zeroconf_replaced(self, callback: Callable[[], None]) -> None:
        """`callback()` when the hub's zeroconf was replaced by a new one: anything built on
        the old one (`zeroconf()`'s answer) must be rebuilt on the new one. Sync, no I/O:
        start a task for the work. Removed on unload."""
        self._undo.append(self._host.discovery.on_zeroconf_replaced(callback))

    def add_ble_source(self, name: str) -> BleSource:
        """Register a remote BLE source (a Bluetooth proxy) named `<integration>:<name>`;
        returns its handle (hub.discovery.sources.BleSource): feed advertisements through
        `advertisement(...)`, report `set_slots`, `connected()` and `lost(reason)`.
        Removed on unload."""
        full = f"{self.name}:{name}"
        self._undo.append(self._host.discovery.add_ble_source(full, self.name))
        return self._host.discovery.ble_source(full)

    def discovered(self) -> list[DiscoveredDevice]:
        """This integration's discovered devices (DiscoveredDevice)."""
        return [d for d in self._host.discovery.registry if d.integration == self.name]

    def ble_seen(self, address: str) -> tuple[int, float] | None:
        """(RSSI dBm, seconds since last heard) of a BLE address, or None."""
        return self._host.discovery.ble_seen(address)

    def report_malformed(self, what: str, detail: str = "") -> None:
        """Count bad input from the network (junk advertisement, bad TXT); logged at debug."""
        self._host.discovery.stats.malformed += 1
        self.log.debug("malformed %s %s", what, detail)

    def set_transport(self, device_id: str, choice: TransportChoice) -> None:
        """Record how one of this integration's devices is reached now (TransportChoice)."""
        if self.device(device_id) is not None:
            self._host.discovery.connectivity.set(device_id, choice)

    def create_task(self, coro: Coroutine[object, object, T], name: str = "") -> asyncio.Task[T]:
        """A supervised task: if it raises, the integration is restarted."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self.closed:
            return
        exc = task.exception()
        if exc is not None:
            self._host._crashed(self.name, exc)

    async def _close(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for undo in reversed(self._undo):
            try:
                result = undo()
                if isinstance(result, Awaitable):
                    await result
            except Exception:
                self.log.exception("undo on unload failed")
        self._undo.clear()


class AttestationVerifier(Protocol):
    """What a context needs from provisioning: the hub's id and the evidence check."""

    hub_id: str

    def verify(self, evidence: Evidence) -> Attestation: ...


@dataclass(slots=True)
class _Slot:
    manifest: Manifest
    config: dict[str, Any]
    state: str = "not_loaded"  # loaded | retrying | failed | stopped
    instance: Integration | None = None
    ctx: IntegrationContext | None = None
    error: str | None = None
    restarts: int = 0
    loop: ReconnectLoop | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # first attempt is over
    crashed: asyncio.Future[BaseException] | None = None


class IntegrationHost:
    """Loads configured integrations by name and keeps them running.

    Given the services an `IntegrationContext` reaches on an integration's behalf; discovery
    and provisioning come as the narrow parts a context uses.
    """

    def __init__(self, manifests: dict[str, Manifest], configs: dict[str, Any], *,
                 db: Database, devices: DeviceRegistry, states: StateStore, bus: EventBus,
                 clock: Clock, vault: Vault, audit: AuditLog, discovery: DiscoveryService,
                 attestation: AttestationVerifier, egress: EgressGuard) -> None:
        self.db = db  # integrations' durable values (IntegrationValues)
        self.devices = devices
        self.states = states
        self.bus = bus
        self.clock = clock
        self.vault = vault
        self.discovery = discovery
        self.attestation = attestation
        self.egress = egress  # integrations' own connections (an MQTT broker) pass the guard
        self.confirmations = Confirmations(bus, audit, clock)
        # device id -> part of the device (an entity, a sensor) -> why it is failing
        self.problems: dict[str, dict[str, str]] = {}
        self._slots = {
            name: _Slot(manifests[name], configs.get(name) or {})
            for name in _dependency_order(manifests, list(configs))
        }
        self._stopping = False
        self._unhook: Callable[[], None] | None = None

    async def start(self) -> None:
        """Start every integration's loop; return once each has had its first setup."""
        self._unhook = self.devices.on_remove(self.forget_device)
        policy = BackoffPolicy(initial=BACKOFF_START, maximum=BACKOFF_CAP,
                               auth_failure_delay=0.0)
        for name, slot in self._slots.items():
            slot.loop = ReconnectLoop(f"integration {name}", _bind(self._session, slot),
                                      clock=self.clock, policy=policy, log=_LOG,
                                      healthy_after=HEALTHY_AFTER, log_traceback=True)
            slot.loop.start()
        await asyncio.gather(*(slot.settled.wait() for slot in self._slots.values()))

    async def forget_device(self, device: Device) -> int:
        """Before a device is removed: its integration (if running) ends its connections and
        deletes its secrets; then every vault entry stored for it goes. Returns how many
        vault entries this deleted."""
        self.confirmations.withdraw(device.id)
        slot = self._slots.get(device.integration)
        if slot is not None and slot.state == "loaded" and slot.instance is not None \
                and slot.ctx is not None:
            try:
                await asyncio.wait_for(slot.instance.forget_device(slot.ctx, device),
                                       SETUP_TIMEOUT)
            except Exception:  # the removal goes on: the entries below go either way
                _LOG.exception("integration %s failed to forget %s", device.integration,
                               device.id)
        vault = self.vault
        prefix = f"{device.integration}:"
        deleted = 0
        for entry in await vault.entries("device_key"):
            if entry.name.startswith(prefix) and entry.public.get("device_id") == device.id:
                deleted += await vault.delete("device_key", entry.name)
        return deleted

    async def stop(self) -> None:
        self._stopping = True
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        for name in reversed(list(self._slots)):
            slot = self._slots[name]
            if slot.loop is not None:
                await slot.loop.stop()  # the session unloads the integration on its way out
            slot.state = "stopped"

    def status(self) -> dict[str, dict[str, Any]]:
        """Each integration's state; a loaded one with a `health()` method adds what it
        says about its own connections (a server it depends on) as `detail`."""
        out: dict[str, dict[str, Any]] = {}
        for name, s in self._slots.items():
            out[name] = {"state": s.state, "error": s.error, "restarts": s.restarts,
                         "version": s.manifest.version}
            health = getattr(s.instance, "health", None) if s.state == "loaded" else None
            if callable(health):
                try:
                    out[name]["detail"] = health()
                except Exception:
                    _LOG.exception("integration %s: health() failed", name)
        return out

    def loaded(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.state == "loaded"

    def active(self) -> list[str]:
        """Integrations with anything left running: a context not closed, or a reconnect loop
        not stopped. Empty once `stop` has returned."""
        return [name for name, s in self._slots.items() if s.ctx is not None or (
            s.loop is not None and s.loop.state is not ReconnectState.STOPPED)]

    def instance(self, name: str) -> Integration | None:
        slot = self._slots.get(name)
        return slot.instance if slot is not None and slot.state == "loaded" else None

    def running(self, name: str) -> tuple[Integration, IntegrationContext] | None:
        """A loaded integration's instance and context (for core services that hand it
        work, such as provisioning's adoption), or None."""
        slot = self._slots.get(name)
        if slot is None or slot.state != "loaded" or slot.instance is None or slot.ctx is None:
            return None
        return slot.instance, slot.ctx

    def context(self, name: str) -> IntegrationContext | None:
        slot = self._slots.get(name)
        return slot.ctx if slot is not None and slot.state == "loaded" else None

    async def command(self, device_id: str, command: str, params: object) -> Any:
        """Validate a command against what the device accepts, then hand it over."""
        device = self.devices.get(device_id)
        spec = device.command(command)
        checked = spec.validate(params)
        slot = self._slots.get(device.integration)
        if slot is None or slot.state != "loaded" or slot.instance is None or slot.ctx is None:
            raise DeviceUnavailable(f"integration {device.integration!r} is not running")
        return await slot.instance.command(slot.ctx, device, command, checked)

    # -- internals -------------------------------------------------------------------------

    async def _session(self, slot: _Slot) -> None:
        """One life of an integration: set up, run until a supervised task raises, unload.
        Raising hands the failure to the slot's ReconnectLoop, which backs off and retries."""
        name = slot.manifest.name
        try:
            for dep in slot.manifest.dependencies:
                if dep in self._slots:
                    await self._slots[dep].settled.wait()
            ctx = IntegrationContext(self, slot.manifest, slot.config)
            try:
                instance = await self._setup(name, ctx)
            except BaseException:
                await ctx._close()
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(slot, exc)
            raise
        crashed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        slot.instance, slot.ctx, slot.crashed = instance, ctx, crashed
        slot.state, slot.error = "loaded", None
        _LOG.info("integration %s %s loaded", name, slot.manifest.version)
        assert slot.loop is not None
        slot.loop.connected()
        slot.settled.set()
        try:
            crash = await crashed
        finally:
            slot.crashed = None
            await self._unload(slot)
        self._failed(slot, crash)
        raise crash

    @staticmethod
    async def _setup(name: str, ctx: IntegrationContext) -> Integration:
        module = importlib.import_module(f"integrations.{name}")
        instance = module.create()
        if not isinstance(instance, Integration):
            raise IntegrationError(f"integrations.{name}.create() is not an Integration")
        await asyncio.wait_for(instance.setup(ctx), SETUP_TIMEOUT)
        return instance

    async def _unload(self, slot: _Slot) -> None:
        instance, ctx = slot.instance, slot.ctx
        slot.instance = slot.ctx = None
        if ctx is None:
            return
        try:
            if instance is not None:
                await asyncio.wait_for(instance.unload(ctx), SETUP_TIMEOUT)
        except Exception:
            _LOG.exception("integration %s failed to unload cleanly", slot.manifest.name)
        await ctx._close()
        self.confirmations.withdraw_integration(slot.manifest.name)

    def _crashed(self, name: str, exc: BaseException) -> None:
        slot = self._slots[name]
        if self._stopping or slot.crashed is None or slot.crashed.done():
            return
        slot.crashed.set_result(exc)

    def _failed(self, slot: _Slot, exc: BaseException) -> None:
        slot.error = f"{type(exc).__name__}: {exc}"
        slot.state = "failed" if self._stopping else "retrying"
        slot.restarts += 1
        slot.settled.set()


def _bind(session: Callable[[_Slot], Awaitable[None]],
          slot: _Slot) -> Callable[[], Awaitable[None]]:
    return lambda: session(slot)


def _dependency_order(manifests: dict[str, Manifest], names: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()

    def visit(n: str, chain: tuple[str, ...]) -> None:
        if n in chain:
            raise IntegrationError(f"dependency cycle: {' -> '.join((*chain, n))}")
        if n in seen:
            return
        if n not in manifests:
            raise NotFound(f"no integration named {n!r}")
        for dep in manifests[n].dependencies:
            visit(dep, (*chain, n))
        seen.add(n)
        out.append(n)

    for n in names:
        visit(n, ())
    return [n for n in out if n in names]
