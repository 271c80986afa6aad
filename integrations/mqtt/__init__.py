"""MQTT devices announced with the Home Assistant discovery convention: Zigbee2MQTT, Tasmota,
ESPHome (MQTT mode), OpenMQTTGateway, rtl_433, Valetudo... on the home's broker.

The hub subscribes to `<discovery_prefix>/#/config`, groups the announced entities into
devices (listed in /api/discovered with source `mqtt`), and once the owner adopts one, its
states become hub state and its commands MQTT messages. Tasmota's own discovery
(`tasmota/discovery/...`, what standard builds publish) is read on the same connection by
tasmota.py with hatasmota. See docs/mqtt.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hub.facade import (
    Device,
    DeviceUnavailable,
    DiscoveredDevice,
    IntegrationContext,
    ValidationError,
)
from integrations.mqtt.bridge import Bridge
from integrations.mqtt.connection import (
    EXTERNAL_PURPOSE,
    Connection,
    Settings,
    SettingsError,
)
from integrations.mqtt.entities import CommandError
from integrations.mqtt.tasmota import DEFAULT_PREFIX, Tasmota
from integrations.mqtt.templates import TemplateError


def create() -> MqttIntegration:
    return MqttIntegration()


@dataclass
class MqttIntegration:
    bridge: Bridge | None = None
    connection: Connection | None = None
    settings: Settings | None = field(default=None)
    tasmota: Tasmota | None = None  # Tasmota's native discovery (tasmota_discovery)

    async def setup(self, ctx: IntegrationContext) -> None:
        try:
            self.settings = Settings.from_config(ctx.config)
        except SettingsError as exc:
            ctx.log.error("%s", exc)
            raise
        cfg = ctx.config
        self.connection = Connection(ctx, self.settings, self._on_message, self._on_connected,
                                     self._topics)
        self.bridge = Bridge(ctx, self.settings.prefix,
                             max_payload=int(cfg.get("max_payload", 64 * 1024)),
                             max_rate=float(cfg.get("max_messages_per_device", 200)),
                             subscribe=self.connection.subscribe,
                             unsubscribe=self.connection.unsubscribe)
        ctx.on_unload(self.bridge.close)
        for device in ctx.devices():  # adopted before: unavailable until the broker says so
            ctx.set_available(device.id, False)
        ctx.on_adopt(self._adopt)
        ctx.on_consent_changed(EXTERNAL_PURPOSE, self.connection.consent_changed)
        if cfg.get("tasmota_discovery", True):
            self.tasmota = Tasmota(ctx, cfg.get("tasmota_discovery_prefix", DEFAULT_PREFIX),
                                   self.connection, max_payload=self.bridge.max_payload,
                                   max_rate=self.bridge.max_rate)
            await self.tasmota.start()
        self.connection.start()
        ctx.on_unload(self.connection.stop)
        if self.tasmota is not None:
            ctx.on_unload(self.tasmota.stop)

    async def unload(self, ctx: IntegrationContext) -> None:
        for device in ctx.devices():
            ctx.set_available(device.id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        assert self.bridge is not None and self.connection is not None
        if self.connection.client is None:
            raise DeviceUnavailable("the MQTT broker is not connected")
        if self.tasmota is not None and self.tasmota.owns(device.id):
            try:
                sent = await self.tasmota.command(device.id, command, params)
            except CommandError as exc:
                raise ValidationError(exc.field, str(exc)) from None
            return {"published": [{"topic": t, "payload": p} for t, p in sent]}
        try:
            messages = self.bridge.command(device.id, command, params)
        except CommandError as exc:
            raise ValidationError(exc.field, str(exc)) from None
        except TemplateError as exc:
            raise DeviceUnavailable(f"the entity's command template fails: {exc}") from None
        for message in messages:
            await self.connection.publish(message.topic, message.payload, message.qos,
                                          message.retain)
        return {"published": [{"topic": m.topic, "payload": m.payload} for m in messages]}

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: stop recording it and drop the values held for it (it stays
        announced on the broker, so it is offered for adoption again)."""
        if self.bridge is not None:
            self.bridge.forget(device.id)
        if self.tasmota is not None:
            self.tasmota.forget(device.id)

    # what the bridge and the connection call

    def _on_message(self, topic: str, payload: bytes) -> None:
        assert self.bridge is not None
        if self.tasmota is not None and self.tasmota.on_message(topic, payload):
            return
        self.bridge.on_message(topic, payload)

    def _on_connected(self, connected: bool) -> None:
        assert self.bridge is not None
        self.bridge.set_connected(connected)
        if self.tasmota is not None:
            self.tasmota.set_connected(connected)

    def _topics(self) -> list[str]:
        assert self.bridge is not None
        tasmota = self.tasmota.broker.topics() if self.tasmota is not None else []
        return self.bridge.topics() + tasmota

    async def _adopt(self, item: DiscoveredDevice, name: str | None) -> Device:
        assert self.bridge is not None
        if self.tasmota is not None and item.id in self.tasmota.by_discovery_id:
            return self.tasmota.adopt(self.tasmota.by_discovery_id[item.id], name)
        key = self.bridge.by_discovery_id.get(item.id)
        if key is None:
            raise ValidationError("id", "this MQTT device is not announced any more")
        return self.bridge.adopt(key, name)

    def health(self) -> dict[str, Any]:
        """For GET /api/health (integration_details.mqtt; no personal data: no topics,
        names or values): the broker connection, why it is down, and the refusal counters.
        `problem` (the hub then reports itself degraded) while the broker is not connected."""
        assert self.bridge is not None and self.connection is not None
        conn, s = self.connection, self.connection.settings
        out: dict[str, Any] = {
            "broker": f"{'mqtts' if s.tls else 'mqtt'}://{s.host}:{s.port}",
            "state": conn.state, "connected": conn.client is not None,
            "connects": conn.connects, "last_error": conn.last_error,
            "devices": len(self.bridge.devices),
            "adopted": sum(1 for d in self.bridge.devices.values() if d.device_id),
            "refusals": self.bridge.stats.refusals(),
        }
        if self.tasmota is not None:
            t = self.tasmota.stats
            out["tasmota"] = {"devices": t.devices, "refused": t.refused,
                              "oversize": t.oversize, "flood_dropped": t.flood_dropped}
        if conn.client is None:
            out["problem"] = f"MQTT broker {s.host}:{s.port} not connected: " + _why(conn)
        return out

    def status(self) -> dict[str, Any]:
        """Connection state and refusal counts (for diagnostics and tests)."""
        assert self.bridge is not None and self.connection is not None
        return {"state": self.connection.state, "last_error": self.connection.last_error,
                "connects": self.connection.connects, "devices": len(self.bridge.devices),
                "stats": self.bridge.stats.as_dict(),
                **({"tasmota": asdict(self.tasmota.stats)} if self.tasmota else {})}


def _why(conn: Connection) -> str:
    """Why the broker is not connected, in the owner's terms: what to do about it."""
    s = conn.settings
    error = conn.last_error
    if conn.failure == "auth":
        return ("the broker refused the credentials (integrations.mqtt.username and the "
                f"password in the vault under {s.password_secret!r}, or the client "
                f"certificate): {error}")
    if conn.failure == "consent":
        return (f"it is outside the local network and the owner has not given the "
                f"{EXTERNAL_PURPOSE} consent (privacy center)")
    if conn.failure == "secret":
        return f"the vault has no secret {s.password_secret!r} (integrations.mqtt." \
               "password_secret)"
    return error or "connecting"
