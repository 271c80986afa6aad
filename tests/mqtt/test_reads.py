"""The connection's read path: a burst of messages, read many packets per recv, arrives
whole and in order; the read buffer behaves like the socket under it (short reads, EOF,
would-block)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from integrations.mqtt.connection import (
    READ_SIZE,
    _direct_queue,
    _publish_reader,
    _ReadBuffer,
)
from tests.mqtt.conftest import (
    device_client,
    mqtt_discovered,
    publish_json,
    status,
    subscribed,
    wait_until,
)

SENSOR = {"name": "N", "uniq_id": "b1-n", "stat_t": "b1/n", "unit_of_meas": "W",
          "dev": {"ids": "b1", "name": "Burst"}}


async def test_burst_arrives_whole_and_in_order(hub, broker, api_client) -> None:
    async with device_client(broker) as dev:
        await publish_json(dev, "homeassistant/sensor/b1/n/config", SENSOR)
        item = (await wait_until(lambda: mqtt_discovered(hub)))[0]
        r = await api_client.post(f"/api/discovered/{item.id}/adopt", json={})
        device_id = (await r.json())["device"]["id"]
        await wait_until(lambda: subscribed(hub, "b1/n"))
        # the fast path is in place (fails when aiomqtt or paho move the internals it uses)
        paho = hub.integrations.instance("mqtt").connection.client._client
        assert isinstance(paho._sock, _ReadBuffer)
        assert paho.on_message.__qualname__.startswith("_tune_paho")
        assert paho._handle_publish.__qualname__.startswith("_publish_reader")
        before = status(hub)["stats"]["messages"]
        # 150 x 1 KB without pauses (under the device's flood limit): more than one
        # read's worth, and packets cut at the read's edge
        for k in range(150):
            await dev.publish("b1/n", str(k).ljust(1000), qos=0)
        try:
            await wait_until(lambda: status(hub)["stats"]["messages"] - before == 150, 5)
        except AssertionError:
            raise AssertionError((before, status(hub))) from None
        assert hub.states.value(device_id, "n") == 149
        await dev.publish("b1/n", "150", qos=1)  # paho's own handler (and its PUBACK)
        await wait_until(lambda: hub.states.value(device_id, "n") == 150, 5)
        stats = status(hub)["stats"]
        assert stats["refused_state"] == stats["oversize"] == stats["flood_dropped"] == 0


class _Sock:
    """A non-blocking socket's recv, scripted."""

    def __init__(self, *chunks: bytes | type[BaseException]) -> None:
        self.chunks = list(chunks)
        self.sizes: list[int] = []

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        chunk = self.chunks.pop(0)
        if isinstance(chunk, type):
            raise chunk()
        return chunk

    def fileno(self) -> int:
        return 7


def test_read_buffer_serves_small_reads_from_one_recv() -> None:
    sock = _Sock(b"\x30\x05ab123\x30\x05ab4", BlockingIOError, b"56", b"")
    buf = _ReadBuffer(sock)
    assert [buf.recv(1), buf.recv(1), buf.recv(5)] == [b"\x30", b"\x05", b"ab123"]
    assert buf.pending() == 5 and sock.sizes == [READ_SIZE]
    assert [buf.recv(1), buf.recv(1), buf.recv(5)] == [b"\x30", b"\x05", b"ab4"]  # short
    assert buf.pending() == 0
    with pytest.raises(BlockingIOError):
        buf.recv(2)
    assert buf.recv(2) == b"56"
    assert buf.recv(1) == b""  # end of stream passes through
    assert buf.fileno() == 7


def test_read_buffer_over_a_real_socket() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        buf = _ReadBuffer(b)
        payload = bytes(range(256)) * 600  # more than one READ_SIZE
        a.sendall(payload)
        got = b""
        while len(got) < len(payload):
            try:
                got += buf.recv(1000)
            except BlockingIOError:
                continue
        assert got == payload and buf.pending() == 0


async def test_direct_queue_hands_messages_on_at_once() -> None:
    """The fallback when paho's internals move: aiomqtt's queue delivers as it is filled."""
    got: list[str] = []
    queue = _direct_queue(got.append)(maxsize=0)
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert got == ["a", "b"] and queue.empty()


def _publish_packet(topic: bytes, payload: bytes, qos: int = 0) -> dict[str, Any]:
    """paho's state once it has read a PUBLISH (fixed header byte, then the rest)."""
    mid = b"\x00\x07" if qos else b""
    return {"command": 0x30 | qos << 1, "packet": bytearray(
        len(topic).to_bytes(2, "big") + topic + mid + payload)}


def _paho() -> tuple[mqtt.Client, list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    via_paho: list[tuple[str, bytes]] = []
    client.on_message = lambda _c, _u, m: via_paho.append((m.topic, m.payload))
    return client, via_paho, []


def test_publish_reader_cuts_qos0_out_and_leaves_the_rest_to_paho() -> None:
    client, via_paho, handled = _paho()
    read = _publish_reader(client, client._handle_publish,
                           lambda topic, payload: handled.append((topic, payload)))
    client._in_packet = _publish_packet("zigbee/plug é".encode(), b'{"w": 1.5}')
    assert read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert handled == [("zigbee/plug é", b'{"w": 1.5}')] and not via_paho
    assert type(handled[0][1]) is bytes
    client._in_packet = _publish_packet(b"a/b", b"", qos=0)
    read()
    assert handled[-1] == ("a/b", b"")
    client._in_packet = _publish_packet(b"\xff\xfe", b"x")  # not UTF-8: not handled
    assert read() == MQTTErrorCode.MQTT_ERR_SUCCESS and len(handled) == 2
    client._in_packet = _publish_packet(b"q/1", b"on", qos=1)  # paho acknowledges it
    read()
    assert via_paho == [("q/1", b"on")] and len(handled) == 2
    client._in_packet = _publish_packet(b"", b"x")  # empty topic: paho's refusal
    with pytest.raises(mqtt.MalformedPacket):
        read()
    client._in_packet = {"command": 0x30, "packet": bytearray(b"\x00\x09ab")}  # too short
    with pytest.raises(mqtt.MalformedPacket):
        read()
    assert len(handled) == 2 and len(via_paho) == 1


def test_publish_reader_leaves_debug_logging_and_mqtt5_to_paho() -> None:
    client, via_paho, handled = _paho()
    logger = logging.getLogger("test.mqtt.paho")
    logger.setLevel(logging.DEBUG)
    client.enable_logger(logger)
    read = _publish_reader(client, client._handle_publish,
                           lambda topic, payload: handled.append((topic, payload)))
    client._in_packet = _publish_packet(b"a/b", b"1")
    read()  # paho logs "Received PUBLISH" as it would without the shortcut
    assert via_paho == [("a/b", b"1")] and not handled
    v5 = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    assert _publish_reader(v5, v5._handle_publish, handled.append) == v5._handle_publish
