"""The broker side of cloud sync: one way to connect (`BrokerLink`) and one reconnect loop
(`hub.reconnect.ReconnectLoop`) for both connections the service makes:

- `SyncConnection`: the persistent session that publishes the outbox and takes commands; on
  opt-out it uses the live connection once more to clear the retained messages, then ends.
- `clear_retained`: a short clean session that clears them when the hub was not connected at
  opt-out (or was down), retried with the same backoff until done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hub import egress
from hub.cloud.client import (
    STABLE_AFTER,
    backoff_policy,
    is_auth_error,
    make_client,
    tls_context,
)
from hub.cloud.sources import CLOUD_SYNC
from hub.reconnect import ReconnectLoop, ReconnectState

if TYPE_CHECKING:
    import ssl

    import aiomqtt

    from hub.clock import Clock
    from hub.cloud.config import CloudConfig
    from hub.cloud.keys import Session
    from hub.cloud.outbox import Outbox

_LOG = logging.getLogger("hub.cloud")

CLEAR_TIMEOUT = 10.0

CommandHandler = Callable[[str, bytes], Awaitable[None]]


class BrokerLink:
    """Makes clients for one session's identity: TLS context built once (off the loop), the
    privacy center's egress check before every connect, the connect under the sync purpose."""

    def __init__(self, config: CloudConfig, session: Session,
                 check_egress: Callable[[], Awaitable[None]]) -> None:
        self.config = config
        self.session = session
        self.check_egress = check_egress
        self._tls: ssl.SSLContext | None = None

    async def client(self, *, clean: bool = False) -> aiomqtt.Client:
        await self.check_egress()
        if self.config.endpoint()[2] and self._tls is None:
            self._tls = await asyncio.to_thread(tls_context, self.config)
        return make_client(self.config, identifier=self.session.identifier,
                           password=self.session.password, tls=self._tls, clean=clean,
                           purpose=_purpose)


class SyncConnection:
    """The persistent sync connection, kept up by a ReconnectLoop until stopped or opted out."""

    def __init__(self, link: BrokerLink, outbox: Outbox, clock: Clock, *, remote: bool,
                 commands: CommandHandler | None,
                 on_state: Callable[[ReconnectState], None],
                 on_connected: Callable[[], None],
                 on_error: Callable[[str], None]) -> None:
        self.link = link
        self.outbox = outbox
        self.remote = remote  # subscribed to remote commands (consent to remote access)
        self._commands = commands
        self._on_connected = on_connected
        self._on_error = on_error
        self._optout = asyncio.Event()  # consent withdrawn: clear on the live connection, end
        self._cleared = asyncio.Event()
        self._ended = asyncio.Event()  # after opt-out: cleared, or the connection failed
        self._stopping = False  # (aiomqtt may turn our cancellation into an MqttError)
        self.loop = ReconnectLoop("cloud sync", self._session, clock=clock,
                                  policy=backoff_policy(link.config),
                                  is_auth_error=is_auth_error, on_state=on_state, log=_LOG,
                                  healthy_after=STABLE_AFTER)

    @property
    def connected(self) -> bool:
        return self.loop.state is ReconnectState.CONNECTED

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        self._stopping = True
        await self.loop.stop()

    def opt_out(self) -> None:
        """Stop syncing now: a live connection clears the retained messages and ends; with no
        connection up, no new one is made (the caller stops the loop)."""
        self._optout.set()

    async def finish_opt_out(self, timeout: float) -> bool:
        """Wait (at most `timeout`) for the live connection to clear, then stop; True when
        the retained messages were cleared."""
        self.opt_out()
        if self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ended.wait()
        await self.stop()
        return self._cleared.is_set()

    # -- private -------------------------------------------------------------------------------

    async def _session(self) -> None:
        if self._optout.is_set():
            await asyncio.Future()  # opted out: no new connection; parked until stopped
        try:
            client = await self.link.client()
            async with client:
                self.loop.connected()
                self._on_connected()
                await self._serve(client)
        except Exception as exc:
            if self._optout.is_set():
                self._ended.set()  # could not clear on this connection: the caller will
            if not self._stopping:
                self._on_error(f"{type(exc).__name__}: {exc}")
            raise
        self._ended.set()  # opted out and cleared on this connection
        await asyncio.Future()  # parked until stopped

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Publish and receive until the connection fails (raise that failure) or consent is
        withdrawn (clear the retained messages, return)."""
        session = self.link.session
        if self.remote and session.clients:
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
        ends: set[asyncio.Future[Any]] = {failed, optout}
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
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
        self._cleared.set()
        _LOG.info("cloud sync: cleared %d retained messages on the broker", len(topics))

    async def _receive(self, client: aiomqtt.Client, spawn: Callable[[Any], None]) -> None:
        async for message in client.messages:  # raises MqttError when the connection drops
            payload = message.payload
            if isinstance(payload, (bytes, bytearray)) and self._commands is not None:
                spawn(self._commands(str(message.topic), bytes(payload)))

    async def _publish(self, client: aiomqtt.Client, spawn: Callable[[Any], None]) -> None:
        window = asyncio.Semaphore(self.link.config.max_inflight)
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


async def clear_retained(link: BrokerLink, outbox: Outbox, clock: Clock,
                         wanted: Callable[[], bool], on_error: Callable[[str], None]) -> bool:
    """Publish empty retained messages over every topic the hub retained, on a clean session
    (which also ends the broker's copy of the persistent one). Retried with backoff while
    `wanted()`; True when done."""
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def session() -> None:
        if not wanted():
            done.set_result(False)
            await asyncio.Future()  # parked until stopped
        topics = await outbox.retained_topics()
        published = False
        try:
            client = await link.client(clean=True)
            async with asyncio.timeout(CLEAR_TIMEOUT), client:
                loop.connected()
                for topic in topics:
                    await client.publish(topic, b"", qos=1, retain=True)
                published = True
        except Exception as exc:
            if not published:  # a failed goodbye after every PUBACK still counts as done
                on_error(f"{type(exc).__name__}: {exc}")
                raise
        await outbox.forget_retained(topics)
        _LOG.info("cloud sync: cleared %d retained messages on the broker", len(topics))
        done.set_result(True)
        await asyncio.Future()  # parked until stopped

    loop = ReconnectLoop("cloud sync (clearing)", session, clock=clock,
                         policy=backoff_policy(link.config), is_auth_error=is_auth_error,
                         log=_LOG)
    loop.start()
    try:
        return await done
    finally:
        await loop.stop()


def _purpose() -> contextlib.AbstractContextManager[object]:
    return egress.remote_purpose(CLOUD_SYNC)
