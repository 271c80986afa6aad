"""The private parts of paho-mqtt and HATasmota the MQTT integration relies on, in one place.

`PRIVATE_PARTS` lists them and `tests/core/test_thirdparty.py` checks each against the
installed versions, so an upgrade that renames one fails a test loudly. At run time a missing
part only costs speed (messages still arrive through aiomqtt's queue) or a timer left to run
out, never a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hub.facade import PrivatePart

READ_SIZE = 65536
MQTT_V5 = 5  # paho's MQTTProtocolVersion.MQTTv5: PUBLISH packets carry properties

PRIVATE_PARTS = (
    PrivatePart("paho.mqtt.client", "Client", "_sock", True,
                "the socket, read through ReadBuffer: one recv for every packet that arrived"),
    PrivatePart("paho.mqtt.client", "Client", "_in_packet", True,
                "a packet half read by paho is left to paho"),
    PrivatePart("paho.mqtt.client", "Client", "_logger", True,
                "with paho's debug logging on, every packet is left to paho"),
    PrivatePart("paho.mqtt.client", "Client", "_protocol", True,
                "MQTT 5 PUBLISH packets carry properties: left to paho"),
    PrivatePart("paho.mqtt.client", "Client", "_last_bytes_received", True,
                "paho's keepalive clock, advanced for the packets read here"),
    PrivatePart("aiomqtt.client", "Client", "_client", True, "aiomqtt's paho client"),
    PrivatePart("hatasmota.entity", "TasmotaEntity", "_cfg", True,
                "an entity's discovery config; HATasmota has no public accessor"),
    PrivatePart("hatasmota.mqtt", "TasmotaMQTTClient", "_pending_messages", True,
                "HATasmota's debounce timers (status polls), cancelled when the broker stops"),
)


def entity_config(entity: Any) -> Any:
    """A HATasmota entity's discovery config."""
    return entity._cfg


def cancel_pending_messages(client: Any) -> None:
    """Cancel a HATasmota MQTT client's debounce timers (they would fire after stop)."""
    for timer in list(getattr(client, "_pending_messages", {}).values()):
        timer.cancel()


class ReadBuffer:
    """paho's socket, read 64 KiB at a time.

    paho reads each packet with three recv calls (type byte, length byte, rest) and handles
    one packet per readiness callback, so a message costs three system calls and a turn of
    the event loop. Behind this buffer one recv brings every packet that has arrived, and
    `pending()` (which aiomqtt's read callback asks, as for TLS) makes it decode them all
    in the same callback."""

    __slots__ = ("_buf", "_inner_pending", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._inner_pending = getattr(sock, "pending", None)  # TLS: decrypted, not read

    def recv(self, size: int) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            data = self._sock.recv(max(size, READ_SIZE))  # BlockingIOError passes through
            if len(data) <= size:
                self._buf, self._pos = b"", 0
                return data
            self._buf, pos = data, 0
        out = self._buf[pos:pos + size]
        self._pos = pos + len(out)
        return out

    def pending(self) -> int:
        inner = self._inner_pending
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def fill(self) -> bool:
        """Read what has arrived unless something is still buffered; False when nothing
        was read (would block, end of stream, an error: paho's own read meets it again)."""
        if self._pos < len(self._buf):
            return True
        try:
            data = self._sock.recv(READ_SIZE)
        except Exception:  # paho reads again and handles it
            return False
        self._buf, self._pos = data, 0
        return bool(data)

    def publish(self) -> tuple[bytes, bytes] | None:
        """The next packet's topic and payload if it is a QoS 0 PUBLISH read whole, taken
        out of the buffer; else None and nothing taken (paho reads it)."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        if end - pos < 5 or buf[pos] & 0xF6 != 0x30:  # type PUBLISH, QoS bits 0
            return None
        length, shift, i = 0, 0, pos + 1
        while True:  # the remaining length: up to four 7-bit bytes
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                break
            shift += 7
            if shift > 21 or i >= end:
                return None
        stop = i + length
        topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1]) if i + 1 < end else end + 1
        if stop > end or topic_end > stop or topic_end == i + 2:  # or an empty topic
            return None
        self._pos = stop
        return buf[i + 2:topic_end], buf[topic_end:stop]

    def __getattr__(self, name: str) -> Any:  # send, fileno, close, ...
        return getattr(self._sock, name)


def tune_paho(client: Any, handle: Callable[[str, bytes], None]) -> None:
    """Under aiomqtt, on its paho client: a ReadBuffer under the socket, and each message
    handed on as paho decodes it (topic and payload, without aiomqtt's Message and Topic
    objects and their checks: ~8 µs a message); a whole QoS 0 PUBLISH (what devices send
    for state) is taken straight from the buffer (packet_reader). All are internals
    of the libraries: if a later version moves them, messages still come through
    _DirectQueue, one recv at a time.
    """
    paho = getattr(client, "_client", None)
    sock = getattr(paho, "_sock", None)
    if sock is None:
        return
    if not isinstance(sock, ReadBuffer):
        paho._sock = ReadBuffer(sock)  # type: ignore[union-attr]

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # MQTT requires UTF-8; aiomqtt would end the session
            return
        handle(topic, message.payload)

    paho.on_message = on_message  # type: ignore[union-attr]
    if isinstance(getattr(paho, "_in_packet", None), dict) and hasattr(paho, "_logger") \
            and getattr(paho, "_protocol", None) != MQTT_V5:
        paho.loop_read = packet_reader(paho, paho._sock, paho.loop_read, handle)  # type: ignore[union-attr]


def packet_reader(paho: Any, buffer: ReadBuffer, original: Callable[[int], Any],
                   handle: Callable[[str, bytes], None]) -> Callable[[int], Any]:
    """paho's loop_read, with every whole QoS 0 PUBLISH already read cut out here.

    For each PUBLISH paho makes three reads into the buffer, builds an MQTTMessage and an
    MQTTMessageInfo, formats a debug log line, takes three locks and matches per-topic
    callbacks (which aiomqtt does not use): ~40 µs a message on the hub's loop. A QoS 0
    PUBLISH (what devices send for state) is a topic and a payload, with no
    acknowledgement and no packet id, so they are handed on from the buffer directly.
    Everything else goes to paho as before: other packets, QoS 1 and 2 (paho answers
    them), a packet not read whole, malformed ones (paho's error), MQTT 5 (properties)
    and all packets while paho's debug logging is on."""
    from paho.mqtt.enums import MQTTErrorCode

    success = MQTTErrorCode.MQTT_ERR_SUCCESS
    debug = logging.DEBUG
    clock = time.monotonic  # paho's clock for keepalive

    def loop_read(max_packets: int = 1) -> Any:
        logger = paho._logger
        if paho._in_packet["command"] or paho._sock is not buffer or paho.on_log is not None \
                or (logger is not None and logger.isEnabledFor(debug)) or not buffer.fill():
            return original(max_packets)
        taken = False
        while (packet := buffer.publish()) is not None:
            taken = True
            try:
                topic = packet[0].decode()
            except UnicodeDecodeError:  # MQTT requires UTF-8; aiomqtt would end the session
                continue
            handle(topic, packet[1])
        if taken:
            paho._last_bytes_received = clock()
            if not buffer.pending():
                return success
        return original(max_packets)

    return loop_read
