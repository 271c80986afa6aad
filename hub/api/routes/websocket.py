"""GET /api/ws: state changes and events, pushed to subscribed clients.

Protocol (JSON text frames):
- Authenticate with `Authorization: Bearer <token>` on the upgrade request, or (browsers
  cannot set headers on websockets) send `{"type": "auth", "token": "..."}` as the first
  message within 10 s. The hub answers `{"type": "ready", "user": {...}}`. Tokens never go
  in the URL: URLs end up in logs.
- `{"type": "subscribe", "id"?: n, "devices"?: [...], "areas"?: [...], "events"?: [...]}`
  sets this connection's filter (each subscribe replaces the last): events of the given
  types (`state_changed`, `device_event`, `availability_changed`, ...; default all) about the
  given devices or devices in the given areas (default all). Answer: `{"type": "subscribed"}`.
  `{"type": "unsubscribe"}` stops the stream; `{"type": "ping"}` answers `pong`.
- `{"type": "command", "id": n, "device_id": "...", "command": "...", "params"?: {...}}`
  commands a device exactly as `POST /api/devices/{id}/commands` does (same checks: role,
  a guest's granted devices, the device's own validation). Answer
  `{"type": "result", "id": n, "result": ...}` or
  `{"type": "error", "id": n, "error": {"code", "message", "field"?}}`. Commands run
  concurrently (answers may come out of order: match them by id), at most
  COMMANDS_IN_FLIGHT per connection; past that the hub stops reading until one finishes.
- Events arrive as `{"type": "event", "event": {"type": kind, ...}}`.
- `{"type": "features", "coalesce": true}` (answer `{"type": "features", "coalesce": true}`)
  lets the hub put several messages into one frame, as a JSON array of the same messages,
  whenever more than one is ready at once. A busy client then gets one frame per batch
  instead of one per message: far fewer system calls on both ends (the same idea as Home
  Assistant's `coalesce_messages`). Without it every message is a frame of its own.
- Back-pressure: each connection has a bounded queue (auth.ws_queue_size). When it
  overflows the client is too slow: the hub closes with 4008 "slow consumer" rather than
  slow down; likewise when the client reads nothing for SEND_TIMEOUT while the socket is
  full. Revoking the token closes with 4401 "token revoked", its expiry with 4401
  "token expired". Guests receive only events of the devices and areas they were granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from hub.api.access import PRINCIPAL_KEY, requires
from hub.api.authn import token_in_first_message
from hub.api.jsonio import dumps, field, parse, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import describe
from hub.auth.principal import Principal, Role
from hub.auth.service import principal_for
from hub.bus import Event, StateChanged, Subscription
from hub.commands import COMMAND_FIELDS, command_fields
from hub.deadlines import Deadlines
from hub.devices import DeviceRegistry
from hub.errors import AuthError, HubError, ValidationError
from hub.hub import Hub
from hub.tasks import start_eager

_LOG = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
SEND_TIMEOUT = 5.0
BURST = 256
HIGH_WATER = 64 * 1024  # bytes unsent in the socket's buffer before writes wait (the pump)
COMMANDS_IN_FLIGHT = 256
COMMAND_MESSAGE_FIELDS = frozenset({"type", "id", "device_id", *COMMAND_FIELDS})
MAX_MESSAGE = 64 * 1024
CLOSE_UNAUTHORIZED, CLOSE_SLOW, CLOSE_GOING_AWAY = 4401, 4008, 1001
CLOSE_BAD_DATA = 1007  # RFC 6455: a message's data is not what its type says

SOCKETS_KEY: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey(
    "websockets", weakref.WeakSet)
ENCODED_KEY: web.AppKey[EncodedEvents] = web.AppKey("encoded_events")


def event_types() -> dict[str, list[type[Event]]]:
    """Every event class known now (areas add their own), by kind.

    A kind may map to more than one class: `@dataclass(slots=True)` replaces the class it
    decorates, and the original lingers in `__subclasses__()`. Listening to both is harmless.
    """
    out: dict[str, list[type[Event]]] = {}
    stack = [Event]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            out.setdefault(sub.kind, []).append(sub)
            stack.append(sub)
    return out


# An event's identity as a number, like id(): but id() raises an audit event, and the egress
# guard's audit hook (hub.egress) is a Python call on every one. The cache holds the event,
# so no other object can take its identity while it is cached.
_identity = object.__hash__


class EncodedEvents:
    """Serialize each event once for all connections (fan-out to many clients). A state
    change carries the attribute's unit when its device states one."""

    def __init__(self, devices: DeviceRegistry | None = None, size: int = 4096) -> None:
        self._devices = devices
        self._size = size
        self._cache: dict[int, tuple[Event, str]] = {}  # oldest first (insertion order)

    def text(self, event: Event) -> str:
        cache = self._cache
        key = _identity(event)
        hit = cache.get(key)
        if hit is not None and hit[0] is event:
            return hit[1]
        body = event.to_json()
        if self._devices is not None and isinstance(event, StateChanged):
            device = self._devices.find(event.device_id)
            unit = device.unit(event.attribute) if device is not None else None
            if unit is not None:
                body["unit"] = unit
        text = dumps({"type": "event", "event": body})
        cache[key] = (event, text)
        if len(cache) > self._size:
            del cache[next(iter(cache))]
        return text


class Connection:
    """One client: its principal, its filter and its bus subscription."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, who: Principal,
                 encoded: EncodedEvents, transport: asyncio.Transport | None = None) -> None:
        self.hub = hub
        self.ws = ws
        self.who = who
        self.encoded = encoded
        self.sub: Subscription | None = None
        self.devices: frozenset[str] = frozenset()
        self.areas: frozenset[str] = frozenset()
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = ""
        self.coalesce = False
        self._out: list[str] = []  # answers waiting for the writer (events wait in `sub`)
        self._transport = transport  # frames written straight to it (None: all via the pump)
        self._loop = asyncio.get_running_loop()
        self._flush_handle: asyncio.Handle | None = None
        self._held: list[str] = []  # a batch the pump writes (the socket's buffer was full)
        self._pumping = False  # the pump owns the writes until it has caught up
        self._wake = asyncio.Event()  # the pump has something to do (or stop)
        self._stopped = False
        self._room = asyncio.Event()  # set when a command slot frees while the reader waits
        self._send_limit = Deadlines(SEND_TIMEOUT)  # one timer, not one per burst sent
        self._commands: set[asyncio.Task[None]] = set()

    def stop(self, code: int, reason: str) -> None:
        """End the stream (sync: safe from bus and revocation callbacks)."""
        if self._stopped:
            return
        self._stopped = True
        self.close_code, self.close_reason = code, reason
        if self.sub is not None:
            self.sub.close()
        self._wake.set()

    def subscribe(self, msg: dict[str, Any]) -> None:
        known = event_types()
        kinds = _names(msg, "events")
        if kinds is not None:
            unknown = sorted(kinds - known.keys())
            if unknown:
                raise ValidationError("events", f"unknown event types: {', '.join(unknown)}")
        self.devices = _names(msg, "devices") or frozenset()
        self.areas = _names(msg, "areas") or frozenset()
        types = [t for k in (kinds or known) for t in known[k]]
        old, self.sub = self.sub, self.hub.bus.listen(
            types, maxsize=self.hub.config.auth.ws_queue_size, predicate=self._wanted,
            name=f"ws:{self.who.username}", notify=self._ready)
        if old is not None:
            old.close()
        self._ready()

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.sub.close()
            self.sub = None

    def send(self, text: str) -> None:
        """Queue one message for the writer (sync: no task waits on each frame)."""
        self._out.append(text)
        self._ready()

    def command(self, msg: dict[str, Any]) -> None:
        """Start one command message as a task: the reader goes on at once (it waits in
        `room_for_commands` once COMMANDS_IN_FLIGHT are running). Bad fields raise at once."""
        if not msg.keys() <= COMMAND_MESSAGE_FIELDS:
            reject_unknown(msg, COMMAND_MESSAGE_FIELDS)
        ident = msg.get("id")
        if ident is None or isinstance(ident, bool) or not isinstance(ident, (int, str)):
            raise ValidationError("id", "expected a number or string to match the answer")
        device_id = field(msg, "device_id", str)
        command, params = command_fields(msg)
        task = start_eager(self._run_command(ident, device_id, command, params))
        if not task.done():  # (eager start: it may have answered already)
            self._commands.add(task)

    @property
    def commands_full(self) -> bool:
        return len(self._commands) >= COMMANDS_IN_FLIGHT

    async def room_for_commands(self) -> None:
        """Back-pressure: return once fewer than COMMANDS_IN_FLIGHT commands are running."""
        while self.commands_full:
            self._room.clear()
            await self._room.wait()

    async def _run_command(self, ident: int | str, device_id: str, command: str,
                           params: dict[str, Any]) -> None:
        try:
            try:
                result = await self.hub.commands.authorize_and_send(self.who, device_id, command,
                                                                    params)
                text = dumps({"type": "result", "id": ident, "result": result})
            except HubError as exc:
                text = dumps({"type": "error", "id": ident, "error": exc.to_json()})
            except Exception:  # an integration's bug: like HTTP's 500, logged, never a crash
                _LOG.exception("websocket command %s on %s failed", command, device_id)
                text = dumps({"type": "error", "id": ident, "error": {
                    "code": "internal_error", "message": "internal error"}})
            self.send(text)
        finally:
            # forgotten here rather than in a done callback: one loop turn less per command
            self._commands.discard(asyncio.current_task())
            self._room.set()

    async def finish_commands(self) -> None:
        """Let commands already started finish (a device may be half-way); cancel stragglers."""
        if self._commands:
            _done, late = await asyncio.wait(set(self._commands), timeout=SEND_TIMEOUT)
            for task in late:
                task.cancel()

    def _wanted(self, event: Event) -> bool:
        """Called by the bus for every event of the subscribed types: cheapest tests first."""
        who = self.who
        least = getattr(event, "min_role", None)  # e.g. discovery events: admins only
        if least is not None and who.role < least:
            return False
        device_id = getattr(event, "device_id", None)
        if device_id is None:
            return who.role >= Role.MEMBER and not self.devices and not self.areas
        if who.role >= Role.MEMBER:
            if not self.areas:  # no area lookup needed
                return not self.devices or device_id in self.devices
            if device_id in self.devices:
                return True
        device = self.hub.devices.find(device_id)
        area = device.area if device is not None else None
        if not self.who.can_see_device(device_id, area):
            return False
        if not self.devices and not self.areas:
            return True
        return device_id in self.devices or (area is not None and area in self.areas)

    def _ready(self) -> None:
        """Something is queued: write it when this turn of the loop is over, in one batch
        with everything else ready by then (a burst of MQTT messages read at once: one
        write). No task wakes for it; the pump writes only while the client lags."""
        if self._flush_handle is None and not self._pumping and not self._stopped:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._stopped or self._pumping:
            return
        texts = self._take()
        if not texts:
            return
        if self._writable():
            self._write_now(texts)
            sub = self.sub
            if self._out or (sub is not None and sub.backlog):  # more than a BURST
                self._ready()
        else:  # the client lags (or frames are compressed): the pump waits for it
            self._held = texts
            self._pumping = True
            self._wake.set()

    def _take(self) -> list[str]:
        """Answers, then up to BURST queued events, encoded; stops a client that lost
        events (its queue overflowed)."""
        texts, self._out = self._out, []
        sub = self.sub
        if sub is not None:
            encode = self.encoded.text
            for _ in range(BURST):
                event = sub.get_nowait()
                if event is None:
                    break  # empty, or closed: re-subscribed, unsubscribed or stopped
                texts.append(encode(event))
            if sub.dropped:
                self.stop(CLOSE_SLOW, f"slow consumer: {sub.dropped} events dropped")
                return []
        return texts

    def _writable(self) -> bool:
        """True when frames can go straight to the socket: uncompressed, open, and what was
        written before has mostly left (a client that does not read fills the buffer)."""
        transport = self._transport
        return (transport is not None and not self.ws.closed and not self.ws.compress
                and not transport.is_closing()
                and transport.get_write_buffer_size() < HIGH_WATER)

    def _write_now(self, texts: list[str]) -> None:
        """Every message its own frame (or arrays of them, coalescing), all in one write
        to the transport: one system call for the batch instead of one per frame.

        aiohttp has no call to send several frames at once, nor one that does not await.
        Its writer puts each uncompressed frame on this same transport whole and at once
        (it keeps no buffer of its own), so frames written here and its own (pong, close)
        never interleave within a frame; compressed connections go through aiohttp."""
        assert self._transport is not None
        self._transport.write(_frames(self._coalesced(texts) if self.coalesce else texts))

    async def pump(self) -> None:
        """The connection's slow path and end: writes through aiohttp what `_flush` left
        (the socket's buffer was full, or frames are compressed), waiting for the client at
        most SEND_TIMEOUT, until it has caught up; drops the client if it falls behind.
        Once stopped, sends the last answers and closes."""
        try:
            while not self._stopped:
                if not self._held:
                    self._pumping = False
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                texts, self._held = self._held, []
                try:
                    async with self._send_limit.limit():
                        await self._write(texts)
                except (TimeoutError, ConnectionError):
                    self.stop(CLOSE_SLOW, "slow consumer: send timed out")
                    break
                if not self._stopped:
                    self._held = self._take()  # what came meanwhile, in order, still here
            rest = self._held + self._out
            if rest and self.close_code != CLOSE_SLOW:  # answers to the last commands
                async with self._send_limit.limit():
                    await self._write(rest)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._send_limit.close()
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.ws.close(code=self.close_code, message=self.close_reason.encode()),
                    SEND_TIMEOUT)

    async def _write(self, texts: list[str]) -> None:
        if self.ws.closed:
            return
        for text in self._coalesced(texts) if self.coalesce else texts:
            await self.ws.send_str(text)

    @staticmethod
    def _coalesced(texts: list[str]) -> list[str]:
        """Messages as JSON arrays of at most BURST (a single message stays an object)."""
        if len(texts) == 1:
            return texts
        out = []
        for i in range(0, len(texts), BURST):  # frames of a bounded size
            chunk = texts[i:i + BURST]
            out.append(chunk[0] if len(chunk) == 1 else f"[{','.join(chunk)}]")
        return out


_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack
_TEXT = 0x81  # FIN and the text opcode (RFC 6455 5.2); a server's frames are not masked


def _frames(texts: list[str]) -> bytearray:
    """Unmasked text frames, one per message, back to back."""
    out = bytearray()
    for text in texts:
        data = text.encode()
        n = len(data)
        if n < 126:
            out += bytes((_TEXT, n))
        elif n < 65536:
            out += _LEN16(_TEXT, 126, n)
        else:
            out += _LEN64(_TEXT, 127, n)
        out += data
    return out


@requires(Role.GUEST)
@token_in_first_message
@describe("Websocket stream of state changes and events", tags=("websocket",), status=101,
          websocket=True,
          description="Upgrade to a websocket. Authenticate with the Authorization header or "
                      "a first message {\"type\":\"auth\",\"token\":...}. See the README.")
async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    # no permessage-deflate: on a LAN, zlib on every small frame costs the Pi more CPU than
    # the bytes it saves, and uncompressed frames can be batched into one write (_flush)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE, compress=False)
    if not ws.can_prepare(request).ok:
        raise ValidationError(None, "expected a websocket upgrade")
    await ws.prepare(request)
    who = request.get(PRINCIPAL_KEY)
    if who is None:
        who = await _first_message_auth(hub, ws)
        if who is None:
            return ws
    conn = Connection(hub, ws, who, request.app[ENCODED_KEY], request.transport)
    sockets = request.app[SOCKETS_KEY]
    sockets.add(ws)
    unrevoke = (hub.auth.on_revoke(who.token_id,
                                   lambda: conn.stop(CLOSE_UNAUTHORIZED, "token revoked"))
                if who.token_id else (lambda: None))
    def regrant(user: Any) -> None:  # role or grants changed: filter with the new ones
        conn.who = principal_for(user, who.token_id)

    unwatch = hub.auth.on_user_change(who.user_id, regrant)
    expiry = _close_at_expiry(hub, conn, who)
    pump = asyncio.create_task(conn.pump(), name=f"ws-pump:{who.username}")
    try:
        conn.send(dumps({"type": "ready", "user": {
            "id": who.user_id, "username": who.username, "role": who.role.label}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            reply = _handle(conn, msg.data)
            if reply is not None:
                conn.send(dumps(reply))
            if conn.commands_full:
                await conn.room_for_commands()
    finally:
        unrevoke()
        unwatch()
        if expiry is not None:
            expiry.cancel()
        await conn.finish_commands()
        conn.stop(conn.close_code, conn.close_reason or "bye")
        conn.unsubscribe()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(pump, SEND_TIMEOUT + 1)
        sockets.discard(ws)
    return ws


def _close_at_expiry(hub: Hub, conn: Connection,
                     who: Principal) -> asyncio.TimerHandle | None:
    """A websocket lives no longer than the token it was opened with."""
    if who.token_id is None:
        return None
    rec = hub.auth.find_token(who.token_id)
    if rec is None or rec.expires_at is None:
        return None
    delay = max(0.0, rec.expires_at - hub.clock.time())
    return asyncio.get_running_loop().call_later(
        delay, conn.stop, CLOSE_UNAUTHORIZED, "token expired")


def _handle(conn: Connection, data: str) -> dict[str, Any] | None:
    """The answer to one client message (None: a command answers by itself later)."""
    msg: Any = None
    try:
        msg = parse(data)
        if not isinstance(msg, dict):
            raise ValidationError(None, "expected a JSON object")
        kind = msg.get("type")
        reply: dict[str, Any]
        if kind == "command":
            conn.command(msg)
            return None
        if kind == "subscribe":
            conn.subscribe(msg)
            reply = {"type": "subscribed"}
        elif kind == "unsubscribe":
            conn.unsubscribe()
            reply = {"type": "unsubscribed"}
        elif kind == "ping":
            reply = {"type": "pong"}
        elif kind == "features":
            coalesce = msg.get("coalesce", False)
            if not isinstance(coalesce, bool):
                raise ValidationError("coalesce", "expected true or false")
            conn.coalesce = coalesce
            reply = {"type": "features", "coalesce": coalesce}
        else:
            raise ValidationError(
                "type", "expected command, subscribe, unsubscribe, features or ping")
        if "id" in msg:
            reply["id"] = msg["id"]
        return reply
    except ValueError:
        return {"type": "error", "error": {"code": "invalid", "message": "malformed JSON"}}
    except HubError as exc:
        error: dict[str, Any] = {"type": "error", "error": exc.to_json()}
        if isinstance(msg, dict) and "id" in msg:
            error["id"] = msg["id"]
        return error


async def _first_message_auth(hub: Hub, ws: web.WebSocketResponse) -> Principal | None:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
        body = parse(msg.data) if msg.type == WSMsgType.TEXT else None
        if not isinstance(body, dict) or body.get("type") != "auth" \
                or not isinstance(body.get("token"), str):
            raise AuthError("first message must be {\"type\": \"auth\", \"token\": ...}")
        return await hub.auth.resolve(body["token"])
    except (TimeoutError, AuthError, ValidationError) as exc:
        code, reason = CLOSE_UNAUTHORIZED, str(exc)
        if isinstance(exc, TimeoutError):
            reason = "authentication expected"
        elif isinstance(exc, ValidationError):  # not JSON we can read: not even an auth try
            code = CLOSE_BAD_DATA
            reason = f"{exc.field}: {exc}" if exc.field else reason
        await ws.close(code=code, message=reason.encode()[:120])
        return None


def _names(msg: dict[str, Any], key: str) -> frozenset[str] | None:
    raw = msg.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw) or len(raw) > 1000:
        raise ValidationError(key, "expected a list of strings")
    return frozenset(raw)


async def _close_all(app: web.Application) -> None:
    sockets = app[SOCKETS_KEY]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=CLOSE_GOING_AWAY, message=b"hub stopping"),
                                   2.0)


def setup(app: web.Application) -> None:
    app[SOCKETS_KEY] = weakref.WeakSet()
    app[ENCODED_KEY] = EncodedEvents(app[HUB_KEY].devices)
    app.on_shutdown.append(_close_all)
    app.router.add_get("/api/ws", websocket)
