"""The discovered-device registry: what was found, by whom, and what the owner decided.

Discoveries live in memory (they are re-found after a restart); the owner's decisions
(ignored, adopted as device X) are persisted, so an ignored device stays ignored and an
adopted one is recognised when it is heard again. New, changed and lost discoveries are
published on the bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from hub.bus import EventBus
from hub.clock import Clock
from hub.discovery.models import (
    DeviceDiscovered,
    DiscoveredDevice,
    DiscoveryAdopted,
    DiscoveryChanged,
    DiscoveryEvent,
    DiscoveryIgnored,
    DiscoveryLost,
    DiscoveryState,
)
from hub.errors import NotFound
from hub.storage import Database, Schema

SCHEMA = Schema(
    "discovery",
    (
        """
        CREATE TABLE discovery_decisions(
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            integration TEXT NOT NULL,
            device_id TEXT,
            ts REAL NOT NULL
        );
        CREATE INDEX discovery_decisions_device ON discovery_decisions(device_id);
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class Decision:
    state: DiscoveryState
    integration: str
    device_id: str | None


class DiscoveredRegistry:
    """Discovered devices by id, bounded; decisions persisted in `discovery_decisions`."""

    def __init__(self, db: Database, bus: EventBus, clock: Clock, max_size: int = 2000):
        self._db = db
        self._bus = bus
        self._clock = clock
        self._max = max_size
        self._items: dict[str, DiscoveredDevice] = {}
        self._decisions: dict[str, Decision] = {}
        # RSSI / last-seen of repeats land here (cheap) and are folded in when read
        self._live: dict[str, tuple[int | None, float, str | None]] = {}

    async def load(self) -> None:
        rows = await self._db.fetchall(
            "SELECT id, state, integration, device_id FROM discovery_decisions")
        for row in rows:
            self._decisions[row["id"]] = Decision(row["state"], row["integration"],
                                                  row["device_id"])

    def __iter__(self) -> Iterator[DiscoveredDevice]:
        return iter(self.all())

    def __contains__(self, discovery_id: object) -> bool:
        return discovery_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, discovery_id: str) -> DiscoveredDevice:
        item = self.find(discovery_id)
        if item is None:
            raise NotFound(f"no discovered device {discovery_id!r}")
        return item

    def find(self, discovery_id: str) -> DiscoveredDevice | None:
        item = self._items.get(discovery_id)
        if item is not None and discovery_id in self._live:
            item = self._fold(item)
        return item

    def all(self) -> list[DiscoveredDevice]:
        if self._live:
            for discovery_id in list(self._live):
                item = self._items.get(discovery_id)
                if item is None:
                    del self._live[discovery_id]
                else:
                    self._fold(item)
        return list(self._items.values())

    def lookup(self, *, did: str | None = None, mac: str | None = None,
               source: str | None = None, integration: str | None = None
               ) -> list[DiscoveredDevice]:
        """Discoveries matching every given field (e.g. a device's did after provisioning,
        to find it again on mDNS); MACs compare case-insensitively."""
        mac = mac.lower() if mac else None
        return [d for d in self.all()
                if (did is None or d.did == did) and (mac is None or d.mac == mac)
                and (source is None or d.source == source)
                and (integration is None or d.integration == integration)]

    def related(self, item: DiscoveredDevice) -> list[DiscoveredDevice]:
        """Other discoveries of the same physical device (same did or MAC), e.g. its mDNS
        service and its BLE advertisement."""
        out = []
        for other in self._items.values():
            if other.id == item.id:
                continue
            if (item.did and other.did == item.did) or (item.mac and other.mac == item.mac):
                out.append(other)
        return out

    def by_device(self, device_id: str) -> list[DiscoveredDevice]:
        return [d for d in self._items.values() if d.device_id == device_id]

    def has_device(self, device_id: str) -> bool:
        return any(d.device_id == device_id for d in self._decisions.values())

    def decision(self, discovery_id: str) -> Decision | None:
        return self._decisions.get(discovery_id)

    def upsert(self, item: DiscoveredDevice) -> tuple[DiscoveredDevice, str]:
        """Record a sighting; returns the stored item and "new" | "changed" | "seen"."""
        self._live.pop(item.id, None)  # this sighting is newer
        existing = self._items.get(item.id)
        decision = self._decisions.get(item.id)
        state: DiscoveryState = decision.state if decision else "new"
        device_id = decision.device_id if decision else None
        if existing is None:
            stored = replace(item, first_seen=item.last_seen, state=state, device_id=device_id)
            self._items[item.id] = stored
            self._evict()
            self._publish(DeviceDiscovered, stored)
            return stored, "new"
        stored = replace(item, first_seen=existing.first_seen, state=state, device_id=device_id)
        self._items[item.id] = stored
        if existing.same_content(stored):
            return stored, "seen"
        self._publish(DiscoveryChanged, stored)
        return stored, "changed"

    def touch(self, discovery_id: str, rssi: int | None, ts: float,
              ble_source: str | None = None) -> None:
        """Heard again, unchanged: only RSSI, last_seen and the best source move (no
        event)."""
        self._live[discovery_id] = (rssi, ts, ble_source)

    def annotate(self, discovery_id: str, data: dict[str, Any]) -> None:
        """Merge `data` into a discovery's data (None values remove keys); a change event."""
        item = self.find(discovery_id)
        if item is None:
            return
        merged = {k: v for k, v in {**item.data, **data}.items() if v is not None}
        if merged == item.data:
            return
        item = replace(item, data=merged)
        self._items[discovery_id] = item
        self._publish(DiscoveryChanged, item)

    def _fold(self, item: DiscoveredDevice) -> DiscoveredDevice:
        rssi, ts, source = self._live.pop(item.id)
        item = replace(item, rssi=rssi, last_seen=ts, ble_source=source or item.ble_source)
        self._items[item.id] = item
        return item

    def set_present(self, discovery_id: str, present: bool) -> DiscoveredDevice | None:
        item = self.find(discovery_id)
        if item is None or item.present == present:
            return None
        item = replace(item, present=present)
        self._items[discovery_id] = item
        self._publish(DiscoveryChanged if present else DiscoveryLost, item)
        return item

    def remove(self, discovery_id: str) -> None:
        """Drop a discovery (its device withdrew it); the owner's decision is kept."""
        item = self._items.pop(discovery_id, None)
        self._live.pop(discovery_id, None)
        if item is not None:
            self._publish(DiscoveryLost, replace(item, present=False))

    async def decide(self, item: DiscoveredDevice, state: DiscoveryState,
                     device_id: str | None = None) -> DiscoveredDevice:
        """Persist the owner's decision (durably: the API answers after it is on disk)."""
        if state == "new":
            self._decisions.pop(item.id, None)
            await self._db.write("DELETE FROM discovery_decisions WHERE id = ?", (item.id,))
        else:
            self._decisions[item.id] = Decision(state, item.integration, device_id)
            await self._db.write(
                "INSERT INTO discovery_decisions(id, state, integration, device_id, ts) "
                "VALUES(?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                "integration = excluded.integration, device_id = excluded.device_id, "
                "ts = excluded.ts",
                (item.id, state, item.integration, device_id, self._clock.time()))
        current = self.find(item.id) or item
        updated = replace(current, state=state, device_id=device_id)
        if item.id in self._items:
            self._items[item.id] = updated
        event = {"adopted": DiscoveryAdopted, "ignored": DiscoveryIgnored}.get(
            state, DiscoveryChanged)
        self._publish(event, updated)
        return updated

    async def forget_device(self, device_id: str) -> None:
        """The adopted device was removed: its discoveries become new again."""
        ids = [k for k, d in self._decisions.items() if d.device_id == device_id]
        for discovery_id in ids:
            item = self.find(discovery_id)
            if item is not None:
                await self.decide(item, "new")
            else:
                self._decisions.pop(discovery_id, None)
                await self._db.write("DELETE FROM discovery_decisions WHERE id = ?",
                                     (discovery_id,))

    def _publish(self, etype: type[DiscoveryEvent], item: DiscoveredDevice) -> None:
        self._bus.publish(etype(item.id, item.to_json()))

    def _evict(self) -> None:
        if len(self._items) <= self._max:
            return
        # the longest-unheard discovery that nobody decided about goes first
        victims = sorted((d for d in self.all() if d.state == "new"),
                         key=lambda d: d.last_seen)
        for victim in victims[: len(self._items) - self._max]:
            del self._items[victim.id]
