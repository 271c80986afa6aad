"""What the BLE scanner and the mDNS browser need of the discovery service that owns them.

A Protocol rather than the service itself, so those modules do not import the service back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hub.clock import Clock
    from hub.discovery.config import DiscoveryConfig
    from hub.discovery.matcher import MatcherIndex
    from hub.discovery.models import MdnsService


@dataclass(slots=True)
class DiscoveryStats:
    advertisements: int = 0
    duplicates: int = 0
    dispatched: int = 0
    unmatched: int = 0
    malformed: int = 0
    listener_errors: int = 0
    mdns_added: int = 0
    mdns_updated: int = 0
    mdns_removed: int = 0
    mdns_malformed: int = 0
    adopted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class DiscoveryHost(Protocol):
    config: DiscoveryConfig
    clock: Clock
    index: MatcherIndex
    stats: DiscoveryStats
    api_host: str  # the hub is advertised on mDNS unless its API is loopback-only
    version: str

    def handle_advertisement(
        self, address: str, name: str | None, rssi: int, service_uuids: tuple[str, ...],
        service_data: dict[str, bytes], manufacturer_data: dict[int, bytes],
        tx_power: int | None = None,
    ) -> None: ...

    def handle_mdns(self, service: MdnsService, removed: bool = False) -> None: ...

    def zeroconf_replaced(self) -> None: ...
    def addresses_changed(self) -> None: ...
    def zeroconf_opened(self) -> None: ...
