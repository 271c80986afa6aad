"""Uone devices: discovery on mDNS and BLE, attested adoption, control over the LAN.

A Uone device on Wi-Fi announces `_uone._tcp`; before it has Wi-Fi (and later, as a
fallback) it advertises over BLE. Both are linked by the device id (`did`). Provisioning
(BLE attestation, sealed Wi-Fi credentials) is done by the hub's provisioning jobs; this
integration takes over on the LAN: adoption connects to the device's local API over TLS
pinned to the attested key and re-attests it (a device that fails is never adopted). Each
adopted device then has a supervised connection that re-attests at every reconnection,
receives pushed state and carries acknowledged commands. The integration also checks which
way in works (LAN or BLE) and records the choice and its reason.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field, replace
from typing import Any

from hub.facade import (
    BackoffPolicy,
    BleAdvertisement,
    CommandSpec,
    Device,
    DeviceUnavailable,
    DiscoveredDevice,
    DiscoveryInfo,
    IntegrationContext,
    MdnsService,
    ReconnectLoop,
    TransportChoice,
    ValidationError,
    choose_transport,
    probe_lan,
)
from integrations.uone.advert import COMPANY_ID, Malformed, parse_ble, parse_txt
from integrations.uone.lan import LanConnection, LanError, fetch_identity

COMMANDS = (CommandSpec("turn_on"), CommandSpec("turn_off"), CommandSpec("toggle"),
            CommandSpec("check_connectivity"))
ATTRIBUTES = ("on", "power")
RECONNECT = BackoffPolicy(initial=1.0, maximum=60.0)


def create() -> UoneIntegration:
    return UoneIntegration()


def device_id_for(did: str) -> str:
    return "uone." + did.removeprefix("uone-")


@dataclass
class _Link:
    """What the integration knows to reach one adopted device over the LAN."""

    device_id: str
    did: str
    mac: str | None
    host: str
    port: int
    pin: bytes  # SubjectPublicKeyInfo of the attested device key
    connection: LanConnection | None = None
    attestations: int = 0
    failures: int = 0
    loop: ReconnectLoop | None = None
    # state the device pushed before it was registered (the hello of the first connection
    # arrives during adoption): applied right after registration, not dropped
    early_state: dict[str, Any] = field(default_factory=dict)


@dataclass
class UoneIntegration:
    ctx: IntegrationContext | None = None
    adopted: dict[str, str] = field(default_factory=dict)  # did -> device id
    lan: dict[str, tuple[str, int]] = field(default_factory=dict)  # did -> (ip, port)
    names: dict[str, str] = field(default_factory=dict)  # mDNS instance name -> did
    ble: dict[str, str] = field(default_factory=dict)  # did -> BLE address
    links: dict[str, _Link] = field(default_factory=dict)  # device id -> link
    _pending: set[str] = field(default_factory=set)

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        for device in ctx.devices():
            if not device.did:
                continue
            self.adopted[device.did] = device.id
            secret = await ctx.device_secret(device.did)
            if secret is None:
                ctx.log.warning("%s has no pinned key; provision or adopt it again", device.id)
                continue
            link = _Link(device.id, device.did, device.mac, secret["host"], int(secret["port"]),
                         base64.b64decode(secret["pin"]))
            self._start_link(ctx, link)
        ctx.on_mdns_service(self._on_mdns)
        ctx.on_advertisement(self._on_advertisement)
        ctx.on_adopt(self._adopt)
        ctx.create_task(self._recheck(float(ctx.config.get("check_interval", 60))),
                        "reachability")

    async def unload(self, ctx: IntegrationContext) -> None:
        # stop reconnecting first, then close
        await asyncio.gather(*(link.loop.stop() for link in self.links.values()
                               if link.loop is not None))
        for link in self.links.values():
            if link.connection is not None:
                await link.connection.close()
            ctx.set_available(link.device_id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        if command == "check_connectivity" and device.did:
            return (await self.check(device.did)).to_json()
        link = self.links.get(device.id)
        if link is None or link.connection is None or not link.connection.connected:
            raise DeviceUnavailable(f"{device.name} is not connected over the LAN")
        return await link.connection.command(command, params)

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: end the LAN connection, stop reconnecting, drop the pinned key."""
        link = self.links.pop(device.id, None)
        if link is not None:
            if link.loop is not None:
                await link.loop.stop()
            if link.connection is not None:
                await link.connection.close()
        did = device.did or (link.did if link is not None else None)
        if did:
            self.adopted.pop(did, None)
            await ctx.forget_device_secret(did)

    # -- adoption ----------------------------------------------------------------------------

    async def adopt(self, ctx: IntegrationContext, *, did: str, mac: str | None, host: str,
                    port: int, txt: dict[str, str], public_key: bytes, name: str) -> Device:
        """First contact on the LAN after provisioning: pinned TLS + re-attestation, then
        register. Raises LanError (nothing registered, nothing stored) on any failure."""
        link = _Link(device_id_for(did), did, mac, host, port, public_key)
        conn = self._connection(ctx, link, txt.get("did"), txt.get("mac"))
        await conn.open()
        return await self._register(ctx, link, conn, name, txt)

    async def _adopt(self, item: DiscoveredDevice, name: str | None) -> Device:
        """Adoption from the discovered list: only a device on the LAN that attests."""
        ctx = self.ctx
        assert ctx is not None
        if not item.did:
            raise ValidationError(None, f"{item.id} has no Uone device id")
        lan = self.lan.get(item.did)
        if lan is None:
            raise ValidationError(None, f"{item.id} is not on the LAN yet: give it Wi-Fi with "
                                  f"POST /api/discovered/{item.id}/provision")
        host, port = lan
        try:
            chain = await fetch_identity(host, port)
        except LanError as exc:
            raise ValidationError(None, f"cannot verify {item.did}: {exc}") from None
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        pin = x509.load_der_x509_certificate(chain).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        link = _Link(device_id_for(item.did), item.did, item.mac, host, port, pin)
        conn = self._connection(ctx, link, item.did, item.mac)
        try:
            await conn.open()  # attests against the trust anchors; pin = the attested key
        except LanError as exc:
            raise ValidationError(None, f"{item.did} is not adopted: {exc}") from None
        return await self._register(ctx, link, conn, name or item.name, dict(item.txt))

    async def _register(self, ctx: IntegrationContext, link: _Link, conn: LanConnection,
                        name: str, txt: dict[str, str]) -> Device:
        link.connection = conn
        link.attestations += 1
        try:
            await ctx.store_device_secret(link.did, {
                "host": link.host, "port": link.port,
                "pin": base64.b64encode(link.pin).decode()}, device_id=link.device_id)
            device = ctx.register_device(Device(
                id=link.device_id, name=name, integration=ctx.name, did=link.did,
                mac=link.mac, model=str(conn.hello.get("model") or txt.get("model")
                                        or "Uone device"),
                fw_version=txt.get("fw") or None, manufacturer="Uone", transport="lan",
                commands=COMMANDS, attributes=ATTRIBUTES))
            if link.early_state:
                ctx.set_state(device.id, link.early_state)
                link.early_state = {}
        except BaseException:
            await conn.close()
            await ctx.forget_device_secret(link.did)
            raise
        self.adopted[link.did] = device.id
        self.lan[link.did] = (link.host, link.port)
        ctx.set_available(device.id, True)
        self._start_link(ctx, link)
        await self.check(link.did)
        return device

    # -- the LAN link ------------------------------------------------------------------------

    def _start_link(self, ctx: IntegrationContext, link: _Link) -> None:
        old = self.links.get(link.device_id)
        if old is not None and old.loop is not None:
            ctx.create_task(old.loop.stop(), f"unlink-{old.did}")
        self.links[link.device_id] = link
        link.loop = ReconnectLoop(
            f"uone {link.device_id}", lambda: self._keep(ctx, link), clock=ctx.clock,
            log=ctx.log, policy=RECONNECT, describe=lambda kind, exc: _describe(link, kind, exc))
        link.loop.start()
        ctx.on_unload(link.loop.stop)

    def _connection(self, ctx: IntegrationContext, link: _Link, adv_did: str | None,
                    adv_mac: str | None) -> LanConnection:
        def on_state(state: dict[str, Any]) -> None:
            values = {k: v for k, v in state.items() if k in ATTRIBUTES}
            if not values:
                return
            if ctx.device(link.device_id) is None:  # still adopting: keep it for _register
                link.early_state.update(values)
            else:
                ctx.set_state(link.device_id, values)

        return LanConnection(link.host, link.port, pin=link.pin, hub_id=ctx.hub_id,
                             verify=ctx.verify_attestation, advertised_did=adv_did or link.did,
                             advertised_mac=adv_mac or link.mac, on_state=on_state)

    async def _keep(self, ctx: IntegrationContext, link: _Link) -> None:
        """One connection to the device (re-attested at every reconnection), until it closes;
        the link's ReconnectLoop backs off between attempts."""
        assert link.loop is not None
        if link.connection is None or not link.connection.connected:
            host, port = self.lan.get(link.did, (link.host, link.port))
            link.host, link.port = host, port
            conn = self._connection(ctx, link, None, None)
            try:
                await conn.open()
            except LanError as exc:
                link.failures += 1
                ctx.set_available(link.device_id, False)
                if exc.code == "attestation_failed" and link.loop.failures:
                    ctx.log.warning("%s: %s", link.device_id, exc)  # every one: it matters
                raise
            link.connection = conn
            link.attestations += 1
        link.failures = 0
        link.loop.connected()
        ctx.set_available(link.device_id, True)
        try:
            await link.connection.wait_closed()
        finally:
            ctx.set_available(link.device_id, False)
        link.connection = None  # closed; on a stop, unload closes it

    # -- discovery listeners (sync, on the hub's hot path: no I/O here) ----------------------

    def _on_mdns(self, service: MdnsService, removed: bool) -> DiscoveryInfo | None:
        ctx = self.ctx
        assert ctx is not None
        if removed:
            did = self.names.pop(service.name, None)
            if did is not None:
                self.lan.pop(did, None)
                self._schedule(did)
            return None
        try:
            txt = parse_txt(service.txt)
        except Malformed as exc:
            ctx.report_malformed("Uone TXT record", f"{service.name}: {exc}")
            return None
        self.names[service.name] = txt.did
        if service.addresses and service.port:
            self.lan[txt.did] = (service.addresses[0], service.port)
        device_id = self.adopted.get(txt.did)
        if device_id is not None:
            link = self.links.get(device_id)
            if link is not None and link.loop is not None:
                link.loop.wake()  # it announced itself: no need to wait out the backoff
            device = ctx.device(device_id)
            if device is not None and (device.fw_version, device.model) != (txt.fw, txt.model):
                ctx.register_device(replace(device, fw_version=txt.fw, model=txt.model))
            self._schedule(txt.did)
        return DiscoveryInfo(name=service.instance, did=txt.did, mac=txt.mac,
                             model=txt.model, fw=txt.fw, data={"proto": txt.proto})

    def _on_advertisement(self, adv: BleAdvertisement) -> DiscoveryInfo | None:
        ctx = self.ctx
        assert ctx is not None
        try:
            parsed = parse_ble(adv.manufacturer_data.get(COMPANY_ID, b""))
        except Malformed as exc:
            ctx.report_malformed("Uone BLE advertisement", f"from {adv.address}: {exc}")
            return None
        if parsed is None:
            return None  # someone else's 0xFFFF data
        self.ble[parsed.did] = adv.address
        return DiscoveryInfo(
            name=adv.name or f"Uone-{parsed.did[-4:]}", did=parsed.did, mac=parsed.mac,
            data={"on_wifi": parsed.on_wifi, "needs_setup": parsed.needs_setup,
                  "improv": parsed.improv})

    # -- reachability --------------------------------------------------------------------------

    async def check(self, did: str) -> TransportChoice:
        """Probe the LAN, read the BLE signal, choose, record."""
        ctx = self.ctx
        assert ctx is not None
        lan = None
        if did in self.lan:
            host, port = self.lan[did]
            lan = await probe_lan(host, port, wait=1.0)
        address = self.ble.get(did)
        choice = choose_transport(
            lan, ctx.ble_seen(address) if address else None,
            prefer=ctx.config.get("prefer", "lan"), min_rssi=ctx.config.get("min_rssi", -90))
        device_id = self.adopted.get(did)
        if device_id is not None:
            ctx.set_transport(device_id, choice)
        return choice

    def _schedule(self, did: str) -> None:
        if did in self.adopted and did not in self._pending and self.ctx is not None:
            self._pending.add(did)
            self.ctx.create_task(self._check_once(did), f"check-{did}")

    async def _check_once(self, did: str) -> None:
        try:
            await self.check(did)
        finally:
            self._pending.discard(did)

    async def _recheck(self, every: float) -> None:
        assert self.ctx is not None
        while True:
            await self.ctx.clock.sleep(every)
            for did in list(self.adopted):
                await self.check(did)


def _describe(link: _Link, kind: str, exc: BaseException | None) -> str:
    if kind == "up":
        return f"{link.device_id}: reconnected and re-attested"
    if exc is None:
        return f"{link.device_id}: connection closed; reconnecting with backoff"
    return f"{link.device_id}: {exc}"
