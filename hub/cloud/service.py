"""`hub.cloud`: opt-in, end-to-end encrypted sync and remote access over MQTT.

Off unless the broker is configured AND the owner consents to `cloud_sync`; without both,
nothing subscribes, nothing is queued and no socket is opened. Consent withdrawn = opting out:
the connection stops at once, the hub's retained messages are cleared on the broker and the
outbox is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hub import egress
from hub.auth.principal import Role
from hub.bus import (
    AvailabilityChanged,
    DeviceEvent,
    DeviceRegistryChanged,
    Event,
    StateChanged,
)
from hub.cloud.client import (
    STABLE_AFTER,
    Backoff,
    is_auth_error,
    make_client,
    mqtt_errors,
    tls_context,
)
from hub.cloud.commands import RemoteClient, RemoteCommands
from hub.cloud.crypto import (
    Pairing,
    SyncKeys,
    command_key,
    derive_from_passphrase,
    new_key,
)
from hub.cloud.outbox import SCHEMA, Outbox
from hub.cloud.sources import (
    CLOUD_SYNC,
    REMOTE_ACCESS,
    ConsentSource,
    SecretSource,
)
from hub.cloud.topics import Topics
from hub.devices import Device
from hub.errors import EgressDenied, HubError, NotFound

if TYPE_CHECKING:
    import aiomqtt

    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.cloud.config import CloudConfig
    from hub.commands import DeviceCommands
    from hub.devices import DeviceRegistry
    from hub.egress import EgressGuard
    from hub.state import StateStore
    from hub.storage import Database

__all__ = ["SCHEMA", "AutomationsChanged", "CloudError", "CloudSync"]

_LOG = logging.getLogger(__name__)

SYNC_KEY_SECRET = "cloud/sync_key"
CLIENT_KEY_SECRET = "cloud/client/{name}"
CLEAR_TIMEOUT = 10.0


class CloudError(HubError):
    """Cloud sync cannot run as configured (missing secret, bad key...)."""

    status = 409
    code = "cloud_unavailable"


@dataclass(frozen=True, slots=True)
class AutomationsChanged(Event):
    """The automation engine's definitions changed (synced when the owner picked them)."""

    kind: ClassVar[str] = "automations_changed"
    definitions: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class _Session:
    """What an enabled sync holds in memory: keys, credentials, topics, remote clients."""

    keys: SyncKeys
    root: bytes
    topics: Topics
    password: str | None
    clients: list[RemoteClient]
    identifier: str


class CloudSync:
    """The cloud sync service. Set `consent`/`secrets` before `start()` to override the
    ones given (tests and benchmarks do)."""

    def __init__(self, config: CloudConfig, *, db: Database, bus: EventBus, clock: Clock,
                 devices: DeviceRegistry, states: StateStore, commands: DeviceCommands,
                 consent: ConsentSource, secrets: SecretSource,
                 egress: EgressGuard | None = None,
                 user_restricted: Callable[[str], bool] = lambda _user: False,
                 automations: Iterable[Any] | None = None,
                 yaml_automations: Iterable[Any] = ()) -> None:
        """`egress` decides before each connection (the privacy center's guard);
        `automations` are the engine's entries (else `yaml_automations`, the config's)."""
        self.config = config
        self.db = db
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.states = states
        self._device_commands = commands
        self.consent: ConsentSource | None = consent
        self.secrets: SecretSource | None = secrets
        self._egress = egress
        self._engine = automations
        self._yaml_automations = tuple(yaml_automations)
        self.outbox = Outbox(db, clock, self.config.outbox_limit, self.config.outbox_policy)
        # A restricted person's events and automations are not synced.
        self.user_restricted = user_restricted
        self.connected = False
        self.last_error: str | None = None
        self.last_connected: float | None = None
        self.connects = 0
        self.state = "off"
        self.commands: RemoteCommands | None = None
        self._session: _Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._aux: set[asyncio.Task[Any]] = set()
        self._undo: list[Callable[[], None]] = []
        self._unconsent: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        self._remote_allowed = False
        self._dirty_devices: set[str] = set()
        self._devices_dirty = False
        self._automations: tuple[dict[str, Any], ...] | None = None
        self._automations_signature: Any = None
        self._clear_pending = False
        self._started = False
        self._leftovers_checked = False
        self._clearing: asyncio.Task[None] | None = None
        self._halting = False  # the connection is being stopped on purpose
        self._nudge_timer: asyncio.TimerHandle | None = None
        self._optout = asyncio.Event()  # consent withdrawn: clear on the live connection, end

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        assert self.consent is not None and self.secrets is not None
        await self.outbox.load()
        self._automations = tuple(a for a in self._yaml_automations if isinstance(a, dict))
        self._unconsent = self.consent.subscribe(self._consent_changed)
        self._started = True
        await self._reconcile()

    async def stop(self) -> None:
        self._started = False
        if self._unconsent is not None:
            self._unconsent()
            self._unconsent = None
        await self._stop_connection()
        for task in list(self._aux):
            task.cancel()
        await asyncio.gather(*self._aux, return_exceptions=True)
        # What was staged before stopping commits with a last batch (flush runs the hooks).
        await self.db.flush()
        self._unsubscribe()
        self.outbox.close()
        self.state = "off"

    @property
    def enabled(self) -> bool:
        return self._session is not None

    def status(self) -> dict[str, Any]:
        """For GET /api/cloud/status: no keys, no password, no personal data."""
        consent = self.consent
        return {
            "configured": self.config.configured,
            "consent": {
                CLOUD_SYNC: bool(consent and consent.allowed(CLOUD_SYNC)),
                REMOTE_ACCESS: bool(consent and consent.allowed(REMOTE_ACCESS)),
            },
            "enabled": self.enabled,
            "state": self.state,
            "connected": self.connected,
            "broker": self.config.broker_url,
            "categories": list(self.config.categories),
            "outbox_depth": self.outbox.depth,  # flat too: the dashboard reads this one
            "outbox": {
                "depth": self.outbox.depth,
                "limit": self.outbox.limit,
                "policy": self.outbox.policy,
                "dropped": self.outbox.dropped,
            },
            "delivered": self.outbox.delivered,
            "last_delivery": self.outbox.last_delivery,
            "last_connected": self.last_connected,
            "connects": self.connects,
            "last_error": self.last_error,
            "retained_clear_pending": self._clear_pending,
            "commands": self.commands.stats() if self.commands else {"accepted": 0,
                                                                      "rejected": {}},
        }

    async def pairing_code(self, client: str | None) -> str:
        """A code for another device of the owner's: the sync key (+ its command key)."""
        session = self._session
        if session is None:
            raise CloudError("cloud sync is not enabled (configure a broker and give consent)")
        client_key = None
        if client is not None:
            if client not in self.config.remote_clients:
                raise NotFound(f"no remote client {client!r} in cloud.remote_clients")
            client_key = await self._client_key(client)
        return Pairing(session.keys.hub_id, self.config.topic_prefix, session.root, client,
                       client_key, self.config.broker_url).encode()

    def automations_changed(self, definitions: list[dict[str, Any]]) -> None:
        """For the automation engine (or publish `AutomationsChanged` on the bus)."""
        self._automations = tuple(definitions)
        self._stage_automations()

    def secrets_changed(self) -> None:
        """A named secret the config refers to was set: a sync that could not start for
        want of it (state error) tries again now rather than at the next consent change."""
        if self._started and self._session is None:
            self._spawn(self._reconcile(), "cloud-reconcile")

    # -- consent -----------------------------------------------------------------------------

    def _consent_changed(self) -> None:
        if not self._started:
            return
        assert self.consent is not None
        if self._session is not None and not self.consent.allowed(CLOUD_SYNC):
            # Opting out: stop at once, before anything else can be queued or sent. A live
            # connection stops syncing now and is used once more to clear the retained
            # messages (no new connection without consent); otherwise it is cancelled.
            self._clear_pending = True
            self._unsubscribe()
            self._optout.set()
            if self._task is not None and not self.connected:
                self._halting = True
                self._task.cancel()
        self._spawn(self._reconcile(), "cloud-reconcile")

    async def _reconcile(self) -> None:
        async with self._lock:
            assert self.consent is not None
            want = self.config.configured and self.consent.allowed(CLOUD_SYNC)
            remote = want and self.consent.allowed(REMOTE_ACCESS)
            if want and self._session is None:
                await self._enable_or_report()
            elif not want and self._session is not None:
                await self._opt_out()
            elif want and self._session is not None and self._optout.is_set():
                # withdrawn and given again before we got here: finish opting out, start anew
                await self._opt_out()
                await self._enable_or_report()
            elif want and remote != self._remote_allowed:
                await self._stop_connection()  # resubscribe with or without commands
                self._start_connection()
            if not want:
                self.state = "off" if not self.config.configured else "no_consent"
            if not want and not self._leftovers_checked:
                await self._opted_out_while_away()
            self._leftovers_checked = True

    async def _enable_or_report(self) -> None:
        try:
            await self._enable()
        except HubError as exc:
            self.state, self.last_error = "error", str(exc)
            _LOG.error("cloud sync cannot start: %s", exc)

    async def _opted_out_while_away(self) -> None:
        """Consent was withdrawn while the hub was down (or mid opt-out): finish opting out."""
        if self.outbox.depth:
            await self.outbox.drop()
        if not self.config.configured or not await self.outbox.retained_topics():
            return
        try:
            session = await self._build_session()
        except HubError as exc:
            self.last_error = str(exc)
            return
        self._start_clearing(session)

    async def _build_session(self) -> _Session:
        assert self.secrets is not None
        root = await self._sync_root()
        keys = SyncKeys.from_root(self.outbox.hub_id, root)
        topics = Topics.of(self.config.topic_prefix, keys)
        password = None
        if self.config.password_secret:
            password = await self.secrets.get(self.config.password_secret)
            if password is None:
                raise CloudError(f"the vault has no secret {self.config.password_secret!r} "
                                 "(cloud.password_secret)")
        clients = []
        for name, rc in self.config.remote_clients.items():
            clients.append(RemoteClient(name, keys.opaque("client", name), Role.parse(rc.role),
                                        command_key(await self._client_key(name)),
                                        frozenset(rc.devices)))
        identifier = self.config.client_id or f"uone-{keys.hub_topic[:20]}"
        return _Session(keys, root, topics, password, clients, identifier)

    async def _enable(self) -> None:
        session = await self._build_session()
        topics, clients = session.topics, session.clients
        self._session = session
        self.commands = RemoteCommands(
            self.db, self.clock, self._device_commands, self.outbox, topics, clients,
            self.config.command_window,
            lambda: bool(self.consent and self.consent.allowed(REMOTE_ACCESS)))
        self._clear_pending = False
        self._subscribe()
        # A full snapshot at every enable: the retained copies are current after a restart.
        self._devices_dirty = True
        self._dirty_devices.update(d.id for d in self.devices.all())
        self._stage_automations()
        self.db.nudge()
        self._start_connection()

    async def _opt_out(self) -> None:
        _LOG.info("cloud sync: consent withdrawn; disconnecting, clearing retained messages "
                  "and dropping the outbox")
        session = self._session
        self._unsubscribe()
        self._optout.set()
        if self._task is not None:  # let a live connection clear what it retained, briefly
            await asyncio.wait({self._task}, timeout=CLEAR_TIMEOUT + 2)
        await self._stop_connection()
        self._session = None
        self.commands = None
        dropped = await self.outbox.drop()
        _LOG.info("cloud sync: dropped %d waiting messages", dropped)
        if session is not None and self._clear_pending:
            self._start_clearing(session)  # not connected at opt-out: a short clean session

    # -- staging from the bus ----------------------------------------------------------------

    def _subscribe(self) -> None:
        bus = self.bus
        cats = set(self.config.categories)
        self._undo.append(bus.subscribe(DeviceRegistryChanged, self._on_registry))
        if "states" in cats:
            self._undo.append(bus.subscribe(StateChanged, self._on_state))
            self._undo.append(bus.subscribe(AvailabilityChanged, self._on_available))
        if "events" in cats:
            self._undo.append(bus.subscribe(DeviceEvent, self._on_event))
        if "automations" in cats:
            self._undo.append(bus.subscribe(
                AutomationsChanged, lambda e: self.automations_changed(list(e.definitions))))
        self._undo.append(self.outbox.before_seal(self._coalesce))

    def _unsubscribe(self) -> None:
        if self._nudge_timer is not None:
            self._nudge_timer.cancel()
            self._nudge_timer = None
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._dirty_devices.clear()
        self._devices_dirty = False

    def _synced(self, device_id: str) -> Device | None:
        device = self.devices.find(device_id)
        return None if device is None or device.restricted else device

    def _on_state(self, event: StateChanged) -> None:
        session = self._session
        if session is None or self._synced(event.device_id) is None:
            return
        self.outbox.add(session.topics.stream, session.keys.enc, {
            "type": "state", "device": event.device_id, "attribute": event.attribute,
            "value": event.new, "ts": event.ts})
        self._dirty_devices.add(event.device_id)
        self._soon()

    def _on_available(self, event: AvailabilityChanged) -> None:
        if self._session is not None and self._synced(event.device_id) is not None:
            self._dirty_devices.add(event.device_id)

    def _on_event(self, event: DeviceEvent) -> None:
        session = self._session
        if session is None or self._synced(event.device_id) is None:
            return
        if _mentions(event.data, self.user_restricted):
            return
        self.outbox.add(session.topics.stream, session.keys.enc, {
            "type": "event", "device": event.device_id, "event": event.event_type,
            "data": event.data, "ts": event.ts})
        self._soon()

    def _on_registry(self, event: DeviceRegistryChanged) -> None:
        self._devices_dirty = True
        self._dirty_devices.add(event.device_id)
        self._soon()

    def _soon(self) -> None:
        """With `max_delay`: have the storage batch commit (and so publish) within it."""
        delay = self.config.max_delay
        if delay is None or self._nudge_timer is not None:
            return
        self._nudge_timer = asyncio.get_running_loop().call_later(delay, self._nudge)

    def _nudge(self) -> None:
        self._nudge_timer = None
        self.db.nudge()

    def _automation_list(self) -> tuple[list[dict[str, Any]], Any]:
        """The automations to sync and a cheap signature that changes when they do."""
        engine = self._engine
        if engine is None:  # no engine: the YAML definitions (or what was pushed to us)
            items = [{"id": a.get("id"), "enabled": True, "definition": a}
                     for a in (self._automations or ())]
            return items, None
        entries = list(engine)
        signature = tuple((e.id, id(e.raw), e.enabled) for e in entries)
        return [{"id": e.id, "enabled": e.enabled, "definition": e.raw} for e in entries], \
            signature

    def _stage_automations(self) -> None:
        session = self._session
        if session is None or "automations" not in self.config.categories:
            return
        items, self._automations_signature = self._automation_list()
        definitions = [a for a in items if not _mentions(a, self.user_restricted)]
        body = {"type": "automations", "automations": definitions,
                "ts": self.clock.time()}
        self.outbox.add(session.topics.stream, session.keys.enc, body)
        self.outbox.add(session.topics.automations, session.keys.enc, body, retain=True)

    def _coalesce(self) -> None:
        """Once per batch: the device list and each changed device's latest state (retained)."""
        session = self._session
        if session is None:
            return
        now = self.clock.time()
        cats = self.config.categories
        if self._devices_dirty and "devices" in cats:
            body = {"type": "devices", "ts": now,
                    "devices": [_device_json(d, self.states.available(d.id))
                                for d in self.devices.all() if not d.restricted]}
            self.outbox.add(session.topics.stream, session.keys.enc, body)
            self.outbox.add(session.topics.devices, session.keys.enc, body, retain=True)
        self._devices_dirty = False
        if "automations" in cats and self._engine is not None:
            _items, signature = self._automation_list()
            if signature != self._automations_signature:  # created, replaced, (dis)abled...
                self._stage_automations()
        dirty, self._dirty_devices = self._dirty_devices, set()
        if "states" not in cats:
            return
        for device_id in sorted(dirty):
            topic = session.topics.device_state(session.keys.opaque("device", device_id))
            device = self.devices.find(device_id)
            if device is None or device.restricted:
                self.outbox.clear_retained(topic)
                continue
            attrs = {k: {"value": v.value, "last_changed": v.last_changed}
                     for k, v in self.states.get(device_id).items()}
            self.outbox.add(topic, session.keys.enc, {
                "type": "device_state", "device": device_id,
                "available": self.states.available(device_id),
                "attributes": attrs, "ts": now}, retain=True)

    # -- the connection ------------------------------------------------------------------------

    def _start_connection(self) -> None:
        assert self.consent is not None
        self._remote_allowed = self.consent.allowed(REMOTE_ACCESS)
        self._halting = False
        self._optout.clear()
        self._task = asyncio.create_task(self._run(), name="cloud-sync")

    async def _stop_connection(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._halting = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def _run(self) -> None:
        """Connect, publish the outbox, take commands; reconnect with backoff + jitter."""
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        session = self._session
        assert session is not None
        tls = None
        if self.config.endpoint()[2]:
            tls = await asyncio.to_thread(tls_context, self.config)
        while not self._optout.is_set():
            self.state = "connecting"
            since = self.clock.monotonic()
            auth_error = False
            try:
                await self._check_egress()
                client = make_client(self.config, identifier=session.identifier,
                                     password=session.password, tls=tls,
                                     purpose=self._purpose)
                async with client:
                    self.connected = True
                    self.connects += 1
                    self.last_connected = self.clock.time()
                    self.state = "connected"
                    _LOG.info("cloud sync connected to %s", self.config.broker_url)
                    await self._serve(client, session)
                if self._optout.is_set():
                    return
            except (*mqtt_errors(), OSError, EgressDenied) as exc:
                self._check_cancelled()
                auth_error = is_auth_error(exc)
                self._failed(exc)
            finally:
                self.connected = False
            if self.clock.monotonic() - since > STABLE_AFTER:
                backoff.reset()
            delay = backoff.next(auth_error=auth_error)
            self.state = "waiting"
            await self.clock.sleep(delay)

    async def _check_egress(self) -> None:
        """The privacy center's egress guard decides, with this purpose, before we connect."""
        if self._egress is not None:
            await self._egress.check_destination(self.config.endpoint()[0], CLOUD_SYNC)

    @staticmethod
    def _purpose() -> contextlib.AbstractContextManager[object]:
        return egress.remote_purpose(CLOUD_SYNC)

    def _check_cancelled(self) -> None:
        """aiomqtt may turn a cancellation into an MqttError on the way out; never swallow
        a stop (an opted-out hub must not reconnect)."""
        if self._halting:
            raise asyncio.CancelledError

    def _failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            _LOG.warning("cloud sync: %s", message)  # once per distinct error, not per retry
        self.last_error = message

    async def _serve(self, client: aiomqtt.Client, session: _Session) -> None:
        """Publish and receive until the connection fails; raise that failure."""
        if self._remote_allowed and session.clients:
            await client.subscribe(session.topics.all_commands, qos=1)
        else:  # a persistent session may still hold the subscription from before
            await client.unsubscribe(session.topics.all_commands)
        failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        children: set[asyncio.Task[Any]] = set()

        def done(task: asyncio.Task[Any]) -> None:
            children.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None and not failed.done():
                failed.set_result(exc)

        def spawn(coro: Any) -> None:
            task = asyncio.create_task(coro)
            children.add(task)
            task.add_done_callback(done)

        spawn(self._receive(client, spawn))
        spawn(self._publish(client, spawn))
        optout = asyncio.create_task(self._optout.wait())
        try:
            await asyncio.wait({failed, optout}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            optout.cancel()
            for task in list(children):
                task.cancel()
            await asyncio.gather(optout, *children, return_exceptions=True)
        if failed.done():
            raise failed.result()
        await self._clear_on(client)

    async def _clear_on(self, client: aiomqtt.Client) -> None:
        """Opt-out on the live connection: empty retained messages delete the hub's copies."""
        topics = await self.outbox.retained_topics()
        async with asyncio.timeout(CLEAR_TIMEOUT):
            await asyncio.gather(*(client.publish(t, b"", qos=1, retain=True) for t in topics))
        await self.outbox.forget_retained(topics)
        self._clear_pending = False
        _LOG.info("cloud sync: cleared %d retained messages on the broker", len(topics))

    async def _receive(self, client: aiomqtt.Client, spawn: Callable[[Any], None]) -> None:
        async for message in client.messages:  # raises MqttError when the connection drops
            payload = message.payload
            if isinstance(payload, (bytes, bytearray)) and self.commands is not None:
                spawn(self.commands.handle(str(message.topic), bytes(payload)))

    async def _publish(self, client: aiomqtt.Client, spawn: Callable[[Any], None]) -> None:
        window = asyncio.Semaphore(self.config.max_inflight)
        cursor = 0  # everything still in the outbox is (re)sent on each new connection
        while True:
            rows = await self.outbox.rows_after(cursor)
            if not rows:
                await self.outbox.wait_committed()
                continue
            for row in rows:
                await window.acquire()
                cursor = row.seq
                spawn(self._send(client, row.seq, row.topic, row.payload, row.retain, window))

    async def _send(self, client: aiomqtt.Client, seq: int, topic: str, payload: bytes,
                    retain: bool, window: asyncio.Semaphore) -> None:
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=float("inf"))
            self.outbox.ack(seq)
        finally:
            window.release()

    def _start_clearing(self, session: _Session) -> None:
        self._clear_pending = True
        if self._clearing is None or self._clearing.done():
            self._clearing = asyncio.create_task(self._clear_retained(session),
                                                 name="cloud-clear-retained")
            self._aux.add(self._clearing)
            self._clearing.add_done_callback(self._aux.discard)

    async def _clear_retained(self, session: _Session) -> None:
        """Publish empty retained messages over every topic we retained, and end the broker
        session (clean start, no expiry). Retried with backoff until done or consent returns."""
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        tls = None
        if self.config.endpoint()[2]:
            tls = await asyncio.to_thread(tls_context, self.config)
        while self._session is None and self._started:
            topics = await self.outbox.retained_topics()
            done = False
            try:
                await self._check_egress()
                client = make_client(self.config, identifier=session.identifier,
                                     password=session.password, tls=tls, clean=True,
                                     purpose=self._purpose)
                async with asyncio.timeout(CLEAR_TIMEOUT), client:
                    for topic in topics:
                        await client.publish(topic, b"", qos=1, retain=True)
                    done = True
            except (*mqtt_errors(), OSError, TimeoutError, EgressDenied) as exc:
                if not self._started:
                    raise asyncio.CancelledError from exc
                if not done:  # a failed goodbye after every PUBACK still counts as done
                    self._failed(exc)
            if done:
                await self.outbox.forget_retained(topics)
                self._clear_pending = False
                _LOG.info("cloud sync: cleared %d retained messages on the broker", len(topics))
                return
            await self.clock.sleep(backoff.next(auth_error=False))

    # -- keys ------------------------------------------------------------------------------------

    async def _sync_root(self) -> bytes:
        assert self.secrets is not None
        if self.config.passphrase_secret:
            passphrase = await self.secrets.get(self.config.passphrase_secret)
            if not passphrase:
                raise CloudError(f"the vault has no secret {self.config.passphrase_secret!r} "
                                 "(cloud.passphrase_secret)")
            return await asyncio.to_thread(derive_from_passphrase, passphrase,
                                           self.outbox.hub_id)
        return await self._stored_key(SYNC_KEY_SECRET)

    async def _client_key(self, name: str) -> bytes:
        rc = self.config.remote_clients[name]
        return await self._stored_key(rc.key_secret or CLIENT_KEY_SECRET.format(name=name))

    async def _stored_key(self, secret: str) -> bytes:
        assert self.secrets is not None
        raw = await self.secrets.get(secret)
        if raw is None:
            key = new_key()
            await self.secrets.put(secret, base64.b64encode(key).decode())
            return key
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise CloudError(f"vault secret {secret!r} is not a base64 32-byte key")
        return key

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)


def _device_json(device: Device, available: bool | None) -> dict[str, Any]:
    """What a remote client may know about a device (no MAC, DID or firmware)."""
    return {
        "id": device.id, "name": device.name, "area": device.area, "model": device.model,
        "manufacturer": device.manufacturer, "attributes": list(device.attributes),
        "events": list(device.events), "available": available,
        "commands": [{"name": c.name, "params": c.params, "required": list(c.required)}
                     for c in device.commands],
    }


_USER_KEYS = frozenset({"user", "user_id", "owner", "created_by", "person"})


def _mentions(value: Any, restricted: Callable[[str], bool]) -> bool:
    """Whether a JSON-like value names a restricted user (under a user/user_id/... key)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _USER_KEYS and isinstance(v, str) and restricted(v):
                return True
            if _mentions(v, restricted):
                return True
    elif isinstance(value, list):
        return any(_mentions(v, restricted) for v in value)
    return False
