"""`hub.cloud`: opt-in, end-to-end encrypted sync and remote access over MQTT.

Off unless the broker is configured AND the owner consents to `cloud_sync`; without both,
nothing subscribes, nothing is queued and no socket is opened. Consent withdrawn = opting out:
the connection stops at once, the hub's retained messages are cleared on the broker and the
outbox is dropped.

The parts: `staging` (bus -> outbox), `outbox` (durable, sealed messages), `connection` (one
reconnect loop for the sync connection and for clearing), `keys` (the vault's keys and
credentials); this module is the consent-driven service, its state a `CloudState`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hub.bus import Event
from hub.cloud.commands import RemoteCommands
from hub.cloud.connection import CLEAR_TIMEOUT, BrokerLink, SyncConnection, clear_retained
from hub.cloud.crypto import Pairing
from hub.cloud.keys import CLIENT_KEY_SECRET, SYNC_KEY_SECRET, CloudError, CloudKeys, Session
from hub.cloud.outbox import SCHEMA, Outbox
from hub.cloud.sources import (
    CLOUD_SYNC,
    REMOTE_ACCESS,
    ConsentSource,
    SecretSource,
)
from hub.cloud.staging import Staging, listed
from hub.errors import HubError, NotFound
from hub.reconnect import ReconnectState

if TYPE_CHECKING:
    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.cloud.config import CloudConfig
    from hub.commands import DeviceCommands
    from hub.devices import DeviceRegistry
    from hub.egress import EgressGuard
    from hub.state import StateStore
    from hub.storage import Database

__all__ = ["CLIENT_KEY_SECRET", "SCHEMA", "SYNC_KEY_SECRET", "AutomationsChanged", "CloudError",
           "CloudState", "CloudSync"]

_LOG = logging.getLogger(__name__)


class CloudState(enum.StrEnum):
    """Where cloud sync is; `status()["state"]` is its value (a str: `state == "error"`)."""

    OFF = "off"  # not started, or no broker configured
    NO_CONSENT = "no_consent"  # configured; the owner has not consented (or withdrew)
    ERROR = "error"  # consented, but it cannot run as configured (see last_error)
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"  # backing off before the next attempt
    OPTING_OUT = "opting_out"  # consent withdrawn: clearing the broker's copies, then off


_FROM_LOOP = {ReconnectState.CONNECTING: CloudState.CONNECTING,
              ReconnectState.CONNECTED: CloudState.CONNECTED,
              ReconnectState.WAITING: CloudState.WAITING}


@dataclass(frozen=True, slots=True)
class AutomationsChanged(Event):
    """The automation engine's definitions changed (synced when the owner picked them)."""

    kind: ClassVar[str] = "automations_changed"
    definitions: tuple[dict[str, Any], ...]


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
        self._device_commands = commands
        self.consent: ConsentSource | None = consent
        self.secrets: SecretSource | None = secrets
        self._egress = egress
        self._engine = automations
        self._yaml_automations = tuple(yaml_automations)
        self.outbox = Outbox(db, clock, config.outbox_limit, config.outbox_policy)
        # A restricted person's events and automations are not synced.
        self.user_restricted = user_restricted
        self.staging = Staging(config, bus, devices, states, clock, self.outbox, db.nudge,
                               user_restricted, self._automation_list)
        self.state = CloudState.OFF
        self.last_error: str | None = None
        self.last_connected: float | None = None
        self.connects = 0
        self.commands: RemoteCommands | None = None
        self._keys: CloudKeys | None = None
        self._session: Session | None = None
        self._connection: SyncConnection | None = None
        self._clearing: asyncio.Task[bool] | None = None
        self._aux: set[asyncio.Task[Any]] = set()
        self._unconsent: Callable[[], None] | None = None
        self._unpushed: Callable[[], None] | None = None  # AutomationsChanged
        self._lock = asyncio.Lock()
        self._automations: tuple[dict[str, Any], ...] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        assert self.consent is not None and self.secrets is not None
        await self.outbox.load()
        self._keys = CloudKeys(self.config, self.secrets, self.outbox.hub_id)
        self._automations = tuple(a for a in self._yaml_automations if isinstance(a, dict))
        self._unconsent = self.consent.subscribe(self._consent_changed)
        await self._reconcile()
        if not self._wanted():  # consent withdrawn while the hub was down, or mid opt-out
            await self._opted_out_while_away()

    async def stop(self) -> None:
        if self._unconsent is not None:
            self._unconsent()
            self._unconsent = None
        await self._stop_connection()
        for task in list(self._aux):
            task.cancel()
        await asyncio.gather(*self._aux, return_exceptions=True)
        # What was staged before stopping commits with a last batch (flush runs the hooks).
        await self.db.flush()
        self._stop_staging()
        self.outbox.close()
        self.state = CloudState.OFF

    @property
    def enabled(self) -> bool:
        return self._session is not None

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected

    @property
    def clear_pending(self) -> bool:
        """The broker may still hold the hub's retained messages after an opt-out."""
        return self.state is CloudState.OPTING_OUT or (
            self._clearing is not None and not self._clearing.done())

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
            "state": self.state.value,
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
            "retained_clear_pending": self.clear_pending,
            "commands": self.commands.stats() if self.commands else {"accepted": 0,
                                                                      "rejected": {}},
        }

    async def pairing_code(self, client: str | None) -> str:
        """A code for another device of the owner's: the sync key (+ its command key)."""
        session = self._session
        if session is None or self._keys is None:
            raise CloudError("cloud sync is not enabled (configure a broker and give consent)")
        client_key = None
        if client is not None:
            if client not in self.config.remote_clients:
                raise NotFound(f"no remote client {client!r} in cloud.remote_clients")
            client_key = await self._keys.client_key(client)
        return Pairing(session.keys.hub_id, self.config.topic_prefix, session.root, client,
                       client_key, self.config.broker_url).encode()

    def automations_changed(self, definitions: list[dict[str, Any]]) -> None:
        """For a hub without the automation engine (or publish `AutomationsChanged`)."""
        self._automations = tuple(definitions)
        self.staging.stage_automations()

    def secrets_changed(self) -> None:
        """A named secret the config refers to was set: a sync that could not start for
        want of it (state error) tries again now rather than at the next consent change."""
        if self._unconsent is not None and self._session is None:  # started, not enabled
            self._spawn(self._reconcile(), "cloud-reconcile")

    # -- consent -----------------------------------------------------------------------------

    def _consent_changed(self) -> None:
        assert self.consent is not None
        if self._session is not None and not self.consent.allowed(CLOUD_SYNC) and (
                self.state is not CloudState.OPTING_OUT):
            # Opting out: stop at once, before anything else can be queued or sent. A live
            # connection stops syncing now and is used once more to clear the retained
            # messages (no new connection without consent).
            self.state = CloudState.OPTING_OUT
            self._stop_staging()
            if self._connection is not None:
                self._connection.opt_out()
        self._spawn(self._reconcile(), "cloud-reconcile")

    async def _reconcile(self) -> None:
        async with self._lock:
            assert self.consent is not None
            want = self._wanted()
            remote = want and self.consent.allowed(REMOTE_ACCESS)
            if want and self._session is None:
                await self._enable_or_report()
            elif not want and self._session is not None:
                await self._opt_out()
            elif want and self.state is CloudState.OPTING_OUT:
                # withdrawn and given again before we got here: finish opting out, start anew
                await self._opt_out()
                await self._enable_or_report()
            elif want and self._connection is not None and remote != self._connection.remote:
                await self._stop_connection()  # resubscribe with or without commands
                self._start_connection()
            if not want:
                self.state = CloudState.OFF if not self.config.configured else (
                    CloudState.NO_CONSENT)

    async def _enable_or_report(self) -> None:
        try:
            await self._enable()
        except HubError as exc:
            self.state, self.last_error = CloudState.ERROR, str(exc)
            _LOG.error("cloud sync cannot start: %s", exc)

    async def _enable(self) -> None:
        assert self._keys is not None
        session = await self._keys.session()
        if self._clearing is not None:  # consent is back: the broker keeps our copies
            self._clearing.cancel()
            self._clearing = None
        self._session = session
        self.commands = RemoteCommands(
            self.db, self.clock, self._device_commands, self.outbox, session.topics,
            session.clients, self.config.command_window,
            lambda: bool(self.consent and self.consent.allowed(REMOTE_ACCESS)))
        if "automations" in self.config.categories:
            self._unpushed = self.bus.subscribe(
                AutomationsChanged, lambda e: self.automations_changed(list(e.definitions)))
        self.staging.start(session)
        self._start_connection()

    async def _opt_out(self) -> None:
        _LOG.info("cloud sync: consent withdrawn; disconnecting, clearing retained messages "
                  "and dropping the outbox")
        session = self._session
        self.state = CloudState.OPTING_OUT
        self._stop_staging()
        cleared = False
        connection, self._connection = self._connection, None
        if connection is not None:  # let a live connection clear what it retained, briefly
            cleared = await connection.finish_opt_out(CLEAR_TIMEOUT + 2)
        self._session = None
        self.commands = None
        dropped = await self.outbox.drop()
        _LOG.info("cloud sync: dropped %d waiting messages", dropped)
        if session is not None and not cleared:
            self._start_clearing(session)  # not connected at opt-out: a short clean session

    async def _opted_out_while_away(self) -> None:
        """Consent was withdrawn while the hub was down (or mid opt-out): finish opting out."""
        if self.outbox.depth:
            await self.outbox.drop()
        if not self.config.configured or not await self.outbox.retained_topics():
            return
        assert self._keys is not None
        try:
            session = await self._keys.session()
        except HubError as exc:
            self.last_error = str(exc)
            return
        self._start_clearing(session)

    def _wanted(self) -> bool:
        return bool(self.config.configured and self.consent
                    and self.consent.allowed(CLOUD_SYNC))

    def _stop_staging(self) -> None:
        self.staging.stop()
        if self._unpushed is not None:
            self._unpushed()
            self._unpushed = None

    # -- the connection ------------------------------------------------------------------------

    def _start_connection(self) -> None:
        assert self.consent is not None and self._session is not None
        commands = self.commands
        self.state = CloudState.CONNECTING  # (also the end of an opt-out undone by consent)
        self._connection = SyncConnection(
            self._link(self._session), self.outbox, self.clock,
            remote=self.consent.allowed(REMOTE_ACCESS),
            commands=commands.handle if commands is not None else None,
            on_state=self._connection_state, on_connected=self._connected,
            on_error=self._failed)
        self._connection.start()

    async def _stop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.stop()

    def _connection_state(self, state: ReconnectState) -> None:
        if self.state is not CloudState.OPTING_OUT and state in _FROM_LOOP:
            self.state = _FROM_LOOP[state]

    def _connected(self) -> None:
        self.connects += 1
        self.last_connected = self.clock.time()
        _LOG.info("cloud sync connected to %s", self.config.broker_url)

    def _failed(self, message: str) -> None:
        self.last_error = message

    def _link(self, session: Session) -> BrokerLink:
        return BrokerLink(self.config, session, self._check_egress)

    async def _check_egress(self) -> None:
        """The privacy center's egress guard decides, with this purpose, before we connect."""
        if self._egress is not None:
            await self._egress.check_destination(self.config.endpoint()[0], CLOUD_SYNC)

    def _start_clearing(self, session: Session) -> None:
        if self._clearing is None or self._clearing.done():
            self._clearing = asyncio.create_task(
                clear_retained(self._link(session), self.outbox, self.clock,
                               lambda: self._session is None, self._failed),
                name="cloud-clear-retained")
            self._aux.add(self._clearing)
            self._clearing.add_done_callback(self._aux.discard)

    def _automation_list(self) -> tuple[list[dict[str, Any]], Any]:
        """The automations to sync and a cheap signature that changes when they do."""
        engine = self._engine
        if engine is None:  # no engine: the YAML definitions (or what was pushed to us)
            return [{"id": a.get("id"), "enabled": True, "definition": a}
                    for a in (self._automations or ())], None
        return listed(engine)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)
