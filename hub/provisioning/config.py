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
    crl_files: list[str] = option(
        factory=list, doc="Certificate revocation lists (PEM or DER) from those manufacturers."
    )
    revoked_serials: list[str] = option(
        factory=list, doc="Serial numbers (hex) of device or intermediate certificates to refuse."
    )
    ble_timeout: float = option(
        30.0, doc="Seconds to find and talk to a device over BLE before failing.", min=1, max=600
    )
    authorization_timeout: float = option(
        120.0, doc="Seconds to wait for someone to press an Improv device's button.",
        min=1, max=3600,
    )
    lan_timeout: float = option(
        120.0, doc="Seconds to wait for a provisioned device to appear on the LAN (mDNS).",
        min=1, max=3600,
    )
