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
- Events arrive as `{"type": "event", "event": {"type": kind, ...}}`.
- Back-pressure: each connection has a bounded queue (auth.ws_queue_size). When it
  overflows the client is too slow: the hub closes with 4008 "slow consumer" rather than
  slow down. Revoking the token closes with 4401 "token revoked", its expiry with 4401
  "token expired". Guests receive only events of the devices and areas they were granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import OrderedDict
from typing import Any

from aiohttp import WSMsgType, web

from hub.api.access import PRINCIPAL_KEY, requires
from hub.api.authn import token_in_first_message
from hub.api.jsonio import dumps
from hub.api.keys import HUB_KEY
from hub.api.spec import describe
from hub.auth.principal import Principal, Role
from hub.auth.service import principal_for
from hub.bus import Event, Subscription
from hub.errors import AuthError, HubError, ValidationError
from hub.hub import Hub

_LOG = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
SEND_TIMEOUT = 5.0
BURST = 256
MAX_MESSAGE = 64 * 1024
CLOSE_UNAUTHORIZED, CLOSE_SLOW, CLOSE_GOING_AWAY = 4401, 4008, 1001

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


class EncodedEvents:
    """Serialize each event once for all connections (fan-out to many clients)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._cache: OrderedDict[int, tuple[Event, str]] = OrderedDict()

    def text(self, event: Event) -> str:
        hit = self._cache.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        text = dumps({"type": "event", "event": event.to_json()})
        self._cache[id(event)] = (event, text)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return text


class Connection:
    """One client: its principal, its filter and its bus subscription."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, who: Principal,
                 encoded: EncodedEvents) -> None:
        self.hub = hub
        self.ws = ws
        self.who = who
        self.encoded = encoded
        self.sub: Subscription | None = None
        self.devices: frozenset[str] = frozenset()
        self.areas: frozenset[str] = frozenset()
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = ""
        self._wake = asyncio.Event()
        self._stopped = False

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
            name=f"ws:{self.who.username}")
        if old is not None:
            old.close()
        self._wake.set()

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.sub.close()
            self.sub = None

    def _wanted(self, event: Event) -> bool:
        least = getattr(event, "min_role", None)  # e.g. discovery events: admins only
        if least is not None and self.who.role < least:
            return False
        device_id = getattr(event, "device_id", None)
        if device_id is None:
            return self.who.role >= Role.MEMBER and not self.devices and not self.areas
        if not self.devices and not self.areas and self.who.role >= Role.MEMBER:
            return True
        device = self.hub.devices.find(device_id)
        area = device.area if device is not None else None
        if not self.who.can_see_device(device_id, area):
            return False
        if not self.devices and not self.areas:
            return True
        return device_id in self.devices or (area is not None and area in self.areas)

    async def pump(self) -> None:
        """Forward queued events until stopped; drop the client if it falls behind."""
        while not self._stopped:
            sub = self.sub
            if sub is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            event = await sub.get()
            if sub.dropped:
                self.stop(CLOSE_SLOW, f"slow consumer: {sub.dropped} events dropped")
                break
            if event is None:
                continue  # closed: re-subscribed, unsubscribed or stopped
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.ws.send_str(self.encoded.text(event))
                    # drain what else is queued without waking up once per event
                    for _ in range(BURST):
                        more = sub.get_nowait()
                        if more is None:
                            break
                        await self.ws.send_str(self.encoded.text(more))
            except (TimeoutError, ConnectionError):
                self.stop(CLOSE_SLOW, "slow consumer: send timed out")
                break
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.ws.close(code=self.close_code, message=self.close_reason.encode()),
                    SEND_TIMEOUT)


@requires(Role.GUEST)
@token_in_first_message
@describe("Websocket stream of state changes and events", tags=("websocket",), status=101,
          websocket=True,
          description="Upgrade to a websocket. Authenticate with the Authorization header or "
                      "a first message {\"type\":\"auth\",\"token\":...}. See the README.")
async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise ValidationError(None, "expected a websocket upgrade")
    await ws.prepare(request)
    who = request.get(PRINCIPAL_KEY)
    if who is None:
        who = await _first_message_auth(hub, ws)
        if who is None:
            return ws
    conn = Connection(hub, ws, who, request.app[ENCODED_KEY])
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
        await ws.send_str(dumps({"type": "ready", "user": {
            "id": who.user_id, "username": who.username, "role": who.role.label}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            reply = _handle(conn, msg.data)
            if reply is not None:
                await ws.send_str(dumps(reply))
    finally:
        unrevoke()
        unwatch()
        if expiry is not None:
            expiry.cancel()
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
    try:
        msg = json.loads(data)
        if not isinstance(msg, dict):
            raise ValidationError(None, "expected a JSON object")
        kind = msg.get("type")
        reply: dict[str, Any]
        if kind == "subscribe":
            conn.subscribe(msg)
            reply = {"type": "subscribed"}
        elif kind == "unsubscribe":
            conn.unsubscribe()
            reply = {"type": "unsubscribed"}
        elif kind == "ping":
            reply = {"type": "pong"}
        else:
            raise ValidationError("type", "expected subscribe, unsubscribe or ping")
        if "id" in msg:
            reply["id"] = msg["id"]
        return reply
    except ValueError:
        return {"type": "error", "error": {"code": "invalid", "message": "malformed JSON"}}
    except HubError as exc:
        return {"type": "error", "error": exc.to_json()}


async def _first_message_auth(hub: Hub, ws: web.WebSocketResponse) -> Principal | None:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
        body = json.loads(msg.data) if msg.type == WSMsgType.TEXT else None
        if not isinstance(body, dict) or body.get("type") != "auth" \
                or not isinstance(body.get("token"), str):
            raise AuthError("first message must be {\"type\": \"auth\", \"token\": ...}")
        return await hub.auth.resolve(body["token"])
    except (TimeoutError, ValueError, AuthError) as exc:
        reason = str(exc) if isinstance(exc, AuthError) else "authentication expected"
        await ws.close(code=CLOSE_UNAUTHORIZED, message=reason.encode()[:120])
        return None


def _names(msg: dict[str, Any], key: str) -> frozenset[str] | None:
    raw = msg.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw) or len(raw) > 1000:
        raise ValidationError(key, "expected a list of strings")
    return frozenset(raw)


async def _close_all(app: web.Application) -> None:
    for ws in list(app[SOCKETS_KEY]):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=CLOSE_GOING_AWAY, message=b"hub stopping"),
                                   2.0)


def setup(app: web.Application) -> None:
    app[SOCKETS_KEY] = weakref.WeakSet()
    app[ENCODED_KEY] = EncodedEvents()
    app.on_shutdown.append(_close_all)
    app.router.add_get("/api/ws", websocket)
