"""Remote BLE sources (ESPHome Bluetooth proxies...) beside the local adapter.

A source is something that hears BLE advertisements for the hub elsewhere in the house. It
feeds the one pipeline (`DiscoveryService.handle_advertisement`) under its own name, so an
advertisement heard by the adapter and by two proxies is one sighting with the best signal.
A source that goes away is treated like a lost adapter: logged once, shown in health, its
signal readings forgotten (the device's best source moves to whoever still hears it), and
logged once again when it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.clock import Clock

_LOG = logging.getLogger(__name__)

LOCAL = "local"  # the source name of the hub's own adapter


@dataclass(slots=True)
class BleSourceStatus:
    name: str
    kind: str  # "esphome" ...
    state: str = "connecting"  # connecting | connected | lost
    reason: str | None = None
    advertisements: int = 0
    last_advertisement: float | None = None  # monotonic
    slots_free: int | None = None  # connection slots (GATT connections it can still make)
    slots_limit: int | None = None
    losses: int = 0


class BleSource:
    """The handle an integration gets for one remote source; feed advertisements through it."""

    def __init__(self, status: BleSourceStatus, clock: Clock,
                 feed: Callable[..., None], forget: Callable[[str], None]) -> None:
        self.status = status
        self._clock = clock
        self._feed = feed
        self._forget = forget
        self._loss_logged = False

    @property
    def name(self) -> str:
        return self.status.name

    def advertisement(self, address: str, name: str | None, rssi: int,
                      service_uuids: tuple[str, ...], service_data: dict[str, bytes],
                      manufacturer_data: dict[int, bytes], tx_power: int | None = None
                      ) -> None:
        """One advertisement this source heard (never raises)."""
        st = self.status
        st.advertisements += 1
        st.last_advertisement = self._clock.monotonic()
        self._feed(address, name, rssi, service_uuids, service_data, manufacturer_data,
                   tx_power, source=st.name)

    def set_slots(self, free: int, limit: int) -> None:
        """How many more BLE connections the source can hold, of how many."""
        self.status.slots_free, self.status.slots_limit = free, limit

    def connected(self) -> None:
        st = self.status
        if st.state == "lost" and self._loss_logged:
            _LOG.info("BLE source %s is back", st.name)
            self._loss_logged = False
        st.state, st.reason = "connected", None

    def lost(self, reason: str) -> None:
        """Like a lost adapter: its readings are dropped; logged once until it is back."""
        st = self.status
        if st.state == "lost":
            return
        was_connected = st.state == "connected"
        st.state, st.reason = "lost", reason
        st.slots_free = None
        if was_connected:
            st.losses += 1
            if not self._loss_logged:
                _LOG.warning("BLE source %s lost: %s", st.name, reason)
                self._loss_logged = True
        self._forget(st.name)

    def to_json(self, now: float) -> dict[str, Any]:
        st = self.status
        age = None if st.last_advertisement is None else round(now - st.last_advertisement, 1)
        return {"kind": st.kind, "state": st.state, "reason": st.reason,
                "advertisements": st.advertisements, "last_advertisement_age": age,
                "slots_free": st.slots_free, "slots_limit": st.slots_limit,
                "losses": st.losses}
