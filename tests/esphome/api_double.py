"""A small ESPHome native-API device for what the Linux firmware build cannot do.

The host build has no encryption (noise-c comes from PlatformIO's registry) and no
`bluetooth_proxy:`. This device speaks the same wire protocol, built from the same pieces a
real device's protocol is defined by: aioesphomeapi's protobuf messages (api_pb2, generated
from ESPHome's api.proto) and its message-type table, plaintext framing (0x00, varint length,
varint type) or Noise_NNpsk0_25519_ChaChaPoly_SHA256 as the responder, with the noiseprotocol
library, the prologue and the hello/handshake frames ESPHome's api_frame_helper_noise.cpp
sends (a wrong key answers "Handshake MAC failure", as the firmware does). On top: a switch
and a sensor, optionally a light and a cover, an entity type the hub does not know (camera),
a Bluetooth proxy that streams raw advertisement batches and connection slots, floods, bad
values, a mode that stalls in the middle of the handshake and one that closes every
connection at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aioesphomeapi import api_pb2 as pb
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from noise.connection import NoiseConnection

TYPE_OF = {cls: num for num, cls in MESSAGE_TYPE_TO_PROTO.items()}
PROLOGUE = b"NoiseAPIInit\x00\x00"
SWITCH_KEY, SENSOR_KEY, CAMERA_KEY, LIGHT_KEY, COVER_KEY = 101, 102, 103, 104, 105


@dataclass
class ApiDevice:
    """One device: listen with `start()`, stop with `stop()` (connections dropped)."""

    name: str = "uone-proxy"
    mac: str = "0C:8B:95:11:22:33"
    key: str | None = None  # base64 PSK: encrypted API
    proxy: bool = False
    unknown_entity: bool = False
    light_and_cover: bool = False  # also a dimmable light and a cover with a position
    stall: bool = False  # accept, read, never answer: a handshake that never ends
    refuse: bool = False  # accept and close at once: every connection attempt fails
    slots: tuple[int, int] = (3, 3)
    host: str = "127.0.0.1"
    port: int = 0
    switch_on: bool = False
    sensor: float = 21.0
    commands: list[Any] = field(default_factory=list)
    attempts: int = 0  # connections accepted (refused ones too)
    _server: asyncio.Server | None = None
    _peers: set[_Peer] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def start_again(self) -> None:
        """Listen again on the same port (a reboot)."""
        await self.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            tasks = [peer.task for peer in self._peers if peer.task is not None]
            for peer in list(self._peers):
                peer.close()
            await asyncio.gather(*tasks, return_exceptions=True)  # they end at EOF
            await self._server.wait_closed()
            self._server = None

    async def advertise(self, batch: list[tuple[str, int, bytes]]) -> None:
        """Send one raw advertisement batch [(address, rssi, AD bytes)] to subscribers."""
        msg = pb.BluetoothLERawAdvertisementsResponse(advertisements=[
            pb.BluetoothLERawAdvertisement(address=int(a.replace(":", ""), 16), rssi=r,
                                           address_type=0, data=d) for a, r, d in batch])
        for peer in list(self._peers):
            if peer.ble:
                await peer.send(msg)

    async def set_slots(self, free: int, limit: int, allocated: tuple[int, ...] = ()) -> None:
        """The proxy's connection slots changed: tell the subscribers, as the firmware does."""
        self.slots = (free, limit)
        msg = pb.BluetoothConnectionsFreeResponse(free=free, limit=limit,
                                                  allocated=list(allocated))
        for peer in list(self._peers):
            if peer.slots:
                await peer.send(msg)

    async def push_states(self, states: list[Any]) -> None:
        """Send state messages (a flood, a bad value...) to every subscribed client."""
        for peer in list(self._peers):
            if peer.states:
                await peer.send_many(states)

    @property
    def connected(self) -> int:
        return sum(1 for p in self._peers if p.ready)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        self.attempts += 1
        if self.refuse:
            writer.close()
            return
        peer = _Peer(self, reader, writer)
        self._peers.add(peer)
        try:
            await peer.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._peers.discard(peer)
            peer.close()


class _Peer:
    def __init__(self, device: ApiDevice, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.d = device
        self.reader = reader
        self.writer = writer
        self.noise: NoiseConnection | None = None
        self.ready = False
        self.states = False
        self.ble = False
        self.slots = False
        self._first = b""  # a byte read ahead to tell plaintext from Noise
        self.task = asyncio.current_task()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def run(self) -> None:
        if self.d.stall:  # read everything, answer nothing, until the connection ends
            while await self.reader.read(1 << 16):
                pass
            return
        first = await self.reader.readexactly(1)
        if (first == b"\x01") != (self.d.key is not None):
            # the wrong protocol: answer as the firmware's frame helpers do, then close
            if self.d.key is not None:  # plaintext client: a Noise reject frame
                reject = b"\x01Bad indicator byte"
                self.writer.write(bytes((0x01, 0, len(reject))) + reject)
            else:  # Noise client: a plaintext frame header
                self.writer.write(b"\x00\x00\x00")
            await self.writer.drain()
            return
        self._first = first
        if self.d.key is not None:
            if not await self._handshake():
                return
        self.ready = True
        while True:
            msg = await self._read()
            if not await self._handle(msg):
                return

    # -- framing ----------------------------------------------------------------------------

    async def _read(self) -> Any:
        if self.noise is None:
            first, self._first = self._first or await self.reader.readexactly(1), b""
            if first != b"\x00":
                raise ConnectionError("not a plaintext frame")
            length, mtype = await self._varint(), await self._varint()
            data = await self.reader.readexactly(length)
        else:
            frame = await self._noise_frame()
            plain = self.noise.decrypt(frame)
            mtype, length = (plain[0] << 8) | plain[1], (plain[2] << 8) | plain[3]
            data = plain[4:4 + length]
        cls = MESSAGE_TYPE_TO_PROTO.get(mtype)
        if cls is None:
            return None
        msg = cls()
        msg.ParseFromString(data)
        return msg

    async def _varint(self) -> int:
        shift = result = 0
        while True:
            b = (await self.reader.readexactly(1))[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    async def _noise_frame(self) -> bytes:
        header = self._first + await self.reader.readexactly(3 - len(self._first))
        self._first = b""
        if header[0] != 0x01:
            raise ConnectionError("not a noise frame")
        return await self.reader.readexactly((header[1] << 8) | header[2])

    def _frame(self, msg: Any) -> bytes:
        data = msg.SerializeToString()
        mtype = TYPE_OF[type(msg)]
        if self.noise is None:
            return b"\x00" + _varint(len(data)) + _varint(mtype) + data
        sealed = self.noise.encrypt(bytes((mtype >> 8, mtype & 0xFF, len(data) >> 8,
                                           len(data) & 0xFF)) + data)
        return bytes((0x01, len(sealed) >> 8, len(sealed) & 0xFF)) + sealed

    async def send(self, msg: Any) -> None:
        self.writer.write(self._frame(msg))
        await self.writer.drain()

    async def send_many(self, msgs: list[Any]) -> None:
        self.writer.write(b"".join(self._frame(m) for m in msgs))
        await self.writer.drain()

    async def _handshake(self) -> bool:
        """Responder side of ESPHome's Noise handshake; False when the key is wrong."""
        hello = await self._noise_frame()  # the client's (empty) hello
        del hello
        client_msg = await self._noise_frame()
        proto = NoiseConnection.from_name(b"Noise_NNpsk0_25519_ChaChaPoly_SHA256")
        proto.set_as_responder()
        proto.set_psks(base64.b64decode(self.d.key or ""))
        proto.set_prologue(PROLOGUE)
        proto.start_handshake()
        server_hello = b"\x01" + self.d.name.encode() + b"\0" + self.d.mac.replace(
            ":", "").lower().encode() + b"\0"
        self.writer.write(bytes((0x01, 0, len(server_hello))) + server_hello)
        try:
            proto.read_message(client_msg[1:])
        except Exception:
            fail = b"\x01Handshake MAC failure"
            self.writer.write(bytes((0x01, 0, len(fail))) + fail)
            await self.writer.drain()
            return False
        reply = b"\x00" + proto.write_message()
        self.writer.write(bytes((0x01, len(reply) >> 8, len(reply) & 0xFF)) + reply)
        await self.writer.drain()
        self.noise = proto
        return True

    # -- messages ---------------------------------------------------------------------------

    async def _handle(self, msg: Any) -> bool:
        d = self.d
        if isinstance(msg, pb.HelloRequest):
            await self.send(pb.HelloResponse(api_version_major=1, api_version_minor=12,
                                             server_info="api double", name=d.name))
        elif isinstance(msg, pb.DeviceInfoRequest):
            await self.send(pb.DeviceInfoResponse(
                name=d.name, friendly_name=d.name.replace("-", " ").title(),
                mac_address=d.mac, esphome_version="2026.6.5", model="esp32dev",
                manufacturer="Espressif",
                bluetooth_proxy_feature_flags=0b11 if d.proxy else 0,
                api_encryption_supported=True))
        elif isinstance(msg, pb.ListEntitiesRequest):
            entities: list[Any] = [
                pb.ListEntitiesSwitchResponse(object_id="relay", key=SWITCH_KEY,
                                              name="Relay"),
                pb.ListEntitiesSensorResponse(object_id="temperature", key=SENSOR_KEY,
                                              name="Temperature", unit_of_measurement="°C",
                                              device_class="temperature", state_class=1,
                                              accuracy_decimals=1)]
            if d.light_and_cover:
                entities += [
                    pb.ListEntitiesLightResponse(object_id="lamp", key=LIGHT_KEY, name="Lamp",
                                                 supported_color_modes=[3]),  # brightness
                    pb.ListEntitiesCoverResponse(object_id="blind", key=COVER_KEY,
                                                 name="Blind", supports_position=True)]
            if d.unknown_entity:
                entities.append(pb.ListEntitiesCameraResponse(object_id="doorbell",
                                                               key=CAMERA_KEY,
                                                               name="Doorbell"))
            await self.send_many([*entities, pb.ListEntitiesDoneResponse()])
        elif isinstance(msg, pb.SubscribeStatesRequest):
            self.states = True
            await self.send_many([pb.SwitchStateResponse(key=SWITCH_KEY, state=d.switch_on),
                                  pb.SensorStateResponse(key=SENSOR_KEY, state=d.sensor)])
        elif isinstance(msg, pb.SwitchCommandRequest):
            d.commands.append(msg)
            d.switch_on = msg.state
            await self.send(pb.SwitchStateResponse(key=SWITCH_KEY, state=d.switch_on))
        elif isinstance(msg, pb.SubscribeBluetoothLEAdvertisementsRequest):
            self.ble = True
        elif isinstance(msg, pb.UnsubscribeBluetoothLEAdvertisementsRequest):
            self.ble = False
        elif isinstance(msg, pb.SubscribeBluetoothConnectionsFreeRequest):
            self.slots = True
            await self.send(pb.BluetoothConnectionsFreeResponse(free=d.slots[0],
                                                                limit=d.slots[1]))
        elif isinstance(msg, pb.PingRequest):
            await self.send(pb.PingResponse())
        elif isinstance(msg, pb.DisconnectRequest):
            await self.send(pb.DisconnectResponse())
            return False
        return True


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ad_structure(ad_type: int, payload: bytes) -> bytes:
    """One AD structure of advertising data (length, type, payload)."""
    return bytes((len(payload) + 1, ad_type)) + payload


def bthome_advertising_data(name: str, service_data: bytes) -> bytes:
    """Advertising data as a BTHome sensor sends it: flags, name, service data 0xFCD2."""
    return (ad_structure(0x01, b"\x06") + ad_structure(0x09, name.encode())
            + ad_structure(0x16, b"\xd2\xfc" + service_data))
