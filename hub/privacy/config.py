"""Config section `privacy`: consent, retention."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """What the hub keeps, for how long, and under which privacy notice."""

    notice_version: int = option(1, doc="Version of the privacy notice in force.", min=1)
