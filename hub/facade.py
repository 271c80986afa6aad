"""The only part of the core that integrations may import (a test pins `__all__`).

Everything an integration needs reaches it through its `IntegrationContext`; these are the
types it needs to name.
"""

from __future__ import annotations

from hub.bus import AvailabilityChanged, DeviceEvent, Event, StateChanged
from hub.devices import CommandSpec, Device, PrivacyScope
from hub.errors import DeviceUnavailable, HubError, ValidationError
from hub.loader import Integration, IntegrationContext
from hub.manifests import BleMatcher
from hub.provisioning.attestation import Attestation, Evidence

__all__ = [
    "Attestation",
    "AvailabilityChanged",
    "BleMatcher",
    "CommandSpec",
    "Device",
    "DeviceEvent",
    "DeviceUnavailable",
    "Event",
    "Evidence",
    "HubError",
    "Integration",
    "IntegrationContext",
    "PrivacyScope",
    "StateChanged",
    "ValidationError",
]
