"""Config section `provisioning`: Wi-Fi provisioning and device attestation."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class ProvisioningConfig:
    """Giving new devices the home's Wi-Fi and checking they are genuine."""

    trust_anchors: list[str] = option(
        factory=list, doc="PEM files of manufacturer root certificates trusted for attestation."
    )
