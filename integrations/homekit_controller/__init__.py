"""HomeKit accessories (HAP over IP) controlled from the hub with aiohomekit.

Accessories announce `_hap._tcp`; the hub's one zeroconf browses it (the manifest declares
`_hap._tcp` and `_hap._udp`, so the hub's browser is the one aiohomekit requires). An
unpaired accessory is listed in /api/discovered; adopting it with its setup code pairs the
hub with it, and the pairing keys (the hub's long-term key for that accessory) go to the
vault. Each paired accessory is one hub device: services become attributes and commands
(`mapping.py`), a programmable switch's presses become `button` events, and subscribed
characteristic events keep state current. aiohomekit keeps the TCP session up on its own;
a `ReconnectLoop` re-reads the accessory after every reconnection (values changed while it
was away) with the hub's backoff. Removing the device removes the pairing on the accessory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from hub.facade import (
    BackoffPolicy,
    CommandSpec,
    Device,
    DeviceUnavailable,
    DiscoveredDevice,
    DiscoveryInfo,
    HubError,
    IntegrationContext,
    MdnsService,
    ReconnectLoop,
    ValidationError,
    watching_srp,
)
from integrations.homekit_controller.mapping import MalformedValue, Mapping, build, press

CONNECTED_CHECK = 0.5  # s between looks at whether aiohomekit still has the session
_CODE = re.compile(r"^(\d{3})-?(\d{2})-?(\d{3})$")
_TRIVIAL_CODES = {"000-00-000", "111-11-111", "222-22-222", "333-33-333", "444-44-444",
                  "555-55-555", "666-66-666", "777-77-777", "888-88-888", "999-99-999",
                  "123-45-678", "876-54-321"}


class PairingFailed(HubError):
    """The accessory could not be paired (it dropped, refused or timed out): 503."""

    status = 503


def create() -> HomekitController:
    return HomekitController()


def device_id_for(hap_id: str) -> str:
    return "homekit." + hap_id.lower().replace(":", "")


def setup_code(raw: str) -> str:
    """'03145154' or '031-45-154' -> '031-45-154'; ValidationError naming the field."""
    m = _CODE.match(raw.strip())
    if m is None:
        raise ValidationError("credentials.setup_code",
                              "expected the 8-digit HomeKit setup code, e.g. 123-45-678")
    code = "-".join(m.groups())
    if code in _TRIVIAL_CODES:
        raise ValidationError("credentials.setup_code", "not a valid HomeKit setup code")
    return code


@dataclass
class _Link:
    """One paired accessory: its aiohomekit pairing, what it maps to, its reconnect loop."""

    device_id: str
    hap_id: str
    pairing: Any
    mapping: Mapping | None = None
    loop: ReconnectLoop | None = None
    undo: list[Any] = field(default_factory=list)


@dataclass
class HomekitController:
    ctx: IntegrationContext | None = None
    controller: Any = None  # aiohomekit.Controller on the hub's zeroconf
    links: dict[str, _Link] = field(default_factory=dict)  # device id -> link
    seen: dict[str, str] = field(default_factory=dict)  # mDNS name -> HAP id
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarting: asyncio.Lock = field(default_factory=asyncio.Lock)
    srp_retries: int = 0  # pair-setups tried again because padding could explain a refusal

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        ctx.own_availability()  # availability follows the HAP session, not mDNS presence
        ctx.on_mdns_service(self._on_mdns)
        ctx.on_adopt(self._adopt, credentials=("setup_code",))
        ctx.on_zeroconf_replaced(self._zeroconf_replaced)
        ctx.create_task(self._begin(ctx), "start")

    async def unload(self, ctx: IntegrationContext) -> None:
        await self._stop(ctx)

    async def _stop(self, ctx: IntegrationContext) -> None:
        self.ready.clear()
        for link in list(self.links.values()):
            await self._stop_link(link)
            await self._close(link)
            ctx.set_available(link.device_id, False)
        self.links.clear()
        if self.controller is not None:
            await self.controller.async_stop()
            self.controller = None

    async def _begin(self, ctx: IntegrationContext) -> None:
        async with self.restarting:
            await self._start(ctx)

    def _zeroconf_replaced(self) -> None:
        if self.ctx is not None:
            self.ctx.create_task(self._restart(self.ctx), "new-zeroconf")

    async def _restart(self, ctx: IntegrationContext) -> None:
        """The hub's zeroconf was replaced: aiohomekit's Controller (and its pairings'
        address lookups) lived on the closed one. Start again on the new one."""
        async with self.restarting:
            ctx.log.info("HomeKit: the hub's zeroconf was replaced; reconnecting accessories")
            await self._stop(ctx)
            await self._start(ctx)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        link = self.links.get(device.id)
        if link is None or link.mapping is None or not link.pairing.is_connected:
            raise DeviceUnavailable(f"{device.name} is not connected")
        try:
            writes = link.mapping.writes(command, params,
                                         lambda a: ctx.state(device.id, a))
        except MalformedValue as exc:
            where, _, message = str(exc).partition(": ")
            raise ValidationError(where, message) from None
        except KeyError:
            raise ValidationError("command", f"{device.name} cannot carry out {command!r}"
                                  ) from None
        from aiohomekit.exceptions import AccessoryDisconnectedError

        try:
            status = await link.pairing.put_characteristics(
                [(p.aid, p.iid, value) for p, value, _ in writes])
        except AccessoryDisconnectedError as exc:
            raise DeviceUnavailable(f"{device.name}: {exc}") from None
        refused = {k: v for k, v in status.items() if v.get("status", 0) != 0}
        if refused:
            names = [link.mapping.points[k].name for k in refused if k in link.mapping.points]
            detail = next(iter(refused.values())).get("description", "refused")
            raise DeviceUnavailable(f"{device.name} refused {', '.join(names)}: {detail}")
        written = {p.name: p.check(value) for p, value, _ in writes}
        ctx.set_state(device.id, written)
        return written

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: remove our pairing on the accessory (so it can be paired
        again), stop the link, drop the keys (the hub deletes the vault entry too)."""
        link = self.links.pop(device.id, None)
        if link is None:
            return
        await self._stop_link(link)
        try:
            await asyncio.wait_for(
                link.pairing.remove_pairing(link.pairing.pairing_data["iOSPairingId"]), 10)
        except Exception as exc:  # unreachable: it keeps a stale pairing until reset
            ctx.log.warning("%s: could not remove the pairing on the accessory (%s); "
                            "reset it to pair it again", device.id, type(exc).__name__)
        await self._close(link)
        await ctx.forget_device_secret(link.hap_id)

    # -- start: the controller on the hub's zeroconf, then the paired accessories ----------

    async def _start(self, ctx: IntegrationContext) -> None:
        zc = await ctx.zeroconf(within=120.0)
        if zc is None:
            ctx.log.error("HomeKit needs mDNS: enable discovery.mdns (no zeroconf to use)")
            return
        await asyncio.to_thread(_import_aiohomekit)  # file I/O: never on the event loop
        from aiohomekit import Controller

        controller = Controller(async_zeroconf_instance=zc)
        await controller.async_start()
        self.controller = controller
        for device in ctx.devices():
            hap_id = (device.did or "").removeprefix("hap:")
            secret = await ctx.device_secret(hap_id) if hap_id else None
            if secret is None:
                ctx.log.warning("%s has no pairing keys; remove and pair it again", device.id)
                continue
            pairing = controller.load_pairing(hap_id, dict(secret))
            self._start_link(ctx, _Link(device.id, hap_id, pairing))
        self.ready.set()

    # -- adoption: pairing with the setup code ---------------------------------------------

    async def _adopt(self, item: DiscoveredDevice, name: str | None, *,
                     credentials: dict[str, str]) -> Device:
        ctx = self.ctx
        assert ctx is not None
        hap_id = str(item.data.get("hap_id") or "")
        if not hap_id:
            raise ValidationError(None, f"{item.id} is not a HomeKit accessory")
        if "setup_code" not in credentials:
            raise ValidationError("credentials.setup_code",
                                  "required: the accessory's 8-digit setup code")
        code = setup_code(credentials["setup_code"])
        if not self.ready.is_set():
            raise DeviceUnavailable("HomeKit is still starting")
        timeout = float(ctx.config.get("pairing_timeout", 30))
        try:
            pairing = await asyncio.wait_for(self._pair(hap_id, code), timeout)
        except ValidationError as exc:
            ctx.annotate_discovered(item.id, error=str(exc))
            raise
        except (PairingFailed, TimeoutError) as exc:
            message = str(exc) if isinstance(exc, PairingFailed) else (
                f"pairing did not finish within {timeout:g} s")
            ctx.annotate_discovered(item.id, error=message)
            raise PairingFailed(message) from None
        ctx.annotate_discovered(item.id, error=None)
        device_id = device_id_for(hap_id)
        try:
            await ctx.store_device_secret(hap_id, dict(pairing.pairing_data),
                                          device_id=device_id)
            device = ctx.register_device(Device(
                id=device_id, name=name or item.name, integration=ctx.name,
                did=f"hap:{hap_id}", model=item.model, manufacturer=None, transport="lan"))
        except BaseException:  # not kept: leave the accessory free to pair again
            with contextlib.suppress(Exception):
                await pairing.remove_pairing(pairing.pairing_data["iOSPairingId"])
            await ctx.forget_device_secret(hap_id)
            raise
        link = _Link(device_id, hap_id, pairing)
        try:
            await self._sync(ctx, link)  # first read: attributes, commands, values
        except Exception as exc:
            ctx.log.warning("%s: paired, first read failed (%s); retrying", device_id, exc)
        self._start_link(ctx, link)
        return ctx.device(device.id) or device

    async def _pair(self, hap_id: str, code: str) -> Any:
        """Pair; after a refused code, once more only if the refusal could be the padding
        mismatch: HAP-python accessories (and Home Assistant's HomeKit bridge, built on it)
        hash SRP values without their leading zero bytes, so ~1 correct code in 85 is
        refused. The exchange tells whether that could be the case (hub/thirdparty.py), so
        a wrong code counts once towards the accessory's lockout (twice ~1 time in 85)."""
        from aiohomekit.exceptions import AuthenticationError

        with watching_srp() as watch:
            try:
                return await self._pair_once(hap_id, code)
            except AuthenticationError:
                pass
        if not watch.could_be_padding():  # (when it cannot tell: tried again, as before)
            raise ValidationError("credentials.setup_code",
                                  "the accessory refused this setup code")
        self.srp_retries += 1
        try:
            return await self._pair_once(hap_id, code)
        except AuthenticationError:
            raise ValidationError("credentials.setup_code",
                                  "the accessory refused this setup code") from None

    async def _pair_once(self, hap_id: str, code: str) -> Any:
        from aiohomekit.exceptions import (
            AccessoryNotFoundError,
            AlreadyPairedError,
            AuthenticationError,
            BusyError,
            HomeKitException,
            MaxTriesError,
            UnavailableError,
        )

        discovery = None
        try:
            discovery = await self.controller.async_find(hap_id, timeout=10)
            finish = await discovery.async_start_pairing(hap_id)
            return await finish(code)
        except AuthenticationError:
            raise
        except (AlreadyPairedError, UnavailableError):
            raise PairingFailed("the accessory is already paired with another controller; "
                                "reset it first") from None
        except MaxTriesError:
            raise PairingFailed("the accessory refuses pairing after too many wrong codes; "
                                "restart it") from None
        except BusyError:
            raise PairingFailed("the accessory is busy (pairing with another controller, or "
                                "locked for a while after wrong codes): try again in a minute"
                                ) from None
        except AccessoryNotFoundError:
            raise PairingFailed("the accessory is no longer announced on the LAN") from None
        except (HomeKitException, OSError, asyncio.IncompleteReadError) as exc:
            raise PairingFailed(f"the accessory dropped the pairing ({type(exc).__name__})"
                                ) from None
        finally:  # the pairing session is over: a new attempt starts on a new connection
            if discovery is not None:
                await discovery.connection.close()

    # -- the link: first read, events, reconnection ---------------------------------------

    def _start_link(self, ctx: IntegrationContext, link: _Link) -> None:
        self.links[link.device_id] = link
        link.undo.append(link.pairing.dispatcher_connect(
            lambda data, link=link: self._on_values(ctx, link, data)))
        maximum = float(ctx.config.get("reconnect_max", 60))
        link.loop = ReconnectLoop(f"HomeKit {link.device_id}",
                                  lambda: self._session(ctx, link), clock=ctx.clock,
                                  policy=BackoffPolicy(initial=1.0, maximum=maximum),
                                  log=ctx.log)
        link.loop.start()

    async def _session(self, ctx: IntegrationContext, link: _Link) -> None:
        """Connected: re-read everything, then serve events until the session drops."""
        assert link.loop is not None
        await self._sync(ctx, link)
        link.loop.connected()
        ctx.set_available(link.device_id, True)
        try:
            while link.pairing.is_connected:
                await ctx.clock.sleep(CONNECTED_CHECK)
        finally:
            ctx.set_available(link.device_id, False)

    async def _sync(self, ctx: IntegrationContext, link: _Link) -> None:
        accessories = await link.pairing.list_accessories_and_characteristics()
        mapping = build(accessories)
        link.mapping = mapping
        device = ctx.device(link.device_id)
        if device is not None:
            ctx.register_device(replace(
                device, model=mapping.model or device.model,
                manufacturer=mapping.manufacturer, fw_version=mapping.firmware,
                attributes=mapping.attributes, events=mapping.events,
                commands=tuple(CommandSpec(n, p, r) for n, p, r in mapping.commands())))
        watched = [k for k, p in mapping.points.items() if p.events] + list(mapping.buttons)
        if watched:
            await link.pairing.subscribe(watched)
        readable = list(mapping.points)
        if readable:
            self._on_values(ctx, link, await link.pairing.get_characteristics(readable),
                            initial=True)

    def _on_values(self, ctx: IntegrationContext, link: _Link,
                   data: dict[tuple[int, int], dict[str, Any]], initial: bool = False) -> None:
        """Events and reads: checked values become state; presses become events."""
        mapping = link.mapping
        if mapping is None or ctx.device(link.device_id) is None:
            return
        values: dict[str, Any] = {}
        for key, entry in data.items():
            if "value" not in entry:
                continue
            if key in mapping.buttons:
                if initial:
                    continue  # a read of an input event is its last press, not a new one
                try:
                    kind = press(entry["value"])
                except MalformedValue as exc:
                    ctx.report_malformed("HomeKit button event", f"{link.device_id}: {exc}")
                    continue
                ctx.fire_event(link.device_id, mapping.buttons[key], {"press": kind})
                continue
            point = mapping.points.get(key)
            if point is None:
                continue
            try:
                values[point.name] = point.check(entry["value"])
            except MalformedValue as exc:
                ctx.report_malformed("HomeKit value", f"{link.device_id}: {exc}")
        if values:
            ctx.set_state(link.device_id, values)

    async def _stop_link(self, link: _Link) -> None:
        if link.loop is not None:
            await link.loop.stop()
        for undo in link.undo:
            undo()
        link.undo.clear()

    async def _close(self, link: _Link) -> None:
        try:
            await link.pairing.shutdown()
        except Exception as exc:
            if self.ctx is not None:
                self.ctx.log.debug("closing %s: %s", link.device_id, exc)

    # -- discovery (sync, on the hub's hot path: no I/O) -----------------------------------

    def _on_mdns(self, service: MdnsService, removed: bool) -> DiscoveryInfo | None:
        if removed:
            self.seen.pop(service.name, None)
            return None
        hap_id = service.txt.get("id", "").lower()
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", hap_id):
            if self.ctx is not None:
                self.ctx.report_malformed("HAP TXT record", f"{service.name}: bad id")
            return None
        self.seen[service.name] = hap_id
        unpaired = service.txt.get("sf", "0").isdigit() and int(service.txt["sf"]) & 1
        ours = device_id_for(hap_id) in self.links
        if ours:
            link = self.links[device_id_for(hap_id)]
            if link.loop is not None:
                link.loop.wake()  # it announced itself: try now
        elif not unpaired:
            return None  # paired with another controller: nothing to adopt
        return DiscoveryInfo(name=service.instance, model=service.txt.get("md") or None,
                             data={"hap_id": hap_id, "paired": not unpaired,
                                   "category": service.txt.get("ci")})


def _import_aiohomekit() -> None:
    """Import aiohomekit and the transports its Controller imports when it starts."""
    import importlib

    for name in ("aiohomekit", "aiohomekit.exceptions", "aiohomekit.controller.ip.controller",
                 "aiohomekit.controller.coap.controller"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
