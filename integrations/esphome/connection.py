"""One long-lived native-API connection per adopted ESPHome device.

aioesphomeapi's `ReconnectLogic` keeps it up (capped backoff; an mDNS announcement of the
device on the hub's one zeroconf cuts the wait short), and keeping it up is what stops a
device with `api: reboot_timeout` from rebooting. On every connection: device info (the MAC
must be the adopted one, else the device is flagged and not used), the entity list (a new
firmware's entities update the hub device in place, same id, so history and automations
stay), the state stream, and the Bluetooth proxy stream when the device is one. A loss is
logged once and the recovery once; availability follows the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aioesphomeapi as api
from aioesphomeapi.reconnect_logic import ReconnectLogic

from hub.facade import AttributeMeta, DeviceUnavailable, IntegrationContext, normalize_mac
from integrations.esphome.entities import Entity, EntityError, EntitySet
from integrations.esphome.proxy import ProxySource
from integrations.esphome.thirdparty import SlowOnBadMacReconnectLogic

CLIENT_INFO = "Uone Hub"
AUTH_ERRORS = (api.InvalidEncryptionKeyAPIError, api.RequiresEncryptionAPIError,
               api.EncryptionPlaintextAPIError, api.InvalidAuthAPIError)


class DeviceLink:
    """The connection to one adopted device and what flows over it."""

    def __init__(self, ctx: IntegrationContext, device_id: str, node: str, mac: str,
                 addresses: list[str], port: int, key: str | None,
                 discovery_id: str | None) -> None:
        self.ctx = ctx
        self.device_id = device_id
        self.node = node  # the device's node name (its mDNS host name)
        self.mac = mac
        self.addresses = addresses
        self.port = port
        self.key = key
        self.discovery_id = discovery_id
        self.entities = EntitySet()
        self.client: api.APIClient | None = None
        self.connected = False
        self.conflict: str | None = None  # another device answers under this name
        self.error: str | None = None
        self.states = 0  # state updates received (bench, health)
        self.meta: dict[str, dict[str, Any]] = {}  # attribute -> unit, device_class, range
        self._logic: ReconnectLogic | None = None
        self._loss_logged = False
        self._ever_connected = False
        self._unsubs: list[Callable[[], None]] = []
        self._pending: dict[str, Any] = {}
        self._flush_scheduled = False
        self._proxy: Any = None  # BleSource once the device proved to be a proxy

    async def start(self) -> None:
        zc = await self.ctx.zeroconf(within=5.0)
        self.client = api.APIClient(
            f"{self.node}.local", self.port, None, client_info=CLIENT_INFO,
            noise_psk=self.key, addresses=list(self.addresses), zeroconf_instance=zc,
            expected_name=None, expected_mac=self.mac.replace(":", "") if self.key else None)
        # without the hub's zeroconf nobody may open one of its own: no mDNS wake then
        self._logic = SlowOnBadMacReconnectLogic(
            client=self.client, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect, on_connect_error=self._on_connect_error,
            zeroconf_instance=zc, name=self.node, zeroconf_wake=zc is not None)
        await self._logic.start()

    async def stop(self) -> None:
        if self._logic is not None:
            await self._logic.stop()
            self._logic = None
        self._drop_subscriptions()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.disconnect()
        if self._proxy is not None:
            self._proxy.lost("integration stopped")
        self.connected = False

    def moved(self, addresses: list[str], port: int | None) -> None:
        """The device's mDNS record names other addresses: use them from the next attempt
        (and remember them for the next start)."""
        if addresses == self.addresses and (port is None or port == self.port):
            return
        self.addresses, self.port = addresses, port or self.port
        if self.client is not None:
            self.client.add_addresses(addresses)  # tried at the next attempt, at once
        self.ctx.create_task(self._remember(), f"remember-{self.node}")

    async def _remember(self) -> None:
        name = "key:" + self.mac.upper()
        stored = await self.ctx.device_secret(name) or {}
        await self.ctx.store_device_secret(name, {**stored, "addresses": self.addresses,
                                                  "port": self.port},
                                           device_id=self.device_id)

    def command(self, name: str, params: dict[str, Any]) -> None:
        if self.conflict:
            raise DeviceUnavailable(self.conflict)
        if not self.connected or self.client is None:
            raise DeviceUnavailable(f"{self.node} is not connected"
                                    + (f" ({self.error})" if self.error else ""))
        entity = self.entities.for_command(name, params)
        try:
            entity.command(self.client, name, {k: v for k, v in params.items()
                                               if k != "entity"})
        except EntityError as exc:
            raise DeviceUnavailable(str(exc)) from None
        except api.APIConnectionError as exc:
            raise DeviceUnavailable(f"{self.node}: {exc}") from None

    # -- connection callbacks (ReconnectLogic) ----------------------------------------------

    async def _on_connect(self) -> None:
        client = self.client
        assert client is not None
        if self.ctx.device(self.device_id) is None:  # removed by the owner meanwhile
            self.ctx.create_task(self.stop(), f"removed-{self.node}")
            return
        info = await client.device_info()
        got = normalize_mac(info.mac_address)
        if got != self.mac:
            await self._flag_conflict(got)
            return
        infos, _services = await client.list_entities_services()
        self.entities = EntitySet.build(infos, self._malformed)
        self._update_device(info)
        self._drop_subscriptions()
        client.subscribe_states(self._on_state)
        version = client.api_version or api.APIVersion(1, 0)
        flags = info.bluetooth_proxy_feature_flags_compat(version)
        if flags & api.BluetoothProxyFeature.PASSIVE_SCAN:
            self._start_proxy(client)
        self.connected, self.error = True, None
        self.ctx.set_available(self.device_id, True)
        self._annotate(key_error=None, connect_error=None)
        if self.conflict is not None:  # the adopted board answers again (encrypted path)
            self.ctx.log.info("%s answers with its adopted MAC again", self.node)
            self.conflict = None
            self._annotate(identity_conflict=None)
        if self._loss_logged:
            self.ctx.log.info("%s is connected again", self.node)
            self._loss_logged = False
        elif not self._ever_connected:
            self.ctx.log.info("%s connected (%d entities, ESPHome %s)", self.node,
                              len(self.entities.by_key), info.esphome_version)
        self._ever_connected = True

    async def _on_disconnect(self, expected: bool) -> None:
        self.connected = False
        self._drop_subscriptions()
        self._pending.clear()
        if self._proxy is not None:
            self._proxy.lost("its proxy's connection ended")
        if self.ctx.device(self.device_id) is not None:
            self.ctx.set_available(self.device_id, False)
        if not expected and not self._loss_logged:
            self.ctx.log.warning("%s disconnected; reconnecting with backoff", self.node)
            self._loss_logged = True

    async def _on_connect_error(self, err: Exception) -> None:
        if isinstance(err, api.BadMACAddressAPIError):
            # another board (same name, same key) answers where this one was: flagged like
            # the mDNS path does, and retried on the longest backoff (thirdparty.py), so
            # the adopted board is taken back when it returns
            self._identity_conflict(normalize_mac(err.received_mac) or err.received_mac)
            return
        if isinstance(err, AUTH_ERRORS):
            self.error = _auth_message(err)
            self._annotate(key_error=self.error)
        else:
            self.error = f"{type(err).__name__}: {err}"[:200]
        if not self._loss_logged:
            self.ctx.log.warning("%s: cannot connect (%s); retrying with backoff",
                                 self.node, self.error)
            self._loss_logged = True

    # -- state -------------------------------------------------------------------------------

    def _on_state(self, state: Any) -> None:
        """Each state update: mapped, and only changes handed to the hub, once per loop turn
        (a flood of updates becomes one state write per device per turn)."""
        entity = self.entities.by_key.get(state.key)
        if entity is None:
            self._malformed(f"state for unknown entity key {state.key}")
            return
        self.states += 1
        if isinstance(state, api.Event):
            if state.event_type in entity.events():
                self.ctx.fire_event(self.device_id, state.event_type, {"entity": entity.key})
            else:
                self._malformed(f"{entity.key}: undeclared event type")
            return
        try:
            values = entity.state(state)
        except Exception as exc:  # a state we cannot read is counted, never raised
            self._malformed(f"{entity.key}: {type(exc).__name__}")
            return
        self._pending.update(values)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        values, self._pending = self._pending, {}
        if values and self.connected:
            self.ctx.set_state(self.device_id, values)

    # -- helpers ---------------------------------------------------------------------------

    def _update_device(self, info: Any) -> None:
        device = self.ctx.device(self.device_id)
        if device is None:
            return
        attrs = self.entities.attributes()
        self.ctx.register_device(replace(
            device, model=info.model or device.model,
            manufacturer=info.manufacturer or device.manufacturer or "ESPHome",
            fw_version=info.esphome_version or device.fw_version,
            attributes=tuple(attrs), commands=self.entities.command_specs(),
            events=self.entities.events(), attribute_meta=attribute_meta(attrs)))
        self.meta = attrs
        if self.entities.unsupported:
            self._annotate(unsupported_entities=self.entities.unsupported)

    def _start_proxy(self, client: api.APIClient) -> None:
        if self._proxy is None:
            self._proxy = self.ctx.add_ble_source(self.node)
        proxy = ProxySource(self.ctx, self._proxy)
        self._unsubs.append(client.subscribe_bluetooth_le_raw_advertisements(
            proxy.on_raw_advertisements))
        self._unsubs.append(client.subscribe_bluetooth_connections_free(
            proxy.on_connections_free))
        self._proxy.connected()

    def _drop_subscriptions(self) -> None:
        for unsub in self._unsubs:
            with contextlib.suppress(Exception):
                unsub()
        self._unsubs.clear()

    async def _flag_conflict(self, got: str | None) -> None:
        """A plaintext device answered with another MAC (its device info, after the
        connection was made): flagged, and the connection stopped for good."""
        self._identity_conflict(got, until="the owner re-adopts it")
        # stop retrying: the other device must not be taken for this one
        self.ctx.create_task(self.stop(), f"conflict-{self.node}")

    def _identity_conflict(self, got: str | None,
                           until: str = "the adopted board answers again") -> None:
        """Another board answers under this device's name: on the discovered item
        (`identity_conflict`), in health, unavailable; logged once per other MAC."""
        conflict = (f"another device answers as {self.node!r}: MAC {got}, adopted "
                    f"{self.mac}; not used until {until}")
        if conflict != self.conflict:
            self.ctx.log.warning("%s", conflict)
        self.conflict = conflict
        self._annotate(identity_conflict=conflict)
        if self.ctx.device(self.device_id) is not None:
            self.ctx.set_available(self.device_id, False)

    def seen(self) -> None:
        """The device announced itself (mDNS, its adopted MAC): try now rather than at the
        end of the backoff (without the hub's zeroconf aioesphomeapi cannot hear it)."""
        if self._logic is not None:
            self._logic.notify_device_seen()

    def _annotate(self, **data: Any) -> None:
        if self.discovery_id is not None:
            self.ctx.annotate_discovered(self.discovery_id, **data)

    def _malformed(self, what: str) -> None:
        self.ctx.report_malformed("ESPHome data", f"{self.node}: {what}")


def attribute_meta(attrs: dict[str, dict[str, Any]]) -> dict[str, AttributeMeta]:
    """The hub's attribute metadata from what the entities announced (unit, device class,
    state class, range, a select's options); precision stays in the discovered item."""
    out = {}
    for name, raw in attrs.items():
        meta = AttributeMeta.from_json(raw)
        if meta.to_json():
            out[name] = meta
    return out


def _auth_message(err: Exception) -> str:
    if isinstance(err, api.RequiresEncryptionAPIError):
        return "the device encrypts its API: give its encryption key"
    if isinstance(err, api.EncryptionPlaintextAPIError):
        return "the device does not use encryption: adopt it again without a key"
    if isinstance(err, api.InvalidAuthAPIError):
        return "the device asks for an API password (deprecated); use an encryption key"
    return "the device refused the encryption key"


__all__ = ["DeviceLink", "Entity"]
