"""One matcher index built from every manifest: which integrations want an advertisement.

Dispatch is a dict lookup on the advertisement's service-data UUIDs, service UUIDs and
manufacturer ids; only matchers keyed by a local-name pattern alone are scanned (few).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, replace

from hub.discovery.models import BleAdvertisement
from hub.manifests import BleMatcher, Manifest

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def normalize_uuid(uuid: str) -> str:
    """Full lower-case 128-bit UUID from a 16/32-bit short form or a 128-bit one."""
    u = uuid.strip().lower()
    if u.startswith("0x"):
        u = u[2:]
    if len(u) == 4:
        return f"0000{u}{BASE_UUID_SUFFIX}"
    if len(u) == 8:
        return f"{u}{BASE_UUID_SUFFIX}"
    return u


@dataclass(frozen=True, slots=True)
class _Entry:
    integration: str
    matcher: BleMatcher


class MatcherIndex:
    """BLE matchers and mDNS service types of a set of integrations, indexed for lookup."""

    def __init__(self, manifests: Iterable[Manifest]) -> None:
        self._by_sd: dict[str, list[_Entry]] = {}
        self._by_uuid: dict[str, list[_Entry]] = {}
        self._by_mfr: dict[int, list[_Entry]] = {}
        self._by_name: list[_Entry] = []
        self._mdns: dict[str, list[str]] = {}
        self.matchers: list[tuple[str, BleMatcher]] = []
        for manifest in manifests:
            for raw in manifest.ble:
                m = replace(
                    raw,
                    service_uuid=normalize_uuid(raw.service_uuid) if raw.service_uuid else None,
                    service_data_uuid=(normalize_uuid(raw.service_data_uuid)
                                       if raw.service_data_uuid else None),
                )
                entry = _Entry(manifest.name, m)
                self.matchers.append((manifest.name, m))
                if m.service_data_uuid is not None:
                    self._by_sd.setdefault(m.service_data_uuid, []).append(entry)
                elif m.service_uuid is not None:
                    self._by_uuid.setdefault(m.service_uuid, []).append(entry)
                elif m.manufacturer_id is not None:
                    self._by_mfr.setdefault(m.manufacturer_id, []).append(entry)
                elif m.local_name is not None:
                    self._by_name.append(entry)
            for stype in manifest.mdns:
                self._mdns.setdefault(stype, []).append(manifest.name)

    @property
    def has_ble(self) -> bool:
        return bool(self.matchers)

    @property
    def mdns_types(self) -> list[str]:
        return sorted(self._mdns)

    def mdns_integrations(self, service_type: str) -> tuple[str, ...]:
        return tuple(self._mdns.get(service_type, ()))

    def match(self, adv: BleAdvertisement) -> tuple[str, ...]:
        """Names of the integrations with a matcher that fits `adv`, in manifest order."""
        candidates: list[_Entry] = []
        if self._by_sd:
            for key in adv.service_data:
                hit = self._by_sd.get(key)
                if hit:
                    candidates.extend(hit)
        if self._by_uuid:
            for key in adv.service_uuids:
                hit = self._by_uuid.get(key)
                if hit:
                    candidates.extend(hit)
        if self._by_mfr:
            for company in adv.manufacturer_data:
                hit = self._by_mfr.get(company)
                if hit:
                    candidates.extend(hit)
        if self._by_name and adv.name:
            candidates.extend(self._by_name)
        if not candidates:
            return ()
        out: list[str] = []
        for entry in candidates:
            if entry.integration not in out and _fits(entry.matcher, adv):
                out.append(entry.integration)
        return tuple(out)

    def or_patterns(self) -> list[tuple[int, int, bytes]] | None:
        """BlueZ advertisement-monitor patterns covering every matcher, or None if some
        matcher cannot be expressed as one (then only active scanning sees everything)."""
        patterns: list[tuple[int, int, bytes]] = []
        for _name, m in self.matchers:
            if m.service_data_uuid is not None:
                patterns.extend(_uuid_patterns(m.service_data_uuid, (0x16,), (0x20,), (0x21,)))
            elif m.service_uuid is not None:
                patterns.extend(_uuid_patterns(m.service_uuid, (0x02, 0x03), (0x04, 0x05),
                                               (0x06, 0x07)))
            elif m.manufacturer_id is not None:
                patterns.append((0, 0xFF, m.manufacturer_id.to_bytes(2, "little")))
            elif m.local_name is not None:
                prefix = _literal_prefix(m.local_name)
                if not prefix:
                    return None
                patterns.extend([(0, 0x08, prefix), (0, 0x09, prefix)])
        return sorted(set(patterns)) or None


def _fits(m: BleMatcher, adv: BleAdvertisement) -> bool:
    if m.service_uuid is not None and m.service_uuid not in adv.service_uuids:
        return False
    if m.service_data_uuid is not None and m.service_data_uuid not in adv.service_data:
        return False
    if m.manufacturer_id is not None and m.manufacturer_id not in adv.manufacturer_data:
        return False
    return m.local_name is None or (
        adv.name is not None and fnmatch.fnmatchcase(adv.name, m.local_name))


def _uuid_patterns(uuid: str, t16: tuple[int, ...], t32: tuple[int, ...],
                   t128: tuple[int, ...]) -> list[tuple[int, int, bytes]]:
    if uuid.endswith(BASE_UUID_SUFFIX):
        short = int(uuid[:8], 16)
        if short <= 0xFFFF:
            return [(0, t, short.to_bytes(2, "little")) for t in t16]
        return [(0, t, short.to_bytes(4, "little")) for t in t32]
    raw = bytes.fromhex(uuid.replace("-", ""))[::-1]
    return [(0, t, raw) for t in t128]


def _literal_prefix(pattern: str) -> bytes:
    out = []
    for ch in pattern:
        if ch in "*?[":
            break
        out.append(ch)
    return "".join(out).encode()
