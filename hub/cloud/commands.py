"""Remote commands: authenticate, refuse stale or replayed ones, authorize, run, answer.

A command is sealed with its client's own key, on that client's command topic, so the key
authenticates the client and the topic cannot be swapped (it is in the AAD). Its id is recorded
durably before it runs: the same command id from the same client never runs twice, even across
a hub restart. Authorization is the local API's own (`hub.commands.DeviceCommands`: one
policy for every channel), with restricted devices hidden since they are not synced.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.auth.principal import Principal, Role
from hub.cloud.crypto import EnvelopeError, open_envelope
from hub.cloud.outbox import Outbox
from hub.cloud.topics import Topics
from hub.commands import command_fields
from hub.errors import HubError, StorageError, ValidationError

if TYPE_CHECKING:
    from hub.clock import Clock
    from hub.commands import DeviceCommands
    from hub.storage import Database

_LOG = logging.getLogger(__name__)

MAX_INFLIGHT = 32  # commands being handled at once; more are refused as "busy"


@dataclass(frozen=True, slots=True)
class RemoteClient:
    name: str
    tid: str  # opaque topic id
    role: Role
    key: bytes  # AES key of its commands and answers
    devices: frozenset[str] = frozenset()

    def principal(self) -> Principal:
        return Principal(user_id=f"remote:{self.name}", username=self.name, role=self.role,
                         granted_devices=self.devices)


class RemoteCommands:
    """Handles messages on `<base>/c/<client>`; answers on `<base>/a/<client>`."""

    def __init__(self, db: Database, clock: Clock, commands: DeviceCommands, outbox: Outbox,
                 topics: Topics, clients: list[RemoteClient], window: float,
                 allowed: Any) -> None:
        self._db = db
        self._clock = clock
        self._commands = commands
        self._outbox = outbox
        self._topics = topics
        self._clients = {c.tid: c for c in clients}
        self._window = window
        self._allowed = allowed  # () -> bool: remote_access consent, checked per command
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._last_purge = 0.0
        self._inflight = 0

    async def handle(self, topic: str, payload: bytes) -> None:
        """One message from a command topic; never raises (answers or counts instead)."""
        if self._inflight >= MAX_INFLIGHT:  # a flood is shed before any work
            self._reject("busy")
            return
        self._inflight += 1
        try:
            await self._handle(topic, payload)
        finally:
            self._inflight -= 1

    async def _handle(self, topic: str, payload: bytes) -> None:
        tid = topic.rsplit("/", 1)[-1]
        client = self._clients.get(tid)
        if client is None or topic != self._topics.commands(tid):
            self._reject("unknown_client")
            return
        try:
            _seq, body = open_envelope(client.key, self._outbox.hub_id, topic, payload)
        except EnvelopeError as exc:
            self._reject("bad_envelope")
            _LOG.warning("remote command from %s refused: %s", client.name, exc)
            return
        cmd_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(cmd_id, str) or not 8 <= len(cmd_id) <= 64:
            self._reject("malformed")
            return
        try:
            result = await self._run(client, cmd_id, body)
        except _Refused as exc:
            self._reject(exc.reason)
            self._answer(client, cmd_id, False, {"code": exc.reason, "message": str(exc)})
            return
        except HubError as exc:
            self._reject("error")
            self._answer(client, cmd_id, False, exc.to_json())
            return
        except Exception as exc:  # an integration's bug: answer, log, keep serving
            _LOG.exception("remote command %s from %s failed", cmd_id, client.name)
            self._reject("error")
            self._answer(client, cmd_id, False,
                         {"code": "internal_error", "message": type(exc).__name__})
            return
        self.accepted += 1
        self._answer(client, cmd_id, True, result)

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": dict(self.rejected)}

    # -- internals ----------------------------------------------------------------------------

    async def _run(self, client: RemoteClient, cmd_id: str, body: dict[str, Any]) -> Any:
        ts = body.get("ts")
        now = self._clock.time()
        if (not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts)
                or abs(now - ts) > self._window):
            raise _Refused("stale", "timestamp outside the accepted window")
        await self._remember(client, cmd_id, now)
        if not self._allowed():
            raise _Refused("forbidden", "remote access is not consented")
        device_id = body.get("device")
        if not isinstance(device_id, str):
            raise ValidationError("device", "expected a string")
        command, params = command_fields(body)
        _LOG.info("remote command %s from %s (%s): %s", cmd_id, client.name,
                  client.role.label, command)
        return await self._commands.authorize_and_send(
            client.principal(), device_id, command, params, remote=True)

    async def _remember(self, client: RemoteClient, cmd_id: str, now: float) -> None:
        """Record the command id durably before running it; a second use is a replay."""
        if now - self._last_purge > self._window:
            self._last_purge = now
            self._db.enqueue("DELETE FROM cloud_nonces WHERE ts < ?",
                                 (now - 2 * self._window,))
        try:
            await self._db.write(
                "INSERT INTO cloud_nonces(client, nonce, ts) VALUES(?, ?, ?)",
                (client.name, cmd_id, now))
        except StorageError:
            raise _Refused("replay", "this command was already received") from None

    def _answer(self, client: RemoteClient, cmd_id: str, ok: bool, payload: Any) -> None:
        body: dict[str, Any] = {"type": "answer", "id": cmd_id, "ok": ok,
                                "ts": self._clock.time()}
        body["result" if ok else "error"] = payload
        self._outbox.add(self._topics.answers(client.tid), client.key, body)
        self._db.nudge()

    def _reject(self, reason: str) -> None:
        self.rejected[reason] += 1


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
