"""The hub's side of the Uone BLE provisioning protocol (integrations/uone/PROTOCOL.md §3-4).

A session over bleak: read the device's certificate chain, have it sign a fresh nonce, and,
only after the caller has verified the attestation, send Wi-Fi credentials sealed to the
certified key (ephemeral ECDH P-256, HKDF-SHA256, AES-256-GCM). Everything the device sends
is checked; garbage is a `ProtocolError` naming what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SERVICE_UUID = "7d3e0001-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
RX_UUID = "7d3e0002-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
TX_UUID = "7d3e0003-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
MAX_MESSAGE = 8192
MAX_FRAGMENT = 512
FRAGMENT_PAYLOAD = 19  # MTU 23 - 3 (ATT) - 1 (our header)
LAST = 0x80

GET_INFO, INFO = 0x01, 0x81
ATTEST, ATTESTATION = 0x02, 0x82
SET_WIFI, WIFI_STATUS = 0x03, 0x83
FORGET, FORGOTTEN = 0x04, 0x84
ERROR = 0x7F
WIFI_CONTEXT = b"uone-wifi-v1\0"


class ProtocolError(Exception):
    """The device sent something that is not the protocol (or nothing in time)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class DeviceRefused(Exception):
    """The device reported a Wi-Fi failure (e.g. the network refused the password)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    did: str
    mac: str
    model: str
    fw: str
    chain: tuple[bytes, ...]


def fragments(msg_type: int, body: dict[str, Any], size: int = FRAGMENT_PAYLOAD) -> list[bytes]:
    """Cut one message into GATT values (PROTOCOL.md §4 Framing)."""
    data = bytes([msg_type]) + json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too large")
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [bytes([(i & 0x7F) | (LAST if i == len(chunks) - 1 else 0)]) + c
            for i, c in enumerate(chunks)]


class Reassembler:
    """Collects fragments into messages; raises ProtocolError on anything malformed."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._next = 0

    def feed(self, value: bytes) -> tuple[int, dict[str, Any]] | None:
        if not value or len(value) > MAX_FRAGMENT:
            self._reset()
            raise ProtocolError("protocol_error", f"bad fragment of {len(value)} bytes")
        header, payload = value[0], value[1:]
        if header & 0x7F != self._next:
            expected = self._next
            self._reset()
            raise ProtocolError("protocol_error",
                                f"fragment {header & 0x7F} out of order (expected {expected})")
        self._buf += payload
        if len(self._buf) > MAX_MESSAGE:
            self._reset()
            raise ProtocolError("protocol_error", f"message over {MAX_MESSAGE} bytes")
        self._next = (self._next + 1) & 0x7F
        if not header & LAST:
            return None
        data = bytes(self._buf)
        self._reset()
        if not data:
            raise ProtocolError("protocol_error", "empty message")
        try:
            body = json.loads(data[1:].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError("protocol_error",
                                f"message 0x{data[0]:02x} does not carry a JSON body") from None
        if not isinstance(body, dict):
            raise ProtocolError("protocol_error", f"message 0x{data[0]:02x} body is not an object")
        return data[0], body

    def _reset(self) -> None:
        self._buf.clear()
        self._next = 0


def seal_wifi(device_public: ec.EllipticCurvePublicKey, nonce: bytes, hub_id: str, did: str,
              credentials: dict[str, str]) -> dict[str, str]:
    """The SET_WIFI body: credentials readable only with the certified private key."""
    eph = ec.generate_private_key(ec.SECP256R1())
    shared = eph.exchange(ec.ECDH(), device_public)
    key = HKDF(hashes.SHA256(), 32, salt=nonce,
               info=WIFI_CONTEXT + hub_id.encode() + b"\0" + did.encode()).derive(shared)
    iv = os.urandom(12)
    ct = AESGCM(key).encrypt(iv, json.dumps(credentials).encode(), WIFI_CONTEXT + did.encode())
    epk = eph.public_key().public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
    return {"epk": _b64(epk), "iv": _b64(iv), "ct": _b64(ct)}


class UoneBleSession:
    """One provisioning conversation with a Uone device over an open BleakClient."""

    def __init__(self, client: Any, timeout: float = 15.0) -> None:
        self._client = client
        self._timeout = timeout
        self._rx = Reassembler()
        self._inbox: asyncio.Queue[tuple[int, dict[str, Any]] | ProtocolError] = asyncio.Queue()

    async def start(self) -> None:
        await self._client.start_notify(TX_UUID, self._on_notify)

    def disconnected(self) -> None:
        """The link dropped (bleak's disconnected callback): whoever waits learns it now."""
        self._inbox.put_nowait(ProtocolError("connection_lost",
                                             "the device dropped the Bluetooth link"))

    async def info(self) -> DeviceInfo:
        _, body = await self._request(GET_INFO, {}, INFO)
        chain = body.get("chain")
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
            raise ProtocolError("protocol_error", "INFO.chain must be a list of base64 strings")
        if len(chain) > 8:
            raise ProtocolError("chain_too_long", f"the device sent {len(chain)} certificates")
        return DeviceInfo(
            did=_str(body, "did"), mac=_str(body, "mac"), model=_str(body, "model", ""),
            fw=_str(body, "fw", ""), chain=tuple(_unb64(c, "INFO.chain") for c in chain),
        )

    async def attest(self, nonce: bytes, hub_id: str) -> bytes:
        _, body = await self._request(ATTEST, {"nonce": _b64(nonce), "hub_id": hub_id},
                                      ATTESTATION)
        return _unb64(_str(body, "sig"), "ATTESTATION.sig")

    async def send_wifi(self, sealed: dict[str, str],
                        on_status: Callable[[str], None] | None = None,
                        join_timeout: float = 60.0) -> str | None:
        """Send SET_WIFI and follow WIFI_STATUS until joined (returns its ip) or failed."""
        await self._send(SET_WIFI, sealed)
        deadline = asyncio.get_running_loop().time() + join_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            _, body = await self._receive(WIFI_STATUS, max(0.0, remaining))
            state = _str(body, "state")
            if on_status is not None:
                on_status(state)
            if state == "joined":
                ip = body.get("ip")
                return ip if isinstance(ip, str) else None
            if state == "failed":
                code = _str(body, "error", "unknown")
                raise DeviceRefused(code, _WIFI_ERRORS.get(code, f"the device failed: {code}"))
            if state not in ("received", "joining"):
                raise ProtocolError("protocol_error", f"unknown WIFI_STATUS state {state!r}")

    async def forget(self) -> None:
        await self._request(FORGET, {}, FORGOTTEN)

    async def close(self) -> None:
        try:
            await self._client.stop_notify(TX_UUID)
        except Exception:  # the link may already be gone; nothing to undo then
            pass

    # -- internals -------------------------------------------------------------------------

    def _on_notify(self, _char: Any, data: bytearray) -> None:
        try:
            msg = self._rx.feed(bytes(data))
        except ProtocolError as exc:
            self._inbox.put_nowait(exc)
            return
        if msg is not None:
            self._inbox.put_nowait(msg)

    async def _send(self, msg_type: int, body: dict[str, Any]) -> None:
        for frag in fragments(msg_type, body):
            await self._client.write_gatt_char(RX_UUID, frag, response=True)

    async def _request(self, msg_type: int, body: dict[str, Any],
                       expect: int) -> tuple[int, dict[str, Any]]:
        await self._send(msg_type, body)
        return await self._receive(expect, self._timeout)

    async def _receive(self, expect: int, timeout: float) -> tuple[int, dict[str, Any]]:
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            raise ProtocolError("timeout", f"no answer 0x{expect:02x} from the device within "
                                f"{timeout:.0f} s") from None
        if isinstance(item, ProtocolError):
            raise item
        msg_type, body = item
        if msg_type == ERROR:
            raise ProtocolError("device_error", f"the device answered an error: "
                                f"{body.get('code')}: {body.get('message')}")
        if msg_type != expect:
            raise ProtocolError("protocol_error",
                                f"expected message 0x{expect:02x}, got 0x{msg_type:02x}")
        return item


_WIFI_ERRORS = {
    "auth_failed": "the Wi-Fi network refused the password (check it in the vault)",
    "no_network": "the device cannot see that Wi-Fi network",
    "decrypt_failed": "the device could not decrypt the credentials",
    "bad_request": "the device rejected the request as malformed",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("protocol_error", f"{what} is not valid base64") from None


def _str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or len(value) > 1024:
        raise ProtocolError("protocol_error", f"field {key!r} must be a string")
    return value
