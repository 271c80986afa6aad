"""Uone devices: attested BLE provisioning, then control over the LAN (see PROTOCOL.md).

Provisioning (BLE, attestation, sealed Wi-Fi credentials) is done by the hub's provisioning
jobs; this integration takes over when the device is on the LAN: `adopt` connects to its
local API over TLS pinned to the attested key, re-attests it, and registers it. Afterwards
each device has a supervised connection that re-attests at every reconnection, receives
pushed state and carries commands.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass, field
from typing import Any

from hub.facade import (
    CommandSpec,
    Device,
    DeviceUnavailable,
    IntegrationContext,
)
from integrations.uone.lan import LanConnection, LanError

COMMANDS = (CommandSpec("turn_on"), CommandSpec("turn_off"), CommandSpec("toggle"))
ATTRIBUTES = ("on", "power")
RECONNECT_MIN, RECONNECT_MAX = 1.0, 60.0


def create() -> UoneIntegration:
    return UoneIntegration()


@dataclass
class _Link:
    """What the integration knows to reach one adopted device."""

    device_id: str
    did: str
    mac: str | None
    host: str
    port: int
    pin: bytes
    connection: LanConnection | None = None
    attestations: int = 0
    failures: int = 0


@dataclass
class UoneIntegration:
    links: dict[str, _Link] = field(default_factory=dict)

    async def setup(self, ctx: IntegrationContext) -> None:
        for device in ctx.devices():
            if device.did is None:
                continue
            secret = await ctx.device_secret(device.did)
            if secret is None:
                ctx.log.warning("no pinned key for %s; re-provision it", device.id)
                ctx.set_available(device.id, False)
                continue
            link = _Link(device.id, device.did, device.mac, secret["host"], int(secret["port"]),
                         base64.b64decode(secret["pin"]))
            self.links[device.id] = link
            ctx.set_available(device.id, False)
            ctx.create_task(self._keep(ctx, link), f"link-{device.did}")

    async def unload(self, ctx: IntegrationContext) -> None:
        for link in self.links.values():
            if link.connection is not None:
                await link.connection.close()
            ctx.set_available(link.device_id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        link = self.links.get(device.id)
        if link is None or link.connection is None or not link.connection.connected:
            raise DeviceUnavailable(f"{device.name} is not connected")
        return await link.connection.command(command, params)

    async def adopt(self, ctx: IntegrationContext, *, did: str, mac: str | None, host: str,
                    port: int, txt: dict[str, str], public_key: bytes, name: str) -> Device:
        """First contact on the LAN: pinned TLS + re-attestation, then register the device."""
        device_id = f"uone.{did}"
        link = _Link(device_id, did, mac, host, port, public_key)
        conn = self._connection(ctx, link, txt.get("did"), txt.get("mac"))
        await conn.open()  # raises LanError: nothing registered, nothing stored
        link.connection = conn
        link.attestations += 1
        try:
            await ctx.store_device_secret(did, {"host": host, "port": port,
                                                "pin": base64.b64encode(public_key).decode()})
            device = ctx.register_device(Device(
                id=device_id, name=name, integration=ctx.name, did=did, mac=mac,
                model=str(conn.hello.get("model") or txt.get("model") or "Uone device"),
                manufacturer="Uone", transport="lan", commands=COMMANDS,
                attributes=ATTRIBUTES))
        except BaseException:
            await conn.close()
            await ctx.forget_device_secret(did)
            raise
        self.links[device_id] = link
        ctx.set_available(device_id, True)
        ctx.create_task(self._keep(ctx, link), f"link-{did}")
        return device

    def _connection(self, ctx: IntegrationContext, link: _Link, adv_did: str | None,
                    adv_mac: str | None) -> LanConnection:
        def on_state(state: dict[str, Any]) -> None:
            values = {k: v for k, v in state.items() if k in ATTRIBUTES}
            if values and ctx.device(link.device_id) is not None:
                ctx.set_state(link.device_id, values)

        return LanConnection(link.host, link.port, pin=link.pin, hub_id=ctx.hub_id,
                             verify=ctx.verify_attestation, advertised_did=adv_did or link.did,
                             advertised_mac=adv_mac or link.mac, on_state=on_state)

    async def _keep(self, ctx: IntegrationContext, link: _Link) -> None:
        """Keep the device connected; re-attest at every reconnection, back off on failure."""
        delay = RECONNECT_MIN
        while True:
            if link.connection is None or not link.connection.connected:
                conn = self._connection(ctx, link, None, None)
                try:
                    await conn.open()
                except LanError as exc:
                    link.failures += 1
                    ctx.set_available(link.device_id, False)
                    if link.failures == 1 or exc.code == "attestation_failed":
                        ctx.log.warning("%s: %s", link.device_id, exc)
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, RECONNECT_MAX)
                    continue
                link.connection = conn
                link.attestations += 1
                if link.failures:
                    ctx.log.info("%s: reconnected and re-attested", link.device_id)
                link.failures = 0
                delay = RECONNECT_MIN
            ctx.set_available(link.device_id, True)
            await link.connection.wait_closed()
            ctx.set_available(link.device_id, False)
            link.connection = None
