"""Parsing Uone advertisements (PROTOCOL.md): the mDNS TXT record and BLE manufacturer data."""

from __future__ import annotations

import re
from dataclasses import dataclass

COMPANY_ID = 0xFFFF
MAGIC = b"UO"
VERSION = 1
PAYLOAD_LEN = 18
FLAG_ON_WIFI = 0x01
FLAG_NEEDS_SETUP = 0x02
FLAG_IMPROV = 0x04
_RESERVED = 0xF8

_DID = re.compile(r"^uone-[0-9a-f]{16}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class Malformed(ValueError):
    """Looks like a Uone advertisement but does not follow the format."""


@dataclass(frozen=True, slots=True)
class UoneBle:
    did: str
    mac: str
    on_wifi: bool
    needs_setup: bool
    improv: bool


@dataclass(frozen=True, slots=True)
class UoneTxt:
    did: str
    mac: str
    model: str
    fw: str
    proto: int


def parse_ble(data: bytes) -> UoneBle | None:
    """None when it is not a Uone payload; Malformed when it is, but broken."""
    if data[:2] != MAGIC:
        return None
    if len(data) < PAYLOAD_LEN:
        raise Malformed(f"{len(data)} bytes, need {PAYLOAD_LEN}")
    if data[2] != VERSION:
        raise Malformed(f"unknown version {data[2]}")
    flags = data[3]
    if flags & _RESERVED:
        raise Malformed(f"reserved flag bits set ({flags:#04x})")
    mac = ":".join(f"{b:02x}" for b in data[4:10])
    return UoneBle("uone-" + data[10:18].hex(), mac, bool(flags & FLAG_ON_WIFI),
                   bool(flags & FLAG_NEEDS_SETUP), bool(flags & FLAG_IMPROV))


def build_ble(did: str, mac: str, flags: int = FLAG_NEEDS_SETUP) -> bytes:
    """The manufacturer-data payload for `did`/`mac` (used by tests and simulators)."""
    return (MAGIC + bytes([VERSION, flags]) + bytes.fromhex(mac.replace(":", ""))
            + bytes.fromhex(did.removeprefix("uone-")))


def parse_txt(txt: dict[str, str]) -> UoneTxt:
    """The TXT record's fields, validated; Malformed names the first bad one."""
    did = txt.get("did", "")
    if not _DID.match(did):
        raise Malformed(f"did {did[:40]!r}")
    mac = txt.get("mac", "").lower()
    if not _MAC.match(mac):
        raise Malformed(f"mac {mac[:40]!r}")
    model, fw = txt.get("model", ""), txt.get("fw", "")
    for key, value in (("model", model), ("fw", fw)):
        if not 1 <= len(value) <= 32 or not value.isprintable():
            raise Malformed(f"{key} {value[:40]!r}")
    proto_raw = txt.get("proto", "1")
    if not proto_raw.isdigit() or len(proto_raw) > 4:
        raise Malformed(f"proto {proto_raw[:10]!r}")
    return UoneTxt(did, mac, model, fw, int(proto_raw))
