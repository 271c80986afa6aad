"""Config section `discovery`: mDNS, BLE and adoption."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class MdnsConfig:
    """Multicast DNS browsing and the hub's own advertisement."""

    enabled: bool = option(True, doc="Browse mDNS for devices.")
    interfaces: list[str] | None = option(
        None, doc="Interface names to use; default: every non-loopback IPv4 interface that is up."
    )
    advertise: bool = option(True, doc="Advertise the hub as _uone-hub._tcp.")
    hub_name: str | None = option(
        None, doc="Instance name the hub advertises; default: 'Uone Hub <hostname>'."
    )
    interface_check: float = option(
        30.0, doc="Seconds between checks for interfaces going away or coming back.", min=0.1
    )
    resolve_timeout: float = option(
        3.0, doc="Seconds to wait for a found service's SRV/TXT/address records.", min=0.1
    )


@dataclass(frozen=True, slots=True)
class BleConfig:
    """The hub's single Bluetooth LE scanner."""

    enabled: bool = option(True, doc="Scan for BLE advertisements.")
    adapter: str | None = option(None, doc="BlueZ adapter, e.g. hci0; default: the first one.")
    scanning_mode: Literal["auto", "active", "passive"] = option(
        "auto", doc="auto: passive where BlueZ offers advertisement monitors, else active."
    )
    unavailable_after: float = option(
        300.0, doc="Seconds without an advertisement before a device is unavailable.", min=0.05
    )
    stall_after: float = option(
        120.0, doc="Seconds without any advertisement before the scanner is restarted.", min=0.1
    )
    restart_min: float = option(
        1.0, doc="First wait before restarting a lost adapter; doubles up to restart_max.",
        min=0.01,
    )
    restart_max: float = option(60.0, doc="Longest wait between restart attempts.", min=0.01)


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Finding devices on the LAN and over Bluetooth LE."""

    mdns: MdnsConfig = option(factory=MdnsConfig)
    ble: BleConfig = option(factory=BleConfig)
    auto_adopt: list[str] = option(
        factory=list,
        doc="Integrations whose discovered devices are adopted without asking (default: none).",
    )
    max_discovered: int = option(
        2000, doc="Most discovered (not adopted) devices remembered; the oldest go first.",
        min=10,
    )
