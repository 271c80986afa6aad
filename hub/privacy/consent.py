"""The consent ledger: which purposes the owner agreed to, under which notice, and when.

Every purpose is off until granted. A grant remembers the privacy-notice version it was given
under; when `privacy.notice_version` goes up and `privacy.terms_changed[purpose]` says that
purpose's terms changed after the grant, the purpose is *paused* (not allowed) until the owner
grants it again. Every grant, withdrawal and pause is a row in `consent_log`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from hub.bus import Event, EventBus
from hub.clock import Clock
from hub.errors import ValidationError
from hub.privacy.config import PrivacyConfig
from hub.storage import Database

PURPOSES: tuple[str, ...] = ("cloud_sync", "remote_access", "location", "diagnostics",
                             "external_broker")
PURPOSE_DOCS = {
    "cloud_sync": "End-to-end encrypted sync of chosen data through a cloud broker.",
    "remote_access": "Reaching the hub from outside the home network.",
    "location": "Storing the home's latitude and longitude (sun-based automations).",
    "diagnostics": "Sending crash reports and diagnostics off the LAN.",
    "external_broker": "Connecting to an MQTT broker outside the home network (integrations."
                       "mqtt): device states and commands then pass through it.",
}


@dataclass(frozen=True, slots=True)
class ConsentChanged(Event):
    """A purpose became allowed or not allowed (granted, withdrawn, or paused by a new notice)."""

    kind: ClassVar[str] = "consent_changed"
    purpose: str
    allowed: bool
    reason: str  # "granted" | "withdrawn" | "paused"
    by_user: str | None
    notice_version: int
    ts: float

    @property
    def key(self) -> str | None:
        return self.purpose


@dataclass(frozen=True, slots=True)
class Consent:
    """The current answer for one purpose."""

    purpose: str
    granted: bool
    notice_version: int | None  # version the grant/withdrawal was made under
    by_user: str | None
    ts: float | None
    paused: bool = False

    @property
    def allowed(self) -> bool:
        return self.granted and not self.paused

    @property
    def status(self) -> str:
        if self.paused:
            return "paused"
        if self.granted:
            return "granted"
        return "withdrawn" if self.ts is not None else "not_given"

    def to_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose, "allowed": self.allowed, "status": self.status,
            "granted": self.granted, "notice_version": self.notice_version,
            "by": self.by_user, "ts": self.ts, "description": PURPOSE_DOCS[self.purpose],
        }


AuditFn = Callable[[str | None, str, str, dict[str, Any]], Awaitable[None]]


class ConsentLedger:
    """Current consents in memory (fast `allowed`), every change durable before it counts."""

    def __init__(self, db: Database, bus: EventBus, clock: Clock, config: PrivacyConfig,
                 audit: AuditFn) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock
        self._config = config
        self._audit = audit
        self._consents: dict[str, Consent] = {
            p: Consent(p, False, None, None, None) for p in PURPOSES
        }

    @property
    def notice_version(self) -> int:
        return self._config.notice_version

    def terms_version(self, purpose: str) -> int:
        return int(self._config.terms_changed.get(purpose, 1))

    async def load(self) -> None:
        """Read the ledger; pause (and log once) grants made under terms that changed since."""
        stored, newly_paused = await read_consents(self._db, self._config)
        for purpose, consent in stored.items():
            if purpose in newly_paused:
                self._consents[purpose] = replace(consent, paused=False)
                await self._store(purpose, granted=True, by_user=None, action="paused",
                                  paused=True, version=consent.notice_version or 0)
            else:
                self._consents[purpose] = consent

    def allowed(self, purpose: str) -> bool:
        """True only while `purpose` is granted under its current terms."""
        consent = self._consents.get(purpose)
        return consent is not None and consent.allowed

    def get(self, purpose: str) -> Consent:
        check_purpose(purpose)
        return self._consents[purpose]

    def all(self) -> list[Consent]:
        return [self._consents[p] for p in PURPOSES]

    async def set(self, purpose: str, granted: bool, by_user: str | None) -> Consent:
        """Grant or withdraw `purpose` under the current notice; a no-op change is not logged."""
        check_purpose(purpose)
        current = self._consents[purpose]
        if current.granted == granted and not current.paused and current.ts is not None:
            if not granted or current.notice_version == self.notice_version:
                return current
        return await self._store(purpose, granted=granted, by_user=by_user,
                                 action="granted" if granted else "withdrawn", paused=False,
                                 version=self.notice_version)

    async def history(self, purpose: str | None = None, limit: int = 1000,
                      before_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM consent_log WHERE id < ?"
        params: list[Any] = [before_id if before_id is not None else 1 << 62]
        if purpose is not None:
            check_purpose(purpose)
            sql += " AND purpose = ?"
            params.append(purpose)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [
            {"id": r["id"], "purpose": r["purpose"], "action": r["action"],
             "notice_version": r["notice_version"], "by": r["by_user"], "ts": r["ts"]}
            for r in await self._db.fetchall(sql, params)
        ]

    async def _store(self, purpose: str, *, granted: bool, by_user: str | None, action: str,
                     paused: bool, version: int) -> Consent:
        now = self._clock.time()
        consent = Consent(purpose, granted, version, by_user, now, paused)
        was_allowed = self._consents[purpose].allowed
        await self._db.write_script([
            ("INSERT INTO consents(purpose, granted, notice_version, by_user, ts, paused) "
             "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(purpose) DO UPDATE SET "
             "granted = excluded.granted, notice_version = excluded.notice_version, "
             "by_user = excluded.by_user, ts = excluded.ts, paused = excluded.paused",
             (purpose, int(granted), version, by_user, now, int(paused))),
            ("INSERT INTO consent_log(purpose, action, notice_version, by_user, ts) "
             "VALUES(?, ?, ?, ?, ?)", (purpose, action, self.notice_version, by_user, now)),
        ])
        self._consents[purpose] = consent
        await self._audit(by_user, f"consent.{action}", purpose,
                          {"notice_version": self.notice_version})
        if consent.allowed != was_allowed or action == "granted":
            self._bus.publish(ConsentChanged(purpose, consent.allowed, action, by_user,
                                             self.notice_version, now))
        return consent


async def read_consents(db: Database, config: PrivacyConfig
                        ) -> tuple[dict[str, Consent], set[str]]:
    """The stored consents, changing nothing: a grant given under terms that changed since
    reads as paused. Also returns those purposes (the ledger records their pause)."""
    out: dict[str, Consent] = {}
    newly_paused: set[str] = set()
    for row in await db.fetchall("SELECT * FROM consents"):
        purpose = row["purpose"]
        if purpose not in PURPOSES:
            continue  # a purpose this release no longer knows stays in the log only
        paused = bool(row["paused"])
        stale = stale_grant(bool(row["granted"]) and not paused, row["notice_version"],
                            purpose, config)
        out[purpose] = Consent(purpose, bool(row["granted"]), row["notice_version"],
                               row["by_user"], row["ts"], paused or stale)
        if stale:
            newly_paused.add(purpose)
    return out, newly_paused


def stale_grant(granted: bool, notice_version: int | None, purpose: str,
                config: PrivacyConfig) -> bool:
    """A grant given under terms of `purpose` that changed since: it counts as paused."""
    return granted and (notice_version or 0) < int(config.terms_changed.get(purpose, 1))


def check_purpose(purpose: str, field: str = "purpose") -> None:
    if purpose not in PURPOSES:
        raise ValidationError(
            field, f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})"
        )
