"""Config section `discovery`: mDNS and BLE."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class MdnsConfig:
    """Multicast DNS browsing and the hub's own advertisement."""

    enabled: bool = option(True, doc="Browse mDNS for devices.")
    interfaces: list[str] | None = option(
        None, doc="Interface names to use; default: every non-loopback IPv4 interface that is up."
    )
    advertise: bool = option(True, doc="Advertise the hub as _uone-hub._tcp.")


@dataclass(frozen=True, slots=True)
class BleConfig:
    """The hub's single Bluetooth LE scanner."""

    enabled: bool = option(True, doc="Scan for BLE advertisements.")
    adapter: str | None = option(None, doc="BlueZ adapter, e.g. hci0; default: the first one.")
    unavailable_after: float = option(
        300.0, doc="Seconds without an advertisement before a device is unavailable.", min=5
    )


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Finding devices on the LAN and over Bluetooth LE."""

    mdns: MdnsConfig = option(factory=MdnsConfig)
    ble: BleConfig = option(factory=BleConfig)
