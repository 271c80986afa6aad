"""Provisioning jobs as data: what a job provisions, its progress, its bus event, its failure.

Apart from the service that runs them, so the per-kind job code (uone_job, improv) and the
API name these types without importing the service (no import loop through it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from hub.bus import JobStep
from hub.errors import HubError, ValidationError
from hub.provisioning.evidence import Attestation

if TYPE_CHECKING:
    from hub.bus import EventBus
    from hub.discovery.service import DiscoveryService
    from hub.provisioning.config import ProvisioningConfig
    from hub.provisioning.evidence import Evidence
    from hub.provisioning.wifi import WifiNetworks

JobKind = Literal["uone", "improv"]
FINAL = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class ProvisioningUpdate(JobStep):
    """A provisioning job moved to a new step (or ended)."""

    kind: ClassVar[str] = "provisioning"


@dataclass(frozen=True, slots=True)
class ProvisionTarget:
    """What a job provisions: a discovered BLE device and what it advertised."""

    discovery_id: str
    kind: JobKind
    address: str  # BLE address
    did: str | None = None  # as advertised over BLE
    name: str | None = None
    mac: str | None = None  # the Wi-Fi MAC a Uone device advertises over BLE


class JobFailed(HubError):
    """Ends a job as `failed` with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Job:
    id: str
    target: ProvisionTarget
    ssid: str
    actor: str | None
    created_at: float
    state: str = "pending"
    encrypted: bool = True
    warnings: list[str] = field(default_factory=list)
    attestation: Attestation | None = None
    error: dict[str, str] | None = None
    device_id: str | None = None
    redirect_url: str | None = None
    credentials_sent: bool = False
    updated_at: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "discovery_id": self.target.discovery_id, "kind": self.target.kind,
            "address": self.target.address, "ssid": self.ssid, "state": self.state,
            "encrypted": self.encrypted, "warnings": list(self.warnings),
            "attestation": self.attestation.to_json() if self.attestation else None,
            "error": self.error, "device_id": self.device_id,
            "redirect_url": self.redirect_url, "credentials_sent": self.credentials_sent,
            "history": list(self.history), "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def target_from_discovered(item: Any) -> ProvisionTarget:
    """Map a DiscoveredDevice (discovery area) to what a job needs."""
    source = getattr(item, "source", None)
    integration = getattr(item, "integration", None)
    if source != "ble":
        raise ValidationError(None, "only devices discovered over BLE can be given Wi-Fi")
    if integration == "uone":
        kind: JobKind = "uone"
    elif integration in ("improv", "improv_ble") or "improv" in getattr(item, "integrations",
                                                                          ()):
        kind = "improv"
    else:
        raise ValidationError(None, f"devices of integration {integration!r} cannot be "
                              "provisioned by the hub (Uone and Improv Wi-Fi devices can)")
    address = getattr(item, "address", None)
    if not address:
        raise ValidationError(None, "the discovered device has no BLE address")
    return ProvisionTarget(item.id, kind, address, getattr(item, "did", None),
                           getattr(item, "name", None), getattr(item, "mac", None))


class JobHost(Protocol):
    """What a job's steps (uone_job, improv) use of the service that runs them."""

    config: ProvisioningConfig
    hub_id: str
    wifi: WifiNetworks
    discovery: DiscoveryService
    bus: EventBus

    def integration(self, name: str) -> tuple[Any, Any] | None:
        """A running integration's (instance, context), or None."""
        ...

    def verify(self, evidence: Evidence) -> Attestation: ...

    def step(self, job: Job, state: str, message: str | None = None) -> None:
        """Record and announce the job's next step."""
        ...

    async def audit(self, job: Job, action: str, details: dict[str, Any]) -> None: ...
