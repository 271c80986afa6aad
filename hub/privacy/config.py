"""Config section `privacy`: consent, notice versions, retention, backups."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long each class of personal data is kept before the purge job deletes it."""

    history_days: float = option(10.0, doc="State history kept, days.", min=0.01)
    events_days: float = option(30.0, doc="Device events kept, days.", min=0.01)
    audit_days: float = option(365.0, doc="Audit log entries kept, days.", min=1)
    sign_ins_days: float = option(
        90.0, doc="Sign-in history (when, from which address) kept, days.", min=1)
    interval: float = option(
        3600.0, doc="Seconds between purge runs.", min=1.0, max=86_400.0
    )
    batch: int = option(
        500, doc="Rows deleted per transaction: small batches never hold up the API.",
        min=10, max=100_000,
    )


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """What the hub keeps, for how long, and under which privacy notice."""

    notice_version: int = option(1, doc="Version of the privacy notice in force.", min=1)
    terms_changed: dict[str, int] = option(
        factory=dict,
        doc="Per consent purpose, the notice version in which its terms last changed. A consent "
        "given under an older version is paused until given again; purposes not listed keep "
        "their consent when notice_version goes up.",
    )
    retention: RetentionConfig = option(factory=RetentionConfig)
    export_batch: int = option(
        2000, doc="Rows read per batch while exporting or erasing.", min=100, max=100_000
    )
    failed_login_burst: int = option(
        10, doc="Failed sign-ins within failed_login_window seconds that notify the owner.",
        min=2,
    )
    failed_login_window: float = option(300.0, doc="Window for failed_login_burst, seconds.",
                                        min=1.0)
