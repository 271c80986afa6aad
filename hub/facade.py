"""The only part of the core that integrations may import (a test pins `__all__`).

Everything an integration needs reaches it through its `IntegrationContext`; these are the
types it needs to name.
"""

from __future__ import annotations

from hub.bus import AvailabilityChanged, DeviceEvent, Event, StateChanged
from hub.devices import AttributeMeta, CommandSpec, Device, PrivacyScope
from hub.discovery.connectivity import LanProbe, TransportChoice, choose_transport, probe_lan
from hub.discovery.models import (
    BleAdvertisement,
    DiscoveredDevice,
    DiscoveryInfo,
    MdnsService,
    normalize_mac,
)
from hub.errors import DeviceUnavailable, EgressDenied, HubError, ValidationError
from hub.loader import Integration, IntegrationContext
from hub.manifests import BleMatcher
from hub.provisioning.evidence import Attestation, Evidence
from hub.reconnect import BackoffPolicy, ReconnectLoop, ReconnectState
from hub.thirdparty import PrivatePart, mqtt_client_class, watching_srp

__all__ = [
    "Attestation",
    "AttributeMeta",
    "AvailabilityChanged",
    "BackoffPolicy",
    "BleAdvertisement",
    "BleMatcher",
    "CommandSpec",
    "Device",
    "DeviceEvent",
    "DeviceUnavailable",
    "DiscoveredDevice",
    "DiscoveryInfo",
    "EgressDenied",
    "Event",
    "Evidence",
    "HubError",
    "Integration",
    "IntegrationContext",
    "LanProbe",
    "MdnsService",
    "PrivacyScope",
    "PrivatePart",
    "ReconnectLoop",
    "ReconnectState",
    "StateChanged",
    "TransportChoice",
    "ValidationError",
    "choose_transport",
    "mqtt_client_class",
    "normalize_mac",
    "probe_lan",
    "watching_srp",
]
