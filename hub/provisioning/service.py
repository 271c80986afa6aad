"""Provisioning jobs: give a discovered device the home's Wi-Fi, check it, adopt it.

A job runs as one task and reports every step as a `ProvisioningUpdate` on the bus (so on
the websocket) and in `GET /api/provisioning/{job}`. Uone devices are attested before they
get anything; a device that fails attestation is never given Wi-Fi and never adopted, and
the attempt goes to the audit log. Improv devices cannot prove who made them and receive
the password in clear over BLE: their jobs say `"encrypted": false` with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.errors import ConfigError, Conflict, NotFound, ValidationError
from hub.provisioning.evidence import Attestation, Evidence
from hub.provisioning.jobs import (
    FINAL,
    Job,
    JobFailed,
    ProvisioningUpdate,
    ProvisionTarget,
    target_from_discovered,
)
from hub.provisioning.wifi import WifiNetworks, check_ssid

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from hub.audit import AuditLog
    from hub.bus import EventBus
    from hub.clock import Clock
    from hub.discovery.service import DiscoveryService
    from hub.provisioning.attestation import AttestationVerifier
    from hub.provisioning.config import ProvisioningConfig
    from hub.vault import Vault

    Signal = Callable[[str, dict[str, Any]], Coroutine[Any, Any, None]]
    RunningIntegration = Callable[[str], tuple[Any, Any] | None]

_LOG = logging.getLogger(__name__)

MAX_JOBS = 100
IMPROV_WARNING = (
    "Improv Wi-Fi sends the password unencrypted over Bluetooth: anyone within radio range "
    "could read it. Its only protection is pressing the device's button. Uone devices "
    "receive it encrypted to their certified key."
)


class ProvisioningService:
    """Runs provisioning jobs and owns the attestation verifier and the hub id."""

    def __init__(self, config: ProvisioningConfig, *, state_dir: Path, config_path: Path,
                 problem: Callable[..., Any], clock: Clock, bus: EventBus, vault: Vault,
                 audit: AuditLog | None, discovery: DiscoveryService,
                 signal: Signal | None = None,
                 integration: RunningIntegration | None = None) -> None:
        """`problem` places a config error at its file:line (the loaded document's);
        `signal(kind, details)` tells the owner of a possible breach (the privacy center);
        `integration(name)` is a running integration's (instance, context), or None."""
        self.config = config
        self.state_dir = state_dir
        self.config_path = config_path
        self._problem = problem
        self.clock = clock
        self.bus = bus
        self.vault = vault
        self.discovery = discovery
        self._audit_log = audit
        self._signal = signal
        self.integration = integration or (lambda name: None)
        self.hub_id = ""
        # The X.509 verifier loads with the trust anchors, or at the first attestation when
        # none are configured: a hub without Uone devices never loads it (start-up, memory).
        self.verifier: AttestationVerifier | None = None
        self.wifi = WifiNetworks(vault)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._signals: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.hub_id = await asyncio.to_thread(_load_hub_id, self.state_dir)
        base = self.config_path.parent
        if not (self.config.trust_anchors or self.config.crl_files):
            return
        try:
            self.verifier = await asyncio.to_thread(
                _verifier_from_files, self.config.trust_anchors,
                self.config.crl_files, self.config.revoked_serials, base,
                self._problem)
        except ConfigError as exc:
            # not fatal for the hub (lights must keep working), fatal for attestation
            _LOG.error("attestation is off until the config is fixed:\n%s", exc)
            from hub.provisioning.attestation import AttestationVerifier

            self.verifier = AttestationVerifier([], broken=str(exc))

    async def stop(self) -> None:
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._signals:  # the owner hears about every failed attestation, even at stop
            await asyncio.gather(*self._signals, return_exceptions=True)

    def verify(self, evidence: Evidence) -> Attestation:
        """Check evidence; a device that fails is a possible breach and the owner is told."""
        if self.verifier is None:  # no anchors configured: every chain will be untrusted
            self.verifier = _verifier_from_files([], [], self.config.revoked_serials)
        result = self.verifier.verify(
            evidence, dt.datetime.fromtimestamp(self.clock.time(), dt.UTC))
        if result.outcome == "failed":
            self._breach_signal(result, evidence)
        return result

    def _breach_signal(self, result: Attestation, evidence: Evidence) -> None:
        if self._signal is None:
            return
        details = {"target": (evidence.advertised_dids or ("?",))[0], "code": result.code,
                   "reason": result.reason, "did": result.did, "mac": result.mac}
        task = asyncio.get_running_loop().create_task(
            self._signal("attestation_failed", details), name="attestation-signal")
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    # -- jobs --------------------------------------------------------------------------------

    def target_for(self, discovery_id: str) -> ProvisionTarget:
        """The provisioning target for a discovered device (from the discovery registry)."""
        item = self.discovery.registry.find(discovery_id)
        if item is None:
            raise NotFound(f"no discovered device {discovery_id!r}")
        return target_from_discovered(item)

    async def start_job(self, target: ProvisionTarget, ssid: str, actor: str | None) -> Job:
        """Check the request, then run the job in the background; returns it at once."""
        check_ssid(ssid)
        if not await self.vault.exists("wifi", ssid):
            raise ValidationError("ssid", f"no Wi-Fi network {ssid!r} in the vault; add it "
                                  "first with PUT /api/wifi/networks/{ssid}")
        for job in self._jobs.values():
            if job.target.discovery_id == target.discovery_id and job.state not in FINAL:
                raise Conflict(f"device {target.discovery_id} is already being provisioned "
                               f"(job {job.id})")
        now = self.clock.time()
        job = Job(uuid.uuid4().hex[:16], target, ssid, actor, now, updated_at=now)
        if target.kind == "improv":
            job.encrypted = False
            job.warnings.append(IMPROV_WARNING)
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            oldest = next(iter(self._jobs.values()))
            if oldest.state not in FINAL:
                break
            self._jobs.popitem(last=False)
        await self.audit(job, "provisioning.started", {"kind": target.kind, "ssid": ssid})
        self.step(job, "pending")
        job.task = asyncio.get_running_loop().create_task(self._run(job),
                                                          name=f"provision-{job.id}")
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(f"no provisioning job {job_id!r}") from None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    # -- running -----------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            if job.target.kind == "uone":
                from hub.provisioning.uone_job import run_uone

                await run_uone(self, job)
            else:
                from hub.provisioning.improv import run_improv

                await run_improv(self, job)
        except JobFailed as exc:
            await self._fail(job, exc.code, str(exc))
        except asyncio.CancelledError:
            await self._fail(job, "cancelled", "the hub stopped before the job finished")
            raise
        except Exception as exc:  # a bug; the job still ends in a clear state
            _LOG.exception("provisioning job %s crashed", job.id)
            await self._fail(job, "internal_error", f"{type(exc).__name__}: {exc}")
        else:
            await self.audit(job, "provisioning.succeeded", {
                "device_id": job.device_id,
                "attestation": job.attestation.outcome if job.attestation else None})
            self.step(job, "succeeded")
        finally:
            job.done.set()

    def step(self, job: Job, state: str, message: str | None = None) -> None:
        job.state = state
        job.updated_at = self.clock.time()
        entry: dict[str, Any] = {"state": state, "ts": job.updated_at}
        if message:
            entry["message"] = message
        job.history.append(entry)
        self.bus.publish(ProvisioningUpdate(job.id, state, job.to_json()))

    async def _fail(self, job: Job, code: str, message: str) -> None:
        """Audit first, then announce: once a job reads `failed`, its record is durable."""
        job.error = {"code": code, "message": message}
        details: dict[str, Any] = {"code": code, "message": message,
                                   "credentials_sent": job.credentials_sent}
        if job.attestation is not None:
            details["attestation"] = job.attestation.to_json()
        await self.audit(job, "provisioning.failed", details)
        self.step(job, "failed", message)

    async def audit(self, job: Job, action: str, details: dict[str, Any]) -> None:
        audit = self._audit_log
        details = {"job": job.id, "address": job.target.address, **details}
        if audit is None:
            _LOG.info("audit %s %s %s", action, job.target.discovery_id, details)
            return
        with contextlib.suppress(Exception):
            await audit.record(job.actor, action, job.target.discovery_id, details)


def _verifier_from_files(*args: Any) -> AttestationVerifier:
    from hub.provisioning.attestation import AttestationVerifier

    return AttestationVerifier.from_files(*args)


HUB_ID_FILE = "hub-id"


def _load_hub_id(state_dir: Path) -> str:
    path = state_dir / HUB_ID_FILE
    if path.exists():
        return path.read_text().strip()
    hub_id = "hub-" + uuid.uuid4().hex
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hub_id + "\n")
    return hub_id
