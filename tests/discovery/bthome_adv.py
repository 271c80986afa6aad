"""Building BTHome v2 advertisements (service data 0xFCD2), plain and encrypted, per the spec.

Layout: one device-information byte (bit 0 encrypted, bit 2 trigger-based, bits 5-7 version
= 2), then objects (id, value little-endian), in id order. Encrypted: AES-CCM (4-byte MIC)
over the objects with nonce = MAC(6) + UUID16 (d2 fc) + device-info byte + counter(4); the
service data is info byte + ciphertext + counter + MIC.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"


def objects(*, packet_id: int | None = None, battery: int | None = None,
            temperature: float | None = None, humidity: float | None = None,
            motion: bool | None = None, button: str | None = None) -> bytes:
    out = b""
    if packet_id is not None:
        out += bytes([0x00, packet_id & 0xFF])
    if battery is not None:
        out += bytes([0x01, battery])
    if temperature is not None:
        out += b"\x02" + struct.pack("<h", round(temperature * 100))
    if humidity is not None:
        out += b"\x03" + struct.pack("<H", round(humidity * 100))
    if motion is not None:
        out += bytes([0x21, int(motion)])
    if button is not None:
        code = {"none": 0, "press": 1, "double_press": 2, "triple_press": 3,
                "long_press": 4}[button]
        out += bytes([0x3A, code])
    return out


def plain(payload: bytes, *, trigger: bool = False) -> bytes:
    return bytes([0x40 | (0x04 if trigger else 0)]) + payload


def encrypted(payload: bytes, mac: str, key: bytes, counter: int) -> bytes:
    info = 0x41
    mac_bytes = bytes.fromhex(mac.replace(":", ""))
    count = struct.pack("<I", counter)
    nonce = mac_bytes + b"\xd2\xfc" + bytes([info]) + count
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, payload, None)
    return bytes([info]) + sealed[:-4] + count + sealed[-4:]
