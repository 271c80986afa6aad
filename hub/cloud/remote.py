"""A remote client of the hub's cloud sync, written from docs/cloud-sync.md alone.

It is what the owner's phone app would do: read the stream in sequence order dropping
duplicates, keep the retained latest states, and send sealed commands. The tests and the
benchmark use it as the far end; it imports only the wire format (hub.cloud.crypto/topics)
and the hub's aiomqtt fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt

from hub.cloud.crypto import EnvelopeError, Pairing, command_key, open_envelope, seal
from hub.cloud.topics import Topics
from hub.thirdparty import mqtt_client_class

DEDUP_WINDOW = 1_000_000  # seqs this far below the highest seen are forgotten


class CloudPeer:
    """`async with CloudPeer(pairing, host=..., port=...) as peer:` then read `peer.applied`."""

    def __init__(
        self,
        pairing: Pairing,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        identifier: str | None = None,
        persistent: bool = True,
        on_message: Callable[[str, int, Any], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pairing = pairing
        self.keys = pairing.keys()
        self.topics = Topics.of(pairing.prefix, self.keys)
        self._host, self._port = host, port
        self._username, self._password, self._ca = username, password, ca_file
        self.identifier = identifier or f"peer-{uuid.uuid4().hex[:12]}"
        self._persistent = persistent
        self._on_message = on_message
        self._clock = clock
        self.applied: list[dict[str, Any]] = []  # stream bodies, each seq once, in order
        self.applied_seqs: list[int] = []
        self.duplicates = 0
        self.undecryptable = 0
        self.retained: dict[str, Any] = {}  # topic -> latest body (None once cleared)
        self.answers: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, set[int]] = {}
        self._highest: dict[str, int] = {}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._cmd_seq = int(time.time() * 1000)
        self.client_tid: str | None = None
        self._cmd_key: bytes | None = None
        if pairing.client is not None and pairing.client_key is not None:
            self.client_tid = self.keys.opaque("client", pairing.client)
            self._cmd_key = command_key(pairing.client_key)

    async def __aenter__(self) -> CloudPeer:
        tls = None
        if self._ca is not None:
            tls = await asyncio.to_thread(ssl.create_default_context, cafile=self._ca)
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if self._persistent else 0
        self._client = mqtt_client_class()(  # (a cancelled connect cleans up)
            self._host, self._port, username=self._username, password=self._password,
            identifier=self.identifier, protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self._persistent, properties=props, tls_context=tls, timeout=10,
        )
        await self._client.__aenter__()
        await self._client.subscribe(self.topics.everything, qos=1)
        self._task = asyncio.create_task(self._read(), name=f"peer-{self.identifier}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    # -- reading ----------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            payload = message.payload
            self.receive(str(message.topic), bytes(payload) if isinstance(
                payload, (bytes, bytearray)) else b"", bool(message.retain))

    def receive(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Apply one message as the spec says (public so a test can feed raw messages)."""
        base = self.topics.base + "/"
        if not topic.startswith(base):
            return
        rest = topic[len(base):]
        if rest.startswith("c/"):
            return  # commands to the hub (ours, echoed back by the broker)
        if payload == b"":
            self.retained[topic] = None  # a cleared retained message
            self._changed.set()
            return
        key = self.keys.enc
        if rest.startswith("a/"):
            if self._cmd_key is None or rest != f"a/{self.client_tid}":
                return
            key = self._cmd_key
        try:
            seq, body = open_envelope(key, self.keys.hub_id, topic, payload)
        except EnvelopeError:
            self.undecryptable += 1
            return
        seen = self._seen.setdefault(topic, set())
        if seq in seen:
            self.duplicates += 1
            return
        seen.add(seq)
        high = max(self._highest.get(topic, 0), seq)
        self._highest[topic] = high
        if len(seen) > 2 * DEDUP_WINDOW:
            self._seen[topic] = {s for s in seen if s > high - DEDUP_WINDOW}
        if rest == "s":
            self.applied.append(body)
            self.applied_seqs.append(seq)
        elif rest.startswith("a/"):
            self.answers[body.get("id")] = body
        else:
            self.retained[topic] = body
        if self._on_message is not None:
            self._on_message(topic, seq, body)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `predicate()` holds (checked after every applied message)."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def device_state(self, device_id: str) -> Any:
        return self.retained.get(self.topics.device_state(self.keys.opaque("device", device_id)))

    # -- commands -----------------------------------------------------------------------------

    def seal_command(self, device: str, command: str, params: dict[str, Any] | None = None, *,
                     cmd_id: str | None = None, ts: float | None = None) -> tuple[str, str, bytes]:
        """(id, topic, payload) of a sealed command, for sending now or replaying later."""
        if self._cmd_key is None or self.client_tid is None:
            raise RuntimeError("this pairing code has no remote client key")
        cmd_id = cmd_id or uuid.uuid4().hex
        topic = self.topics.commands(self.client_tid)
        self._cmd_seq += 1
        body = {"id": cmd_id, "ts": self._clock() if ts is None else ts, "device": device,
                "command": command, "params": params or {}}
        return cmd_id, topic, seal(self._cmd_key, self.keys.hub_id, topic, self._cmd_seq, body)

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1)

    async def command(self, device: str, command: str, params: dict[str, Any] | None = None,
                      *, within: float = 10.0) -> dict[str, Any]:
        """Send a command and wait for the hub's answer."""
        cmd_id, topic, payload = self.seal_command(device, command, params)
        await self.publish_raw(topic, payload)
        await self.wait_for(lambda: cmd_id in self.answers, within)
        return self.answers[cmd_id]
