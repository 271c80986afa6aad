"""Config section `homekit_bridge`: the hub as one HomeKit bridge (off by default)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class HomekitBridgeConfig:
    """Show chosen devices in Apple Home. Nothing is shown until the owner picks devices
    (here or on the dashboard's HomeKit page); restricted devices never are."""

    enabled: bool = option(False, doc="Run the HomeKit bridge (needs discovery.mdns).")
    name: str = option("Uone Hub", doc="The bridge's name in Apple Home.", pattern=r"^.{1,64}$")
    port: int = option(51827, doc="TCP port of the bridge's HAP server.", min=1, max=65535)
    devices: list[str] = option(
        factory=list, doc="Device ids always shown (more can be added through the API)."
    )
