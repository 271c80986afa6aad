"""The connection's read path: a burst of messages, read many packets per recv, arrives
whole and in order; the read buffer behaves like the socket under it (short reads, EOF,
would-block)."""

from __future__ import annotations

import logging
import socket

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from integrations.mqtt.connection import _direct_queue
from integrations.mqtt.thirdparty import (
    READ_SIZE,
    ReadBuffer,
    packet_reader,
    tune_paho,
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
        assert isinstance(paho._sock, ReadBuffer)
        assert paho.on_message.__qualname__.startswith("tune_paho")
        assert paho.loop_read.__qualname__.startswith("packet_reader")
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
    buf = ReadBuffer(sock)
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
        buf = ReadBuffer(b)
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


def _publish(topic: bytes, payload: bytes, qos: int = 0, retain: bool = False) -> bytes:
    """A whole PUBLISH packet as it comes off the wire (MQTT 3.1.1)."""
    body = len(topic).to_bytes(2, "big") + topic + (b"\x00\x07" if qos else b"") + payload
    n, length = len(body), bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | (0x80 if n else 0))
        if not n:
            break
    return bytes((0x30 | qos << 1 | retain,)) + bytes(length) + body


class _Paho:
    """A paho client on one end of a socketpair, read through ReadBuffer and
    packet_reader as tune_paho sets them up; messages from either way are recorded."""

    def __init__(self, protocol: int = mqtt.MQTTv311) -> None:
        self.peer, self.sock = socket.socketpair()
        self.sock.setblocking(False)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.via_paho: list[tuple[str, bytes]] = []
        self.fast: list[tuple[str, bytes]] = []
        self.client.on_message = lambda _c, _u, m: self.via_paho.append((m.topic, m.payload))
        self.client._sock = ReadBuffer(self.sock)  # type: ignore[assignment]
        self.read = packet_reader(self.client, self.client._sock, self.client.loop_read,
                                   lambda topic, payload: self.fast.append((topic, payload)))

    def feed(self, data: bytes) -> None:
        """Send data and read it as aiomqtt's read callback does."""
        self.peer.sendall(data)
        while True:
            self.read()
            if not self.client._sock.pending():  # type: ignore[union-attr]
                break

    def close(self) -> None:
        self.peer.close()
        self.sock.close()


def testpacket_reader_takes_whole_qos0_publishes_and_leaves_the_rest_to_paho() -> None:
    p = _Paho()
    try:
        big = bytes(range(256)) * 40  # a 10 KB payload: a two-byte remaining length
        p.feed(_publish("zigbee/plug é".encode(), b'{"w": 1.5}') + _publish(b"a/b", b"")
               + _publish(b"r/t", big, retain=True))
        assert p.fast == [("zigbee/plug é", b'{"w": 1.5}'), ("a/b", b""), ("r/t", big)]
        assert all(type(payload) is bytes for _, payload in p.fast) and not p.via_paho
        p.feed(_publish(b"\xff\xfe", b"x"))  # not UTF-8: not handled
        p.feed(_publish(b"q/1", b"on", qos=1))  # paho decodes and acknowledges it
        assert p.via_paho == [("q/1", b"on")] and len(p.fast) == 3
        assert p.peer.recv(16) == b"\x40\x02\x00\x07"  # paho's PUBACK
        # a packet cut by the read: paho reads it whole, then the shortcut goes on
        packet = _publish(b"cut", b"1234567890")
        p.peer.sendall(packet[:6])
        p.read()
        p.feed(packet[6:] + _publish(b"next", b"2"))
        assert p.via_paho[-1] == ("cut", b"1234567890") and p.fast[-1] == ("next", b"2")
        # an empty topic: paho's refusal (the connection ends)
        p.peer.sendall(_publish(b"", b"x"))
        assert p.read() == MQTTErrorCode.MQTT_ERR_PROTOCOL and p.client._sock is None
    finally:
        p.close()


def testpacket_reader_leaves_debug_logging_and_mqtt5_to_paho() -> None:
    p = _Paho()
    try:
        logger = logging.getLogger("test.mqtt.paho")
        logger.setLevel(logging.DEBUG)
        p.client.enable_logger(logger)
        p.feed(_publish(b"a/b", b"1"))  # paho logs "Received PUBLISH" as without the shortcut
        assert p.via_paho == [("a/b", b"1")] and not p.fast
    finally:
        p.close()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client._sock = socket.socket()  # type: ignore[assignment]
    try:
        tune_paho(type("Aiomqtt", (), {"_client": client})(), lambda t, p: None)
        assert client.loop_read.__qualname__ == "Client.loop_read"  # paho's own
    finally:
        client._sock.close()  # type: ignore[union-attr]
