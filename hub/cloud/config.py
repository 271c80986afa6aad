"""Config section `cloud`: opt-in sync over MQTT."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """Opt-in, end-to-end encrypted sync. Nothing connects without consent."""

    broker_url: str | None = option(None, doc="mqtts://host:port of the broker.")
