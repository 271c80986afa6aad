"""The broker connection: settings from config, TLS, a persistent session, resubscription,
and reconnection through the hub's ReconnectLoop (capped, jittered backoff; longer after the
broker refused our credentials). aiomqtt (paho underneath) is the MQTT client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hub.facade import (
    BackoffPolicy,
    DeviceUnavailable,
    EgressDenied,
    IntegrationContext,
    ReconnectLoop,
    ReconnectState,
    mqtt_client_class,
)

from .thirdparty import tune_paho

AUTH_REASONS = frozenset({4, 5, 134, 135, 138})  # bad user/password, not authorized, banned
AUTH_FLOOR = 30.0
STABLE_AFTER = 60.0
EXTERNAL_PURPOSE = "external_broker"  # the consent that lets an off-LAN broker through


class SettingsError(ValueError):
    """`integrations.mqtt` cannot be used as written; names the key."""


class MissingSecret(LookupError):
    """`password_secret` names no entry of the vault."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password_secret: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_id: str | None = None
    prefix: str = "homeassistant"
    keepalive: int = 60
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    birth: bool = True

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Settings:
        url = cfg.get("broker_url")
        if not isinstance(url, str):
            raise SettingsError("integrations.mqtt.broker_url is required "
                                "(mqtt://host:1883 or mqtts://host:8883)")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SettingsError(f"integrations.mqtt.broker_url: expected mqtt://host[:port] or "
                                f"mqtts://host[:port], got {url!r}")
        if parts.username or parts.password:
            raise SettingsError("integrations.mqtt.broker_url: no credentials in the URL; use "
                                "username and password_secret (the password lives in the vault)")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise SettingsError(f"integrations.mqtt.broker_url: {exc}") from None
        if (cfg.get("client_cert") is None) != (cfg.get("client_key") is None):
            raise SettingsError("integrations.mqtt: client_cert and client_key go together")
        if cfg.get("password_secret") and not cfg.get("username"):
            raise SettingsError("integrations.mqtt.password_secret needs a username")
        return cls(
            host=parts.hostname, port=port, tls=tls, username=cfg.get("username"),
            password_secret=cfg.get("password_secret"), ca_file=cfg.get("ca_file"),
            client_cert=cfg.get("client_cert"), client_key=cfg.get("client_key"),
            client_id=cfg.get("client_id"),
            prefix=cfg.get("discovery_prefix", "homeassistant"),
            keepalive=int(cfg.get("keepalive", 60)),
            backoff_initial=float(cfg.get("backoff_initial", 1.0)),
            backoff_max=float(cfg.get("backoff_max", 60.0)),
            birth=bool(cfg.get("birth_message", True)),
        )


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verified TLS (configured CA or the system store, hostname checked). Blocking: thread."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.client_cert and settings.client_key:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


def is_auth_error(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value in AUTH_REASONS


class Connection:
    """Keeps one session with the broker; hands every message to `on_message`."""

    def __init__(self, ctx: IntegrationContext, settings: Settings,
                 on_message: Callable[[str, bytes], None],
                 on_connected: Callable[[bool], None],
                 topics: Callable[[], list[str]]) -> None:
        self.ctx = ctx
        self.settings = settings
        self._on_message = on_message
        self._on_connected = on_connected
        self._topics = topics
        self.client: Any = None
        self.state = "stopped"  # connecting | connected | waiting | stopped
        self.loop: ReconnectLoop | None = None
        self._tls: ssl.SSLContext | None = None
        self._pending: dict[str, bool] = {}  # topic -> subscribe (True) / unsubscribe
        self.subscribed: set[str] = set()  # acknowledged by the broker
        self._wake = asyncio.Event()
        self._consent_withdrawn = asyncio.Event()  # check the egress again while serving
        # why the last attempt failed, in the owner's terms: "auth" (the broker refused the
        # credentials), "consent" (off the LAN without external_broker), "secret" (no such
        # vault entry), "network" (anything else); None while connected
        self.failure: str | None = None

    @property
    def identifier(self) -> str:
        return self.settings.client_id or f"uone-hub-{self.ctx.hub_id[:12]}"

    def subscribe(self, topic: str) -> None:
        self._pending[topic] = True
        self._wake.set()

    def unsubscribe(self, topic: str) -> None:
        self._pending[topic] = False
        self._wake.set()

    async def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False
                      ) -> None:
        client = self.client
        if client is None:
            raise DeviceUnavailable("the MQTT broker is not connected")
        import aiomqtt

        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise DeviceUnavailable(f"MQTT publish failed: {exc}") from None

    def start(self) -> None:
        """Keep a session with the broker (hub.facade.ReconnectLoop: capped backoff with
        jitter, longer after the broker refused our credentials)."""
        s = self.settings
        self.loop = ReconnectLoop(
            f"MQTT broker {s.host}:{s.port}", self._session, clock=self.ctx.clock,
            policy=BackoffPolicy(initial=s.backoff_initial, maximum=s.backoff_max,
                                 auth_failure_delay=min(AUTH_FLOOR, s.backoff_max)),
            is_auth_error=is_auth_error, log=self.ctx.log, healthy_after=STABLE_AFTER,
            on_state=self._state_changed)
        self.loop.start()

    async def stop(self) -> None:
        if self.loop is not None:
            await self.loop.stop()

    @property
    def last_error(self) -> str | None:
        return self.loop.last_error if self.loop is not None else None

    @property
    def connects(self) -> int:
        return self.loop.connects if self.loop is not None else 0

    def _state_changed(self, state: ReconnectState) -> None:
        self.state = state.value
        if state is ReconnectState.CONNECTED:
            self.failure = None

    def consent_changed(self, allowed: bool) -> None:
        """The owner granted or withdrew external_broker. Withdrawn: a session that is up
        checks the egress again and ends if only that consent let it through (the devices
        go unavailable). Granted: a wait after a refusal is cut short."""
        if allowed:
            if self.loop is not None and self.failure == "consent":
                self.loop.wake()
            return
        self._consent_withdrawn.set()

    async def _session(self) -> None:
        """One connection: connect, subscribe, serve until it ends (raises why)."""
        try:
            await self._connect_and_serve()
        except Exception as exc:
            self.failure = ("auth" if is_auth_error(exc) else
                            "consent" if isinstance(exc, EgressDenied) else
                            "secret" if isinstance(exc, MissingSecret) else "network")
            raise

    async def _connect_and_serve(self) -> None:
        import aiomqtt

        try:
            self._consent_withdrawn.clear()  # a withdrawal from now on is checked again
            await self.ctx.check_egress(self.settings.host, EXTERNAL_PURPOSE)
            if self.settings.tls and self._tls is None:
                self._tls = await asyncio.to_thread(tls_context, self.settings)
            password = None
            if self.settings.password_secret:
                password = await self.ctx.named_secret(self.settings.password_secret)
                if password is None:
                    raise MissingSecret(f"the vault has no secret "
                                      f"{self.settings.password_secret!r} "
                                      "(integrations.mqtt.password_secret)")
            client = mqtt_client_class()(
                self.settings.host, self.settings.port, username=self.settings.username,
                password=password, identifier=self.identifier, clean_session=False,
                keepalive=self.settings.keepalive, tls_context=self._tls, timeout=10.0,
                protocol=aiomqtt.ProtocolVersion.V311, queue_type=_direct_queue(self._deliver))
            async with client:
                tune_paho(client, self._handle)
                await self._serve(client)
        finally:
            if self.client is not None:
                self.client = None
                self._on_connected(False)

    async def _serve(self, client: Any) -> None:
        prefix = self.settings.prefix
        self._pending.clear()
        self.subscribed.clear()
        topics = [f"{prefix}/+/+/config", f"{prefix}/+/+/+/config", *self._topics()]
        for i in range(0, len(topics), 200):
            await client.subscribe([(t, 1) for t in topics[i:i + 200]])
        self.subscribed.update(topics)
        if self.settings.birth:
            await client.publish(f"{prefix}/status", "online", qos=1)
        self.client = client
        assert self.loop is not None
        self.loop.connected()
        self._on_connected(True)
        subscriber = asyncio.create_task(self._subscriptions(client), name="mqtt-subscribe")
        egress = asyncio.create_task(self._egress_watch(), name="mqtt-egress")
        # messages go straight to on_message (_DirectQueue): this only waits for the end
        ended = asyncio.ensure_future(anext(aiter(client.messages)))
        try:
            await asyncio.wait((ended, subscriber, egress), return_when=asyncio.FIRST_COMPLETED)
            if egress.done():
                egress.result()  # EgressDenied: the consent that let it through is withdrawn
            if subscriber.done():
                subscriber.result()  # a failed SUBSCRIBE: reconnect
            ended.result()  # MqttError: disconnected
            raise OSError("the broker closed the connection")
        finally:
            for task in (subscriber, egress, ended):
                task.cancel()
            await asyncio.gather(subscriber, egress, ended, return_exceptions=True)

    async def _egress_watch(self) -> None:
        """Raise EgressDenied once a consent withdrawal leaves the broker out of reach."""
        while True:
            await self._consent_withdrawn.wait()
            self._consent_withdrawn.clear()
            await self.ctx.check_egress(self.settings.host, EXTERNAL_PURPOSE)

    def _deliver(self, message: Any) -> None:
        """An aiomqtt Message (when tune_paho could not reach paho)."""
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else (
                bytes(payload) if isinstance(payload, bytearray) else str(payload).encode())
        self._handle(message.topic.value, payload)

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            self._on_message(topic, payload)
        except Exception:  # raising into paho would end the connection
            self.ctx.log.exception("MQTT message on %s could not be handled", topic[:120])

    async def _subscriptions(self, client: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            subs = [(t, 1) for t, on in pending.items() if on]
            unsubs = [t for t, on in pending.items() if not on]
            for i in range(0, len(subs), 200):
                await client.subscribe(subs[i:i + 200])
                self.subscribed.update(t for t, _ in subs[i:i + 200])
            if unsubs:
                await client.unsubscribe(unsubs)
                self.subscribed.difference_update(unsubs)


class _DirectQueue(asyncio.Queue[Any]):
    """aiomqtt's incoming "queue" that hands each message on as paho decodes it.

    aiomqtt queues every message and its iterator takes it out with a new task and an
    asyncio.wait per message: several loop iterations and ~40 µs each. Handling it right in
    the socket's read callback costs none of that; the bridge never blocks or awaits."""

    def deliver(self, item: Any) -> None:
        raise NotImplementedError  # see _direct_queue

    def put_nowait(self, item: Any) -> None:
        self.deliver(item)


def _direct_queue(deliver: Callable[[Any], None]) -> type[_DirectQueue]:
    """A _DirectQueue class for one session (aiomqtt takes a class and makes it itself)."""

    class Queue(_DirectQueue):
        def deliver(self, item: Any) -> None:
            deliver(item)

    return Queue
