"""Config section `automation`."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class AutomationConfig:
    """The local automation engine."""

    missed_trigger_grace: float = option(
        300.0, doc="A time trigger missed while the hub was down runs at start if within this "
        "many seconds.", min=0
    )
    command_timeout: float = option(
        30.0, doc="Seconds an automation waits for a device command before the action fails "
        "(a hung device must not hold its automation forever).", min=0.1, max=3600
    )
