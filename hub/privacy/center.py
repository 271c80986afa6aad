"""The privacy center: the hub's privacy promises as one service, `hub.privacy`.

What other areas use (keep these stable):
- `hub.privacy.allowed(purpose) -> bool` and the bus event `ConsentChanged`;
- `hub.privacy.location() -> Location | None` (None without `location` consent);
- `hub.privacy.device_usable(device_id)`, `user_restricted(user_id)`,
  `presence_objection(user_id)`, `may_collect_presence(user_id, is_minor=...)`;
- `hub.privacy.egress`: the EgressGuard every outbound connection goes through;
- `hub.privacy.signal(kind, details)`: a possible breach, to the owner and the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hub import egress
from hub.audit import ChainReport, verify_chain
from hub.auth.principal import Principal, Role
from hub.bus import Event, Notification
from hub.errors import Conflict, PermissionDenied, StorageFull, ValidationError
from hub.privacy.consent import Consent, ConsentLedger
from hub.privacy.retention import RetentionJob

if TYPE_CHECKING:

    from hub.audit import AuditLog
    from hub.auth.service import AccountService
    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.config import LocationConfig
    from hub.devices import DeviceRegistry
    from hub.privacy.config import PrivacyConfig
    from hub.privacy.erase import ErasureReport
    from hub.privacy.export import ExportSource, ExportStats, Sink
    from hub.state import StateStore
    from hub.storage import Database
    from hub.vault import Vault

_LOG = logging.getLogger(__name__)

SIGNAL_KINDS = {
    "failed_login_burst": ("Many failed sign-ins", "warning"),
    "token_new_address": ("A token was used from a new address", "warning"),
    "audit_chain_broken": ("The audit log was tampered with", "critical"),
    "attestation_failed": ("A device failed its authenticity check", "critical"),
    "egress_refused": ("A connection to the internet was refused", "info"),
}


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    elevation: float
    time_zone: str


@dataclass(frozen=True, slots=True)
class RestrictionChanged(Event):
    """A device or user was restricted/unrestricted, or a presence objection changed."""

    kind: ClassVar[str] = "restriction_changed"
    subject: str  # "device" | "user"
    subject_id: str
    restricted: bool
    presence_objection: bool = False

    @property
    def key(self) -> str | None:
        return self.subject_id


@dataclass(frozen=True, slots=True)
class LocationChanged(Event):
    """The home's coordinates were set or deleted (sun-based schedules recompute)."""

    kind: ClassVar[str] = "location_changed"
    available: bool


@dataclass(slots=True)
class _Subject:
    restricted: bool = False
    presence_objection: bool = False


class PrivacyCenter:
    """Consent, location, restriction, retention, egress and breach signals for one hub."""

    def __init__(self, config: PrivacyConfig, *, location: LocationConfig, db: Database,
                 bus: EventBus, clock: Clock, devices: DeviceRegistry, states: StateStore,
                 audit: AuditLog | None, accounts: AccountService | None, vault: Vault | None,
                 state_dir: Path, config_path: Path, version: str) -> None:
        """`config_path` and `version` go into backups."""
        self.config = config
        self.location_config = location
        self.db = db
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.states = states
        self._audit_log = audit
        self.accounts = accounts
        self.vault = vault
        self.state_dir = state_dir
        self.config_path = config_path
        self.version = version
        self.consents = ConsentLedger(db, bus, clock, self.config, self.audit)
        self.egress = egress.EgressGuard(self.consents.allowed, self._egress_denied)
        self.retention = RetentionJob(db, clock, states, self.config.retention, self.audit,
                                      after_run=self.verify_audit)
        self._location: Location | None = None
        self._subjects: dict[str, _Subject] = {}
        self._denials: deque[tuple[str, str | None, str]] = deque(maxlen=256)
        self._denial_wake = asyncio.Event()
        self._failed_logins: deque[float] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._undo: list[Any] = []
        self.erasing: set[str] = set()  # device ids being erased (export skips them)
        self._exports = 0
        self._reported_break: int | None = None
        self._token_addresses: dict[str, set[str]] = {}
        self._export_done = asyncio.Condition()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.consents.load()
        await self._load_location()
        for row in await self.db.fetchall("SELECT * FROM privacy_subjects"):
            self._subjects[row["user_id"]] = _Subject(bool(row["restricted"]),
                                                       bool(row["presence_objection"]))
        self._loop = asyncio.get_running_loop()
        self.egress.resolvers = await asyncio.to_thread(egress.system_resolvers)
        self._undo.append(egress.install_process_hook(self.egress))
        self._tasks.append(asyncio.create_task(self._report_denials(), name="egress-audit"))
        await self.retention.load()
        self.retention.start()
        self._spawn(self.verify_audit())  # a log edited while the hub was down shows now

    async def stop(self) -> None:
        await self.retention.stop()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- consent ---------------------------------------------------------------------------

    def allowed(self, purpose: str) -> bool:
        """May the hub use personal data / the network for `purpose` now?"""
        return self.consents.allowed(purpose)

    async def set_consent(self, purpose: str, granted: bool, actor: str | None) -> Consent:
        """Grant or withdraw; withdrawing `location` deletes the stored coordinates at once."""
        consent = await self.consents.set(purpose, granted, actor)
        if purpose == "location":
            if consent.allowed and self._location is None:
                await self._seed_location()
            elif not consent.allowed and (self._location is not None or not granted):
                await self._forget_location()
        return consent

    # -- location --------------------------------------------------------------------------

    def location(self) -> Location | None:
        """The home's coordinates, or None while `location` consent is not given."""
        if not self.allowed("location"):
            return None
        return self._location

    async def set_location(self, latitude: float, longitude: float, elevation: float = 0.0,
                           actor: str | None = None) -> Location:
        if not self.allowed("location"):
            raise Conflict("location consent is not given: coordinates are not stored")
        if not -90 <= latitude <= 90:
            raise ValidationError("latitude", "must be between -90 and 90")
        if not -180 <= longitude <= 180:
            raise ValidationError("longitude", "must be between -180 and 180")
        await self.db.write(
            "INSERT INTO privacy_location(id, latitude, longitude, elevation, ts) "
            "VALUES(1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET latitude = excluded.latitude, "
            "longitude = excluded.longitude, elevation = excluded.elevation, ts = excluded.ts",
            (latitude, longitude, elevation, self.clock.time()),
        )
        self._location = Location(latitude, longitude, elevation,
                                  self.location_config.time_zone)
        self.bus.publish(LocationChanged(True))
        await self.audit(actor, "location.set", "home", {})
        return self._location

    async def _load_location(self) -> None:
        row = await self.db.fetchone("SELECT * FROM privacy_location WHERE id = 1")
        if row is not None and not self.allowed("location"):
            await self._forget_location()  # consent was withdrawn while stopped
            row = None
        if row is not None:
            self._location = Location(row["latitude"], row["longitude"], row["elevation"],
                                      self.location_config.time_zone)
        elif self.allowed("location"):
            await self._seed_location()

    async def _seed_location(self) -> None:
        """With consent, the config's coordinates are the initial value."""
        cfg = self.location_config
        if cfg.latitude is not None and cfg.longitude is not None:
            await self.set_location(cfg.latitude, cfg.longitude, cfg.elevation, actor=None)

    async def _forget_location(self) -> None:
        had = self._location is not None
        self._location = None
        if had:
            self.bus.publish(LocationChanged(False))
        await self.db.write("DELETE FROM privacy_location")
        await self.db.checkpoint()

    # -- restriction and objection ---------------------------------------------------------

    def device_usable(self, device_id: str) -> bool:
        """False for a restricted device: its data is kept but automations and sync skip it."""
        device = self.devices.find(device_id)
        return device is not None and not device.restricted

    def user_restricted(self, user_id: str) -> bool:
        subject = self._subjects.get(user_id)
        return subject is not None and subject.restricted

    def presence_objection(self, user_id: str) -> bool:
        """True when automations must ignore this user's presence."""
        subject = self._subjects.get(user_id)
        return subject is not None and (subject.presence_objection or subject.restricted)

    def may_collect_presence(self, user_id: str, *, is_minor: bool) -> bool:
        """Presence/location data about a person: never for minors, nor restricted users."""
        return not is_minor and not self.user_restricted(user_id)

    async def restrict_device(self, device_id: str, restricted: bool,
                              actor: str | None) -> None:
        device = self.devices.get(device_id)
        if device.restricted != restricted:
            await self.devices.update(device_id, restricted=restricted)
        self.bus.publish(RestrictionChanged("device", device_id, restricted))
        await self.audit(actor, "restriction.device." + ("on" if restricted else "off"),
                         device_id, {})

    async def set_user_subject(self, user_id: str, actor: str | None, *,
                               restricted: bool | None = None,
                               presence_objection: bool | None = None) -> dict[str, Any]:
        if self.accounts is not None:
            self.accounts.user(user_id)  # NotFound for an unknown user
        subject = self._subjects.get(user_id) or _Subject()
        new = _Subject(subject.restricted if restricted is None else restricted,
                       subject.presence_objection if presence_objection is None
                       else presence_objection)
        await self.db.write(
            "INSERT INTO privacy_subjects(user_id, restricted, presence_objection, updated_at) "
            "VALUES(?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET "
            "restricted = excluded.restricted, presence_objection = excluded.presence_objection, "
            "updated_at = excluded.updated_at",
            (user_id, int(new.restricted), int(new.presence_objection), self.clock.time()),
        )
        self._subjects[user_id] = new
        self.bus.publish(RestrictionChanged("user", user_id, new.restricted,
                                                new.presence_objection))
        await self.audit(actor, "restriction.user", user_id,
                         {"restricted": new.restricted,
                          "presence_objection": new.presence_objection})
        return self.subject_json(user_id)

    def subject_json(self, user_id: str) -> dict[str, Any]:
        s = self._subjects.get(user_id) or _Subject()
        return {"user_id": user_id, "restricted": s.restricted,
                "presence_objection": s.presence_objection}

    def restrictions(self) -> dict[str, Any]:
        return {
            "devices": sorted(d.id for d in self.devices.all() if d.restricted),
            "users": [self.subject_json(u) for u in sorted(self._subjects)
                      if self._subjects[u].restricted or self._subjects[u].presence_objection],
        }

    async def forget_user(self, user_id: str) -> None:
        self._subjects.pop(user_id, None)
        await self.db.write("DELETE FROM privacy_subjects WHERE user_id = ?", (user_id,))

    # -- export and erasure ----------------------------------------------------------------

    async def export_source(self) -> ExportSource:
        from hub.privacy.export import ExportSource  # export, erasure, backup: on use only
        wifi: list[dict[str, Any]] = []
        vault = self.vault
        if vault is not None:  # names and dates only: secrets stay sealed
            with contextlib.suppress(Exception):
                wifi = [{"ssid": e.name, "last_used": e.last_used}
                        for e in await vault.entries("wifi")]
        phones: int | None = None
        if vault is not None:  # how many phones are paired with the HomeKit bridge: no keys
            from hub.homekit.bridge import paired_phones

            with contextlib.suppress(Exception):
                phones = await paired_phones(vault)
        loc = self.location()
        await self.db.flush()  # what was recorded before the request is in the export
        return ExportSource(
            db_path=self.db.path, hub_version=self.version,
            notice_version=self.config.notice_version,
            time_zone=self.location_config.time_zone,
            location=None if loc is None else {"latitude": loc.latitude,
                                               "longitude": loc.longitude,
                                               "elevation": loc.elevation},
            wifi_networks=wifi, now=self.clock.time(), batch=self.config.export_batch,
            homekit_paired_phones=phones,
        )

    async def export(self, who: Principal, sink: Sink) -> ExportStats:
        """Stream the requester's export (an owner's is the household's) into `sink`."""
        from hub.privacy.export import write_export

        source = await self.export_source()
        self._exports += 1
        try:
            stats = await write_export(source, who, sink, frozenset(self.erasing))
        finally:
            self._exports -= 1
            async with self._export_done:
                self._export_done.notify_all()
        await self.audit(who.user_id, "privacy.export", who.user_id,
                         {"scope": "household" if who.role >= Role.OWNER else "own",
                          "rows": stats.rows})
        return stats

    async def export_file(self, who: Principal, path: Any) -> ExportStats:
        from hub.privacy.export import export_to_file

        source = await self.export_source()
        stats = await export_to_file(source, who, path)
        await self.audit(who.user_id, "privacy.export", who.user_id,
                         {"scope": "household" if who.role >= Role.OWNER else "own",
                          "rows": stats.rows, "to": "file"})
        return stats

    async def erase_device(self, device_id: str, who: Principal) -> ErasureReport:
        if who.role < Role.ADMIN:
            raise PermissionDenied("erasing a device's data needs the admin role or higher")
        if device_id in self.erasing:
            raise Conflict(f"device {device_id!r} is already being erased")
        from hub.privacy import erase as erasure
        self.erasing.add(device_id)
        try:
            report = await erasure.erase_device(self.db, self.devices, self.states, device_id,
                                                 self.config.export_batch)
            await self._after_exports()
            await self.db.checkpoint(vacuum=True)
        finally:
            self.erasing.discard(device_id)
        await self.audit(who.user_id, "privacy.erase.device", device_id, report.rows)
        return report

    async def erase_user(self, user_id: str, who: Principal) -> ErasureReport:
        if user_id != who.user_id and who.role < Role.OWNER:
            raise PermissionDenied("only the owner may erase another user's data")
        from hub.privacy import erase as erasure

        report = await erasure.erase_user(self.db, self.accounts, self.forget_user, user_id,
                                         self.config.export_batch)
        await self._after_exports()
        await self.db.checkpoint(vacuum=True)
        await self.audit(who.user_id, "privacy.erase.user", user_id, report.rows)
        return report

    async def factory_reset(self, who: Principal, password: str, totp: str | None,
                            address: str) -> ErasureReport:
        """Owner only, after signing in again (password, and the code if TOTP is on)."""
        if who.role < Role.OWNER:
            raise PermissionDenied("only the owner may reset the hub")
        from hub.privacy import erase as erasure

        auth = self.accounts
        if auth is not None:
            await auth.login(who.username, password, totp, address)  # AuthError if wrong
        await self.audit(who.user_id, "privacy.erase.hub", None, {})
        for device in list(self.devices):
            await self.devices.remove(device.id)
            self.states.forget(device.id)
        await self._after_exports()
        report = await erasure.factory_reset(self.db, self.state_dir)
        if auth is not None:
            await auth.load()
        self.consents = ConsentLedger(self.db, self.bus, self.clock, self.config,
                                      self.audit)
        self._location = None
        self._subjects.clear()
        self.bus.publish(Notification("Hub reset to factory state",
                                          "All data and keys were erased; restart the hub.",
                                          "critical", self.clock.time()))
        return report

    async def create_backup(self, passphrase: str, who: Principal) -> Path:
        """An encrypted backup in a private temp file (the caller streams and deletes it)."""
        if who.role < Role.OWNER:
            raise PermissionDenied("only the owner may make backups")
        from hub.privacy import backup

        backup.check_passphrase(passphrase)
        await self.db.flush()
        tmp_dir = self.state_dir.parent / ".uone-backups"
        path = await asyncio.to_thread(self._backup_sync, passphrase, tmp_dir)
        size = (await asyncio.to_thread(path.stat)).st_size
        await self.audit(who.user_id, "backup.create", None, {"bytes": size})
        return path

    def _backup_sync(self, passphrase: str, tmp_dir: Path) -> Path:
        tmp_dir.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="backup-", suffix=".uone", dir=tmp_dir)
        path = Path(name)
        from hub.privacy import backup

        try:
            with os.fdopen(fd, "wb") as fh:
                backup.create_backup(self.db.path, self.state_dir,
                                     self.config_path, fh, passphrase, self.version)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def _after_exports(self, timeout: float = 30.0) -> None:
        """A running export holds a snapshot the WAL checkpoint must not race with."""
        async with self._export_done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._export_done.wait_for(lambda: self._exports == 0), timeout)

    # -- audit and breach signals ----------------------------------------------------------

    async def audit(self, actor: str | None, action: str, target: str | None,
                    details: dict[str, Any]) -> None:
        """Append to the hub's audit log (hub.audit), if this hub has one."""
        log = self._audit_log
        if log is None:
            _LOG.debug("audit (no log): %s %s %s", actor, action, target)
            return
        await log.record(actor, action, target, details)

    async def verify_audit(self) -> ChainReport:
        """Check the audit chain; a break notifies the owner (once per broken row)."""
        report = await verify_chain(self.db)
        if not report.ok and report.first_bad_id != self._reported_break:
            self._reported_break = report.first_bad_id
            await self.signal("audit_chain_broken", {"first_bad_id": report.first_bad_id,
                                                     "reason": report.reason})
        return report

    async def signal(self, kind: str, details: dict[str, Any]) -> None:
        """A possible breach: notify the owner (websocket Notification) and audit it."""
        title, severity = SIGNAL_KINDS.get(kind, (kind.replace("_", " ").capitalize(),
                                                 "warning"))
        safe = {k: v for k, v in details.items() if not _secret_key(k)}
        message = ", ".join(f"{k}: {v}" for k, v in sorted(safe.items())) or title
        self.bus.publish(Notification(title, message, severity, self.clock.time(),
                                          min_role=Role.OWNER))
        _LOG.warning("privacy signal %s: %s", kind, message)
        await self.audit(None, f"signal.{kind}", safe.get("target"), safe)

    async def login_failed(self, username: str | None, address: str | None) -> None:
        """Auth calls this for every failed sign-in; a burst in the window notifies the owner."""
        now = self.clock.monotonic()
        window = self.config.failed_login_window
        self._failed_logins.append(now)
        while self._failed_logins and self._failed_logins[0] < now - window:
            self._failed_logins.popleft()
        if len(self._failed_logins) == self.config.failed_login_burst:
            await self.signal("failed_login_burst", {
                "count": len(self._failed_logins), "window_seconds": window,
                "last_username": username, "last_address": address,
            })

    def note_token_use(self, token_id: str, address: str, user: str | None = None) -> None:
        """Called for every authenticated request: cheap when the address is known."""
        known = self._token_addresses.get(token_id)
        if known is not None and address in known:
            return
        if len(self._token_addresses) > 10_000:
            self._token_addresses.clear()  # bounded memory; the table remembers
        self._spawn(self.token_used(token_id, address, user))

    async def token_used(self, token_id: str, address: str, user: str | None = None) -> bool:
        """A token's use from an address it was never used from (after a first one) notifies
        the owner. Returns True when it did."""
        known = self._token_addresses.get(token_id)
        if known is None:
            rows = await self.db.fetchall(
                "SELECT address FROM privacy_token_addresses WHERE token_id = ?", (token_id,))
            known = self._token_addresses.setdefault(token_id, {r["address"] for r in rows})
        if address in known:
            return False
        first = not known
        known.add(address)
        await self.db.write(
            "INSERT OR IGNORE INTO privacy_token_addresses(token_id, address, first_seen) "
            "VALUES(?, ?, ?)", (token_id, address, self.clock.time()))
        if first:
            return False
        await self.signal("token_new_address",
                          {"token": token_id[:8], "address": address, "user": user})
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="privacy-signal")
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, StorageFull):  # the storage logs a full disk once per outage
                _LOG.debug("privacy task: %s", exc)
                return
            _LOG.error("privacy task failed", exc_info=exc)

    # -- egress refusals -------------------------------------------------------------------

    def _egress_denied(self, address: str, purpose: str | None, where: str) -> None:
        # may run on any thread, inside a socket call: only note it; a task audits it
        self._denials.append((address, purpose, where))
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._denial_wake.set)

    async def _report_denials(self) -> None:
        while True:
            await self._denial_wake.wait()
            self._denial_wake.clear()
            while self._denials:
                address, purpose, where = self._denials.popleft()
                try:
                    await self.audit(None, "egress.refused", address,
                                     {"purpose": purpose, "where": where})
                except Exception:
                    _LOG.exception("could not audit an egress refusal")



def _secret_key(key: str) -> bool:
    k = key.lower()
    return any(s in k for s in ("password", "secret", "token_value", "psk", "key"))
