"""ESPHome devices over the native API (aioesphomeapi), and ESPHome Bluetooth proxies.

Discovery: `_esphomelib._tcp` through the hub's one zeroconf; the TXT record gives the MAC,
firmware version, board and whether the API is encrypted. Adoption connects once to read the
device and its entities (with the encryption key when it needs one: checked by that
connection, then kept in the vault only), registers the hub device (`esphome.<mac>`) and
keeps one connection up (integrations/esphome/connection.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import aioesphomeapi as api

from hub.facade import (
    Device,
    DeviceUnavailable,
    DiscoveredDevice,
    DiscoveryInfo,
    IntegrationContext,
    MdnsService,
    ValidationError,
    normalize_mac,
)
from integrations.esphome.connection import CLIENT_INFO, DeviceLink, attribute_meta
from integrations.esphome.entities import EntitySet

SERVICE_TYPE = "_esphomelib._tcp.local."
ADOPT_TIMEOUT = 15.0
KEY_FIELD = "encryption_key"


def create() -> ESPHomeIntegration:
    return ESPHomeIntegration()


class KeyError_(ValidationError):
    """The encryption key given at adoption is not usable (field credentials.encryption_key)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"credentials.{KEY_FIELD}", message)


@dataclass
class ESPHomeIntegration:
    links: dict[str, DeviceLink] = field(default_factory=dict)  # device id -> link
    ctx: IntegrationContext | None = None

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        ctx.own_availability()  # availability follows the API connection
        ctx.on_mdns_service(self._on_mdns)
        ctx.on_adopt(self._adopt, credentials=(KEY_FIELD,))
        for device in ctx.devices():
            ctx.set_available(device.id, False)
            ctx.create_task(self._start_link(device), f"link-{device.id}")

    async def unload(self, ctx: IntegrationContext) -> None:
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.stop() for link in links), return_exceptions=True)
        for link in links:
            if ctx.device(link.device_id) is not None:
                ctx.set_available(link.device_id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        link = self.links.get(device.id)
        if link is None:
            raise DeviceUnavailable(f"{device.name} is not connected")
        link.command(command, params)
        return {"sent": command}

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: end its connection, drop its key and connection details."""
        link = self.links.pop(device.id, None)
        if link is not None:
            await link.stop()
        if device.mac:
            await ctx.forget_device_secret(_secret_name(device.mac))

    def health(self) -> dict[str, Any]:
        return {link.node: {"connected": link.connected, "error": link.error,
                            "conflict": link.conflict, "states": link.states}
                for link in self.links.values()}

    # -- discovery --------------------------------------------------------------------------

    def _on_mdns(self, service: MdnsService, removed: bool) -> DiscoveryInfo | None:
        if removed:
            return None
        ctx = self.ctx
        assert ctx is not None
        txt = service.txt
        mac = normalize_mac(txt.get("mac"))
        if mac is None or not service.addresses or not service.port:
            ctx.report_malformed("ESPHome mDNS service", service.name)
            return None
        needs_key = "api_encryption" in txt
        data: dict[str, Any] = {"node": service.instance, "needs_key": needs_key,
                                "board": txt.get("board"), "platform": txt.get("platform")}
        adopted = self._adopted_under(service)
        if adopted is not None and adopted.mac and adopted.mac != mac:
            data["identity_conflict"] = (
                f"{service.instance!r} now answers with MAC {mac}; the adopted device has "
                f"{adopted.mac}. Not merged: adopt it again to accept it as this device.")
        link = self.links.get(adopted.id) if adopted is not None else None
        if link is not None and adopted is not None and adopted.mac == mac:
            link.moved(list(service.addresses), service.port)  # used at the next connection
            link.seen()  # a reboot's announcement: connect now, not at the end of a backoff
        return DiscoveryInfo(
            name=txt.get("friendly_name") or service.instance, mac=mac,
            model=txt.get("board") or "ESPHome", fw=txt.get("version"),
            data={k: v for k, v in data.items() if v is not None})

    def _adopted_under(self, service: MdnsService) -> Device | None:
        """The adopted device this service's name belongs to (by the discovery, or, after
        a restart before it was heard again, by the node name adoption stored)."""
        ctx = self.ctx
        assert ctx is not None
        for item in ctx.discovered():
            if item.service_type == SERVICE_TYPE and item.device_id and (
                    item.data.get("node") == service.instance):
                return ctx.device(item.device_id)
        for link in self.links.values():
            if link.node == service.instance:
                return ctx.device(link.device_id)
        return None

    # -- adoption ---------------------------------------------------------------------------

    async def _adopt(self, item: DiscoveredDevice, name: str | None,
                     credentials: dict[str, str]) -> Device:
        ctx = self.ctx
        assert ctx is not None
        key = _check_key(credentials.get(KEY_FIELD))
        node = str(item.data.get("node") or item.name)
        if item.data.get("needs_key") and key is None:
            ctx.annotate_discovered(item.id, key_error="needs its encryption key")
            raise KeyError_("this device encrypts its API: give its encryption key "
                            "(api: encryption: key: in its YAML)")
        info, infos = await self._probe(item, node, key)
        mac = normalize_mac(info.mac_address)
        if mac is None:
            raise DeviceUnavailable(f"{node} reported no usable MAC address")
        device_id = "esphome." + mac.replace(":", "")
        existing = ctx.device(device_id)
        entities = EntitySet.build(infos, lambda what: ctx.report_malformed("ESPHome", what))
        node = info.name or node
        # the key and how to reach the device, so it reconnects at once after a restart
        await ctx.store_device_secret(_secret_name(mac), {
            KEY_FIELD: key, "node": node, "addresses": list(item.addresses),
            "port": item.port or 6053}, device_id=device_id)
        device = ctx.register_device(Device(
            id=device_id, name=name or (existing.name if existing else
                                        (info.friendly_name or item.name)),
            integration=ctx.name, mac=mac, model=info.model or item.model,
            manufacturer=info.manufacturer or "ESPHome", fw_version=info.esphome_version,
            transport="lan", area=existing.area if existing else (
                info.suggested_area or None),
            attributes=tuple(entities.attributes()), commands=entities.command_specs(),
            events=entities.events(), attribute_meta=attribute_meta(entities.attributes())))
        ctx.annotate_discovered(item.id, key_error=None, identity_conflict=None)
        old = self.links.pop(device_id, None)
        if old is not None:
            await old.stop()
        self.links[device_id] = link = DeviceLink(
            ctx, device_id, node, mac, list(item.addresses), item.port or 6053, key, item.id)
        ctx.create_task(link.start(), f"link-{device_id}")
        return device

    async def _probe(self, item: DiscoveredDevice, node: str, key: str | None
                     ) -> tuple[Any, list[Any]]:
        """Connect once: the device's info and entities, or a clear refusal."""
        ctx = self.ctx
        assert ctx is not None
        client = api.APIClient(item.address or node, item.port or 6053, None,
                               client_info=CLIENT_INFO, noise_psk=key,
                               addresses=list(item.addresses))
        try:
            async with asyncio.timeout(float(ctx.config.get("connect_timeout", ADOPT_TIMEOUT))):
                await client.connect(login=True)
                info = await client.device_info()
                infos, _ = await client.list_entities_services()
        except api.InvalidEncryptionKeyAPIError:
            ctx.annotate_discovered(item.id, key_error="the device refused this key")
            raise KeyError_("the device refused this encryption key") from None
        except api.RequiresEncryptionAPIError:
            ctx.annotate_discovered(item.id, needs_key=True,
                                    key_error="needs its encryption key")
            raise KeyError_("this device encrypts its API: give its encryption key") from None
        except api.EncryptionPlaintextAPIError:
            raise KeyError_("this device does not use encryption: adopt it without "
                            "a key") from None
        except (api.APIConnectionError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)[:200]
            raise DeviceUnavailable(f"cannot reach {node} at "
                                    f"{item.address}:{item.port}: {reason}") from None
        finally:
            await client.disconnect()
        return info, infos

    async def _start_link(self, device: Device) -> None:
        """After a restart: connect with what adoption stored (the mDNS record, once heard
        again, updates the address)."""
        ctx = self.ctx
        assert ctx is not None and device.mac is not None
        stored = await ctx.device_secret(_secret_name(device.mac)) or {}
        item = next((d for d in ctx.discovered() if d.device_id == device.id), None)
        node = str(stored.get("node") or (item.data.get("node") if item else None)
                   or device.name)
        addresses = list(stored.get("addresses") or (item.addresses if item else ()))
        port = int(stored.get("port") or (item.port if item else None) or 6053)
        link = DeviceLink(ctx, device.id, node, device.mac, addresses, port,
                          stored.get(KEY_FIELD), item.id if item else None)
        self.links[device.id] = link
        await link.start()


def _check_key(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 32:
        raise KeyError_("expected the device's 32-byte key in base64 (44 characters, as in "
                        "its YAML)")
    return raw.strip()


def _secret_name(mac: str) -> str:
    return "key:" + mac.upper()
