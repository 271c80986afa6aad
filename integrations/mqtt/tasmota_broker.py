"""hatasmota's MQTT client interface (TasmotaMQTTClient's subscribe/unsubscribe/publish) on
the MQTT integration's one broker connection.

Subscriptions are shared by topic (one SUBSCRIBE however many entities want a topic; a late
subscriber gets the topic's last message, as the broker sends a retained copy only once);
hatasmota's coroutine callbacks run one at a time in arrival order; what a command publishes
is recorded for its answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from hatasmota.mqtt import ReceiveMessage, TasmotaMQTTClient
from paho.mqtt.client import topic_matches_sub

from hub.facade import DeviceUnavailable

from .thirdparty import cancel_pending_messages

# what a command publishes: the command's task sets a list, its publishes go in it
RECORDING: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "tasmota_recording", default=None)


@dataclass(slots=True)
class _Sub:
    owner: str
    topic: str
    callback: Callable[[ReceiveMessage], Any]


class Broker:
    """hatasmota's MQTT client interface on the integration's connection: subscriptions
    (shared by topic, a late subscriber gets the topic's last message as a retained copy
    would come), publishes, and hatasmota's coroutine callbacks run in arrival order."""

    def __init__(self, subscribe: Callable[[str], None], unsubscribe: Callable[[str], None],
                 publish: Callable[[str, str, int, bool], Awaitable[None]],
                 refuse: Callable[[str], None], log: logging.Logger) -> None:
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._publish_raw = publish
        self._refuse = refuse  # hatasmota failed on what a device sent
        self._log = log
        self.subs: dict[str, list[_Sub]] = {}  # topic filter -> subscriptions
        self._wild: list[str] = []  # filters with + or #
        self._prefixes: tuple[str, ...] = ()  # what the `.../#` ones start with
        self._any_plus = False
        self._last: dict[str, bytes] = {}
        self._jobs: deque[Coroutine[Any, Any, Any]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._clients: dict[str, TasmotaMQTTClient] = {}  # owner -> its client

    def client(self, owner: str) -> TasmotaMQTTClient:
        """The hatasmota client whose subscriptions belong to `owner` (a device's MAC, or
        "discovery"); one per owner, kept while the integration runs."""
        c = self._clients.get(owner)
        if c is None:
            c = self._clients[owner] = TasmotaMQTTClient(
                self._publish, partial(self._subscribe_topics, owner), self._unsubscribe_topics)
        return c

    def topics(self) -> list[str]:
        return list(self.subs)

    def matches(self, topic: str) -> list[_Sub] | None:
        """The subscriptions a topic reaches (None: none; every MQTT message asks this, so a
        topic outside the wildcards' prefixes costs one lookup and one startswith)."""
        found = self.subs.get(topic)
        if self._wild and (self._any_plus or topic.startswith(self._prefixes)):
            for pattern in self._wild:
                if topic_matches_sub(pattern, topic):
                    found = [*(found or ()), *self.subs[pattern]]
        return found

    def dispatch(self, subs: list[_Sub], topic: str, payload: bytes) -> None:
        self._last[topic] = payload
        self._deliver(subs, topic, payload)

    async def stop(self) -> None:
        for c in self._clients.values():  # hatasmota's debounce timers (status polls)
            cancel_pending_messages(c)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._jobs:
            self._jobs.popleft().close()

    # hatasmota's interface

    async def _publish(self, topic: str, payload: Any, qos: int | None = 0,
                       retain: bool | None = False) -> None:
        text = "" if payload is None else (payload.decode() if isinstance(payload, bytes)
                                           else str(payload))
        recording = RECORDING.get()
        if recording is not None:
            recording.append((topic, text))
        try:
            await self._publish_raw(topic, text, qos or 0, bool(retain))
        except DeviceUnavailable:
            if recording is not None:
                raise  # a command: the owner is told
            self._log.debug("Tasmota status poll on %s not sent: the broker is not connected",
                            topic[:120])

    async def _subscribe_topics(self, owner: str, state: dict[str, _Sub] | None,
                                topics: dict[str, dict[str, Any]]) -> dict[str, _Sub]:
        old = dict(state or {})
        new: dict[str, _Sub] = {}
        fresh: list[_Sub] = []
        for name, spec in topics.items():
            sub = old.pop(name, None)
            if sub is not None and sub.topic == spec["topic"]:
                sub.callback = spec["msg_callback"]  # same subscription, a new closure
            else:
                if sub is not None:
                    old[name] = sub
                sub = _Sub(owner, spec["topic"], spec["msg_callback"])
                fresh.append(sub)
            new[name] = sub
        self._drop(old.values())
        for sub in fresh:
            subs = self.subs.setdefault(sub.topic, [])
            if not subs:
                if "+" in sub.topic or "#" in sub.topic:
                    self._wild.append(sub.topic)
                    self._index_wild()
                self._subscribe(sub.topic)
            subs.append(sub)
            last = self._last.get(sub.topic)
            if last is not None:  # the broker sends a retained copy only once
                self._deliver([sub], sub.topic, last)
        return new

    async def _unsubscribe_topics(self, state: dict[str, _Sub] | None) -> dict[str, _Sub]:
        self._drop((state or {}).values())
        return {}

    def _drop(self, subs: Any) -> None:
        for sub in list(subs):
            listed = self.subs.get(sub.topic, [])
            if sub in listed:
                listed.remove(sub)
            if not listed and sub.topic in self.subs:
                del self.subs[sub.topic]
                if sub.topic in self._wild:
                    self._wild.remove(sub.topic)
                    self._index_wild()
                self._last.pop(sub.topic, None)
                self._unsubscribe(sub.topic)

    def _index_wild(self) -> None:
        self._any_plus = any("+" in w for w in self._wild)
        self._prefixes = tuple(w[:-1] for w in self._wild if w.endswith("#"))

    def _deliver(self, subs: list[_Sub], topic: str, payload: bytes) -> None:
        msg = ReceiveMessage(topic, payload.decode("utf-8", errors="replace"), 0, False)
        for sub in subs:
            try:
                result = sub.callback(msg)
            except Exception as exc:  # hatasmota on a payload it cannot read
                self._failed(f"{topic[:120]}: {type(exc).__name__}: {exc}")
                continue
            if inspect.iscoroutine(result):
                self._jobs.append(result)
                if self._worker is None or self._worker.done():
                    self._worker = asyncio.get_running_loop().create_task(
                        self._work(), name="mqtt:tasmota")

    async def _work(self) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            try:
                await job
            except Exception as exc:
                self._failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, detail: str) -> None:
        """hatasmota raised on a message: counted as refused input, the traceback at debug
        (hatasmota reads what devices send without checking its shape)."""
        self._log.debug("hatasmota failed: %s", detail, exc_info=True)
        self._refuse(detail)
