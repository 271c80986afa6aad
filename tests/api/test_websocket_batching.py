"""The websocket's writer: what is ready in one turn of the loop goes out in one write, every
message still its own frame (or array, coalescing); a client that lags gets the rest through
the pump, whole and in order, without holding up the others; one that reads nothing is
dropped once a send waited SEND_TIMEOUT."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hub.api.routes import websocket
from hub.bus import StateChanged
from hub.hub import Hub
from tests.api.test_websocket import TIMEOUT, events, ready, receive, subscribe

BIG = "x" * 32_000  # events this size fill the socket's buffers within a few hundred


def _publish(hub: Hub, device_id: str, i: int, new: object) -> None:
    hub.bus.publish(StateChanged(device_id, "value", i, new, 0.0))


@contextlib.asynccontextmanager
async def _slow_and_fine(api_client: Any) -> AsyncIterator[tuple[Any, Any]]:
    """Two clients: one subscribed to virtual.temp (big frames allowed), one to the lamp."""
    async with api_client.ws_connect("/api/ws", max_msg_size=1 << 20) as slow, \
            api_client.ws_connect("/api/ws") as fine:
        await ready(slow)
        await ready(fine)
        await subscribe(slow, devices=["virtual.temp"])
        await subscribe(fine, devices=["virtual.lamp"])
        yield slow, fine


async def test_a_burst_is_one_write_per_batch_in_order(api_client, hub: Hub,
                                                        monkeypatch) -> None:
    writes: list[int] = []  # messages (or coalesced arrays) per write to the socket
    frames = websocket._frames
    monkeypatch.setattr(websocket, "_frames", lambda texts: (writes.append(len(texts)),
                                                             frames(texts))[1])
    n = websocket.BURST + 44
    async with api_client.ws_connect("/api/ws") as plain, \
            api_client.ws_connect("/api/ws") as packed:
        await ready(plain)
        await ready(packed)
        await packed.send_json({"type": "features", "coalesce": True})
        assert (await receive(packed))["coalesce"] is True
        await subscribe(plain, devices=["virtual.temp"])
        await subscribe(packed, devices=["virtual.temp"])
        writes.clear()
        for i in range(n):  # all in one turn of the loop
            _publish(hub, "virtual.temp", i, i + 1)
        got = await events(plain, n)  # (each frame one message: `events` checks)
        assert [e["new"] for e in got] == list(range(1, n + 1))
        messages: list[dict] = []
        while len(messages) < n:
            body = await receive(packed)
            assert isinstance(body, list), body
            messages.extend(body)
        assert [m["event"]["new"] for m in messages] == list(range(1, n + 1))
        # plain: BURST frames then the rest; coalescing: one array each time
        assert sorted(writes) == [1, 1, n - websocket.BURST, websocket.BURST], writes


async def test_a_lagging_client_gets_everything_in_order_and_stalls_no_one(
        api_client, hub: Hub, monkeypatch) -> None:
    pumped: list[int] = []
    write = websocket.Connection._write

    async def counted(self: websocket.Connection, texts: list[str]) -> None:
        pumped.append(len(texts))
        await write(self, texts)

    monkeypatch.setattr(websocket.Connection, "_write", counted)
    n = 600  # under auth.ws_queue_size: nothing may be dropped
    async with _slow_and_fine(api_client) as (lagging, fine):
        pumped.clear()
        for i in range(n):  # the lagging client reads none of these yet
            _publish(hub, "virtual.temp", i, f"{i}:{BIG}")
            if i % 20 == 19:  # meanwhile the other client is served at once
                _publish(hub, "virtual.lamp", i, i)
                assert (await events(fine, 1))[0]["new"] == i
        assert pumped, "the socket never filled: the pump was not exercised"
        got = [int(e["new"].split(":")[0]) for e in await events(lagging, n)]
        assert got == list(range(n))
        _publish(hub, "virtual.temp", n, "after")  # caught up: straight writes again
        assert (await events(lagging, 1))[0]["new"] == "after"


async def test_a_client_that_reads_nothing_is_dropped(api_client, hub: Hub,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(websocket, "SEND_TIMEOUT", 0.5)
    async with _slow_and_fine(api_client) as (stuck, fine):
        for i in range(900):  # more than the socket's buffers hold, under the queue's size
            _publish(hub, "virtual.temp", i, f"{i}:{BIG}")
            if i % 100 == 99:
                await asyncio.sleep(0)
        await asyncio.sleep(1.0)  # the pump's send waits past SEND_TIMEOUT
        _publish(hub, "virtual.lamp", 1, 2)
        assert (await events(fine, 1))[0]["new"] == 2
        closed = None
        for _ in range(1000):
            msg = await asyncio.wait_for(stuck.receive(), TIMEOUT)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                closed = msg
                break
        assert closed is not None and closed.data == websocket.CLOSE_SLOW, closed
        assert "send timed out" in closed.extra
