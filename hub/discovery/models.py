"""Value types of discovery: advertisements, mDNS services, discovered devices, their events.

These are what integrations and other areas (provisioning) see; all frozen, all JSON-able.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hub.auth.principal import Role
from hub.bus import Event

Source = Literal["mdns", "ble", "mqtt"]
DiscoveryState = Literal["new", "ignored", "adopted"]

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class BleAdvertisement:
    """One BLE advertisement as bleak reported it (service UUIDs lower-case, full 128-bit)."""

    address: str
    name: str | None
    rssi: int
    service_uuids: tuple[str, ...] = ()
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    tx_power: int | None = None
    time: float = 0.0  # wall clock

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address, "name": self.name, "rssi": self.rssi,
            "service_uuids": list(self.service_uuids),
            "service_data": {k: v.hex() for k, v in self.service_data.items()},
            "manufacturer_data": {str(k): v.hex() for k, v in self.manufacturer_data.items()},
        }


@dataclass(frozen=True, slots=True)
class MdnsService:
    """One resolved mDNS service instance with its TXT record decoded to text."""

    type: str  # "_uone._tcp.local."
    name: str  # full instance name "Lamp._uone._tcp.local."
    host: str | None
    addresses: tuple[str, ...]
    port: int | None
    txt: dict[str, str]

    @property
    def instance(self) -> str:
        """The instance label, without the service type."""
        suffix = "." + self.type
        return self.name[: -len(suffix)] if self.name.endswith(suffix) else self.name


@dataclass(frozen=True, slots=True)
class DiscoveryInfo:
    """What an integration recognised in an advertisement or mDNS service.

    Its advertisement/service listener returns one to have the device listed as discovered
    (for adoption), or None when the data is not one of its devices (or is malformed).
    """

    name: str | None = None
    did: str | None = None
    mac: str | None = None
    model: str | None = None
    fw: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """Something found on the LAN or over BLE that an integration recognises.

    `id` is stable for the same device across restarts: `ble-<address>` or
    `mdns-<hash of type and instance>`.
    """

    id: str
    source: Source
    integration: str
    name: str
    addresses: tuple[str, ...] = ()  # IPs for mDNS, the BLE address for BLE
    port: int | None = None
    mac: str | None = None
    did: str | None = None
    model: str | None = None
    fw: str | None = None
    rssi: int | None = None
    service_type: str | None = None
    host: str | None = None
    txt: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # what the integration read from it
    integrations: tuple[str, ...] = ()  # every integration that matched
    first_seen: float = 0.0
    last_seen: float = 0.0
    present: bool = True
    state: DiscoveryState = "new"
    device_id: str | None = None  # the adopted device, once adopted
    ble_source: str | None = None  # BLE: who hears it best ("local" adapter or a proxy)

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "integration": self.integration,
            "integrations": list(self.integrations), "name": self.name,
            "addresses": list(self.addresses), "port": self.port, "mac": self.mac,
            "did": self.did, "model": self.model, "fw": self.fw, "rssi": self.rssi,
            "service_type": self.service_type, "host": self.host, "txt": dict(self.txt),
            "data": _jsonable(self.data), "first_seen": self.first_seen,
            "last_seen": self.last_seen, "present": self.present, "state": self.state,
            "device_id": self.device_id, "ble_source": self.ble_source,
        }

    def same_content(self, other: DiscoveredDevice) -> bool:
        """Equal but for timestamps and RSSI (what does not make a 'changed' event)."""
        return (self.name, self.addresses, self.port, self.mac, self.did, self.model,
                self.fw, self.txt, self.data, self.present, self.state, self.host,
                self.device_id) == (
                other.name, other.addresses, other.port, other.mac, other.did, other.model,
                other.fw, other.txt, other.data, other.present, other.state, other.host,
                other.device_id)


def ble_id(address: str) -> str:
    return "ble-" + address.lower().replace(":", "").replace("-", "")


def mdns_id(service_type: str, name: str) -> str:
    digest = hashlib.sha256(f"{service_type}\0{name.lower()}".encode()).hexdigest()
    return "mdns-" + digest[:16]


def reported_id(source: str, key: str) -> str:
    """Id of a device an integration reports itself (e.g. from an MQTT discovery message)."""
    return f"{source}-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def normalize_mac(value: str | None) -> str | None:
    """AA:BB:.. lower-case from common spellings; None if it is not a MAC."""
    if not value:
        return None
    v = value.strip().lower().replace("-", ":")
    if len(v) == 12 and ":" not in v:
        v = ":".join(v[i:i + 2] for i in range(0, 12, 2))
    return v if _MAC.match(v) else None


# Events on the bus (and so on websockets): new, changed, lost, adopted, ignored.


@dataclass(frozen=True, slots=True)
class DiscoveryEvent(Event):
    """Base of discovery events; `device` is the DiscoveredDevice as JSON."""

    kind: ClassVar[str] = "discovery"
    # what was found nearby (names, addresses, MACs) is for admins, as GET /api/discovered
    min_role: ClassVar[Role] = Role.ADMIN
    id: str
    device: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.id


@dataclass(frozen=True, slots=True)
class DeviceDiscovered(DiscoveryEvent):
    kind: ClassVar[str] = "discovery_new"


@dataclass(frozen=True, slots=True)
class DiscoveryChanged(DiscoveryEvent):
    kind: ClassVar[str] = "discovery_changed"


@dataclass(frozen=True, slots=True)
class DiscoveryLost(DiscoveryEvent):
    kind: ClassVar[str] = "discovery_lost"


@dataclass(frozen=True, slots=True)
class DiscoveryAdopted(DiscoveryEvent):
    kind: ClassVar[str] = "discovery_adopted"


@dataclass(frozen=True, slots=True)
class DiscoveryIgnored(DiscoveryEvent):
    kind: ClassVar[str] = "discovery_ignored"


DISCOVERY_EVENTS: tuple[type[DiscoveryEvent], ...] = (
    DeviceDiscovered, DiscoveryChanged, DiscoveryLost, DiscoveryAdopted, DiscoveryIgnored,
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
