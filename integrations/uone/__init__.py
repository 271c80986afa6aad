"""Uone devices: discovery on mDNS and BLE (PROTOCOL.md), adoption, transport choice.

A Uone device on Wi-Fi announces `_uone._tcp`; before it has Wi-Fi (and later, as a
fallback) it advertises over BLE. Both are linked by the device id (`did`). For an adopted
device the integration checks which way in works — its IP answering on the API port, or
a recent BLE advertisement with a usable signal — and records the choice and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hub.facade import (
    BleAdvertisement,
    CommandSpec,
    Device,
    DiscoveredDevice,
    DiscoveryInfo,
    IntegrationContext,
    MdnsService,
    TransportChoice,
    ValidationError,
    choose_transport,
    probe_lan,
)
from integrations.uone.advert import COMPANY_ID, Malformed, parse_ble, parse_txt

_COMMANDS = (CommandSpec("check_connectivity"),)


def create() -> UoneIntegration:
    return UoneIntegration()


@dataclass
class UoneIntegration:
    ctx: IntegrationContext | None = None
    adopted: dict[str, str] = field(default_factory=dict)  # did -> device id
    lan: dict[str, tuple[str, int]] = field(default_factory=dict)  # did -> (ip, port)
    names: dict[str, str] = field(default_factory=dict)  # mDNS instance name -> did
    ble: dict[str, str] = field(default_factory=dict)  # did -> BLE address
    _pending: set[str] = field(default_factory=set)

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        for device in ctx.devices():
            if device.did:
                self.adopted[device.did] = device.id
        ctx.on_mdns_service(self._on_mdns)
        ctx.on_advertisement(self._on_advertisement)
        ctx.on_adopt(self._adopt)
        ctx.create_task(self._recheck(float(ctx.config.get("check_interval", 60))),
                        "reachability")

    async def unload(self, ctx: IntegrationContext) -> None:
        return None

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        if command == "check_connectivity" and device.did:
            return (await self.check(device.did)).to_json()
        raise ValidationError("command", f"unknown command {command!r}")

    # discovery listeners (sync, on the hub's hot path: no I/O here)

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

    # adoption and reachability

    async def _adopt(self, item: DiscoveredDevice, name: str | None) -> Device:
        ctx = self.ctx
        assert ctx is not None
        if not item.did:
            raise ValidationError(None, f"{item.id} has no Uone device id")
        device = ctx.register_device(Device(
            id="uone." + item.did.removeprefix("uone-"), name=name or item.name,
            integration=ctx.name, did=item.did, mac=item.mac, model=item.model,
            manufacturer="Uone", fw_version=item.fw,
            transport="lan" if item.source == "mdns" else "ble", commands=_COMMANDS,
        ))
        self.adopted[item.did] = device.id
        await self.check(item.did)
        return device

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
