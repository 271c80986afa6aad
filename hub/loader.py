"""Loading integrations: the Protocol they implement, their context, isolation and restart.

An integration that raises during setup or in one of its tasks is unloaded (everything it
subscribed to is undone), logged once, and restarted with capped exponential backoff. It never
takes the hub down.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hub import namedsecrets
from hub.bus import DeviceEvent, DeviceRegistryChanged, Event
from hub.confirmations import Confirmations
from hub.devices import Device
from hub.errors import DeviceUnavailable, IntegrationError, NotFound
from hub.integration_values import IntegrationValues
from hub.manifests import Manifest

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.provisioning.evidence import Attestation, Evidence

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
        self._hub = host.hub
        self.manifest = manifest
        self.name = manifest.name
        self.config = config
        self.log = logging.getLogger(f"integrations.{manifest.name}")
        self.clock = host.hub.clock
        self._values = IntegrationValues(host.hub.db, manifest.name)
        self._undo: list[Callable[[], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # devices and state

    def register_device(self, device: Device) -> Device:
        """Add or update one of this integration's devices in the registry."""
        existing = self._hub.devices.find(device.id)
        restricted = existing.restricted if existing is not None else False
        # restriction is the owner's decision (privacy center): an integration cannot lift it
        return self._hub.devices.add(replace(device, integration=self.name,
                                             restricted=restricted))

    def devices(self) -> list[Device]:
        return self._hub.devices.by_integration(self.name)

    def device(self, device_id: str) -> Device | None:
        d = self._hub.devices.find(device_id)
        return d if d is not None and d.integration == self.name else None

    def set_state(self, device_id: str, attributes: dict[str, Any]) -> int:
        return self._hub.states.set(device_id, attributes)

    def state(self, device_id: str, attribute: str, default: Any = None) -> Any:
        return self._hub.states.value(device_id, attribute, default)

    def set_available(self, device_id: str, available: bool) -> None:
        self._hub.states.set_available(device_id, available)

    def fire_event(self, device_id: str, event_type: str, data: dict[str, Any] | None = None):
        ts = self.clock.time()
        payload = data or {}
        self._hub.states.record_event(device_id, event_type, payload, ts)
        self._hub.bus.publish(DeviceEvent(device_id, event_type, payload, ts))

    # attestation and device keys (the Uone integration re-attests at every reconnection)

    @property
    def hub_id(self) -> str:
        """This hub's stable id: what devices sign with attestation nonces."""
        return self._hub.provisioning.hub_id

    def verify_attestation(self, evidence: Evidence) -> Attestation:
        """Check a device's attestation evidence against the configured trust anchors."""
        return self._hub.provisioning.verify(evidence)

    async def device_secret(self, name: str) -> dict[str, Any] | None:
        """This integration's vault entry `name` (kind device_key), or None."""
        try:
            return await self._hub.vault.get("device_key", f"{self.name}:{name}")
        except NotFound:
            return None

    async def store_device_secret(self, name: str, secret: dict[str, Any], *,
                                  device_id: str | None = None) -> None:
        """Store a secret; with `device_id` it is deleted with that device (erase, delete)
        even when this integration is not running then."""
        public = {"device_id": device_id} if device_id else None
        await self._hub.vault.put("device_key", f"{self.name}:{name}", secret, public)

    async def device_secret_names(self) -> list[str]:
        """Names of this integration's vault entries (never their secrets)."""
        prefix = f"{self.name}:"
        return [e.name[len(prefix):] for e in await self._hub.vault.entries("device_key")
                if e.name.startswith(prefix)]

    async def forget_device_secret(self, name: str) -> None:
        await self._hub.vault.delete("device_key", f"{self.name}:{name}")

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
        self._hub.bus.publish(DeviceRegistryChanged("updated", device_id))

    async def named_secret(self, name: str) -> str | None:
        """The owner's named secret `name` (vault kind "secret", {"value": ...}), or None:
        what a config key like `password_secret` refers to."""
        try:
            secret = await self._hub.vault.get(namedsecrets.KIND, name)
        except NotFound:
            return None
        value = secret.get("value")
        return value if isinstance(value, str) else None

    # the network

    async def check_egress(self, host: str, purpose: str | None = None) -> list[str]:
        """Resolve `host` and raise EgressDenied unless it is on the LAN or the owner gave
        `purpose` consent (e.g. "external_broker"); returns its addresses. A library that
        connects from its own thread then passes the process-wide guard too."""
        privacy = getattr(self._hub, "privacy", None)
        if privacy is None:
            return [host]
        return await privacy.egress.check_destination(host, purpose)

    # subscriptions and tasks

    def subscribe(
        self, etype: type[Event], callback: Callable[[Any], None], *, key: str | None = None
    ) -> None:
        self._undo.append(self._hub.bus.subscribe(etype, callback, key=key))

    def on_unload(self, callback: Callable[[], Any]) -> None:
        self._undo.append(callback)

    # discovery (one shared zeroconf and BLE scanner; matched by this manifest's matchers)

    def on_advertisement(self, callback: Callable[[Any], Any]) -> None:
        """`callback(BleAdvertisement) -> DiscoveryInfo | None` for each changed advertisement
        that matches this integration's BLE matchers; returning info lists it as discovered."""
        self._undo.append(self._hub.discovery.add_advertisement_listener(self.name, callback))

    def on_mdns_service(self, callback: Callable[[Any, bool], Any]) -> None:
        """`callback(MdnsService, removed) -> DiscoveryInfo | None` for this integration's
        mDNS service types (added, updated, removed)."""
        self._undo.append(self._hub.discovery.add_mdns_listener(self.name, callback))

    def on_adopt(self, handler: Callable[[Any, str | None], Awaitable[Device]]) -> None:
        """`await handler(DiscoveredDevice, name)` registers the device and returns it."""
        self._undo.append(self._hub.discovery.set_adopt_handler(self.name, handler))

    def report_discovered(self, key: str, info: Any, *, source: str,
                          present: bool = True) -> Any:
        """List a device this integration found by its own means (an MQTT discovery
        message...) for the owner to adopt; `key` is stable for the device. Returns the
        DiscoveredDevice (its `device_id` is set once adopted)."""
        return self._hub.discovery.report(self.name, source, key, info, present)

    def withdraw_discovered(self, key: str, *, source: str) -> None:
        """A device reported with `report_discovered` is gone."""
        self._hub.discovery.withdraw(source, key)

    def discovered(self) -> list[Any]:
        """This integration's discovered devices (DiscoveredDevice)."""
        return [d for d in self._hub.discovery.registry if d.integration == self.name]

    def ble_seen(self, address: str) -> tuple[int, float] | None:
        """(RSSI dBm, seconds since last heard) of a BLE address, or None."""
        return self._hub.discovery.ble_seen(address)

    def report_malformed(self, what: str, detail: str = "") -> None:
        """Count bad input from the network (junk advertisement, bad TXT); logged at debug."""
        self._hub.discovery.stats.malformed += 1
        self.log.debug("malformed %s %s", what, detail)

    def set_transport(self, device_id: str, choice: Any) -> None:
        """Record how one of this integration's devices is reached now (TransportChoice)."""
        if self.device(device_id) is not None:
            self._hub.discovery.connectivity.set(device_id, choice)

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """A supervised task: if it raises, the integration is restarted."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
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


@dataclass(slots=True)
class _Slot:
    manifest: Manifest
    config: dict[str, Any]
    state: str = "not_loaded"  # loaded | failed | retrying | stopped
    instance: Integration | None = None
    ctx: IntegrationContext | None = None
    error: str | None = None
    restarts: int = 0
    backoff: float = 0.0  # set from BACKOFF_START when the slot is made
    loaded_at: float = 0.0
    retry_task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IntegrationHost:
    """Loads configured integrations by name and keeps them running."""

    def __init__(self, hub: Hub, manifests: dict[str, Manifest], configs: dict[str, Any]):
        self.hub = hub
        self.confirmations = Confirmations(hub.bus, hub.audit, hub.clock)
        # device id -> part of the device (an entity, a sensor) -> why it is failing
        self.problems: dict[str, dict[str, str]] = {}
        self._slots = {
            name: _Slot(manifests[name], configs.get(name) or {}, backoff=BACKOFF_START)
            for name in _dependency_order(manifests, list(configs))
        }
        self._stopping = False
        self._unhook: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unhook = self.hub.devices.on_remove(self.forget_device)
        await asyncio.gather(*(self._load(name) for name in self._slots))

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
        vault = self.hub.vault
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
            if slot.retry_task is not None:
                slot.retry_task.cancel()
            await self._unload(name)
            slot.state = "stopped"

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"state": s.state, "error": s.error, "restarts": s.restarts,
                   "version": s.manifest.version}
            for name, s in self._slots.items()
        }

    def loaded(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.state == "loaded"

    def instance(self, name: str) -> Integration | None:
        slot = self._slots.get(name)
        return slot.instance if slot is not None and slot.state == "loaded" else None

    def context(self, name: str) -> IntegrationContext | None:
        slot = self._slots.get(name)
        return slot.ctx if slot is not None and slot.state == "loaded" else None

    async def command(self, device_id: str, command: str, params: Any) -> Any:
        """Validate a command against what the device accepts, then hand it over."""
        device = self.hub.devices.get(device_id)
        spec = device.command(command)
        checked = spec.validate(params)
        slot = self._slots.get(device.integration)
        if slot is None or slot.state != "loaded" or slot.instance is None or slot.ctx is None:
            raise DeviceUnavailable(f"integration {device.integration!r} is not running")
        return await slot.instance.command(slot.ctx, device, command, checked)

    # -- internals -------------------------------------------------------------------------

    async def _load(self, name: str) -> None:
        slot = self._slots[name]
        async with slot.lock:
            if self._stopping or slot.state == "loaded":
                return
            for dep in slot.manifest.dependencies:
                if dep in self._slots and self._slots[dep].state != "loaded":
                    await self._load(dep)
            ctx = IntegrationContext(self, slot.manifest, slot.config)
            try:
                module = importlib.import_module(f"integrations.{name}")
                instance = module.create()
                if not isinstance(instance, Integration):
                    raise IntegrationError(f"integrations.{name}.create() is not an Integration")
                await asyncio.wait_for(instance.setup(ctx), SETUP_TIMEOUT)
            except asyncio.CancelledError:
                await ctx._close()
                raise
            except Exception as exc:
                await ctx._close()
                self._failed(slot, exc, "setup")
                return
            slot.instance, slot.ctx = instance, ctx
            slot.state, slot.error = "loaded", None
            slot.loaded_at = self.hub.clock.monotonic()
            _LOG.info("integration %s %s loaded", name, slot.manifest.version)

    async def _unload(self, name: str) -> None:
        slot = self._slots[name]
        instance, ctx = slot.instance, slot.ctx
        slot.instance = slot.ctx = None
        if ctx is None:
            return
        try:
            if instance is not None:
                await asyncio.wait_for(instance.unload(ctx), SETUP_TIMEOUT)
        except Exception:
            _LOG.exception("integration %s failed to unload cleanly", name)
        await ctx._close()
        self.confirmations.withdraw_integration(name)

    def _crashed(self, name: str, exc: BaseException) -> None:
        slot = self._slots[name]
        if self._stopping or slot.state != "loaded":
            return
        if self.hub.clock.monotonic() - slot.loaded_at > HEALTHY_AFTER:
            slot.backoff = BACKOFF_START  # it ran well for a while: start the backoff over

        async def restart() -> None:
            await self._unload(name)
            self._failed(slot, exc, "running")

        asyncio.get_running_loop().create_task(restart(), name=f"unload-{name}")

    def _failed(self, slot: _Slot, exc: BaseException, phase: str) -> None:
        name = slot.manifest.name
        slot.error = f"{type(exc).__name__}: {exc}"
        if self._stopping:
            slot.state = "failed"
            return
        delay = slot.backoff * random.uniform(0.9, 1.1)
        slot.backoff = min(slot.backoff * 2, BACKOFF_CAP)
        slot.state = "retrying"
        slot.restarts += 1
        _LOG.error("integration %s failed while %s (%s); retrying in %.1f s",
                   name, phase, slot.error, delay, exc_info=(type(exc), exc, exc.__traceback__))

        async def retry() -> None:
            await self.hub.clock.sleep(delay)
            slot.retry_task = None
            await self._load(name)

        slot.retry_task = asyncio.get_running_loop().create_task(retry(), name=f"retry-{name}")


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
