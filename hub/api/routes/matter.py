"""Matter: commission a device with its pairing code (a job followed on the websocket like
provisioning jobs), open a commissioning window for another ecosystem.

The Matter integration does the work; this module only finds it running and reports its
progress (`matter_commissioning` events), so the core never imports the integration.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field as body_field
from hub.api.jsonio import json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, NUM, STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.bus import JobStep
from hub.errors import Conflict, DeviceUnavailable, NotFound, ValidationError
from hub.provisioning.wifi import WifiCredentials, check_ssid

KEEP_JOBS = 50
JOB = obj(("id", "state"), extra=True, id=STR, state=STR, device_id=nullable(STR),
          attestation=nullable(ANY), error=nullable(ANY), history=array(ANY), created_at=NUM)


@dataclass(frozen=True, slots=True)
class MatterCommissioning(JobStep):
    """A Matter commissioning job moved to a new step (or ended)."""

    kind: ClassVar[str] = "matter_commissioning"


@dataclass
class CommissionJob:
    id: str
    actor: str | None
    created_at: float
    state: str = "pending"  # pending | commissioning | interviewed | attested | succeeded
    #                         or failed
    device_id: str | None = None
    attestation: dict[str, Any] | None = None  # as a provisioning job shows a Uone device's
    error: dict[str, str] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "device_id": self.device_id,
                "attestation": self.attestation, "error": self.error, "history": list(self.history),
                "created_at": self.created_at}


_JOBS: web.AppKey[dict[str, CommissionJob]] = web.AppKey("matter_jobs")
_TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("matter_tasks")


@requires(Role.ADMIN)
@describe("Commission a Matter device over IP with its pairing code", status=202,
          tags=("matter",), body=obj(("code",), code=STR, ssid=STR), response=JOB,
          errors=(400, 409, 503),
          description="`code`: the 11/21-digit manual pairing code or the MT:... QR payload. "
                      "`ssid` (optional): commission over BLE and give the device this Wi-Fi "
                      "network from the vault (400 naming `ssid` when it is not there). "
                      "Starts a job; progress is `matter_commissioning` events on the "
                      "websocket and GET /api/matter/commission/{job_id}. A malformed code "
                      "is a 400 naming `code`; Matter not configured a 409; a server that is not "
                      "connected a 503.")
async def commission(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    body = await read_json(request)
    reject_unknown(body, {"code", "ssid"})
    code = body_field(body, "code", str)
    ssid = body_field(body, "ssid", str, required=False, default=None)
    matter = _matter(request)
    code = matter.parse_code(code)  # 400 before anything starts
    wifi = None
    if ssid is not None:  # BLE commissioning: the device gets this network from the vault
        wifi = await hub.provisioning.wifi.credentials(check_ssid(ssid))
    if not matter.connected:
        raise DeviceUnavailable(matter.health().get("problem", "Matter server not connected"))
    actor = principal(request).user_id
    job = CommissionJob(uuid.uuid4().hex[:12], actor, hub.clock.time())
    jobs = request.app[_JOBS]
    jobs[job.id] = job
    for old in list(jobs)[:-KEEP_JOBS]:
        del jobs[old]
    _step(request.app, job, "pending", None)
    task = asyncio.create_task(_run(request.app, matter, job, code, wifi))
    request.app[_TASKS].add(task)
    task.add_done_callback(request.app[_TASKS].discard)
    return json_response(job.to_json(), status=202,
                         headers={"Location": f"/api/matter/commission/{job.id}"})


@requires(Role.ADMIN)
@describe("A Matter commissioning job", tags=("matter",), response=JOB, errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    job = request.app[_JOBS].get(request.match_info["job_id"])
    if job is None:
        raise NotFound("no such Matter commissioning job")
    return json_response(job.to_json())


@requires(Role.ADMIN)
@describe("Let another controller (a phone ecosystem) also commission this Matter device",
          tags=("matter",), body=obj((), timeout=NUM),
          response=obj(("manual_code",), extra=True, manual_code=STR, qr_code=STR),
          errors=(400, 404, 409, 503))
async def open_window(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    body = await read_json(request) if request.can_read_body else {}
    reject_unknown(body, {"timeout"})
    timeout = body_field(body, "timeout", int, required=False, default=300)
    if not 60 <= timeout <= 900:
        raise ValidationError("timeout", "seconds between 60 and 900")
    device = hub.devices.get(request.match_info["device_id"])
    if device.integration != "matter":
        raise ValidationError(None, "not a Matter device")
    codes = await _matter(request).open_commissioning_window(device, timeout)
    await hub.audit.record(principal(request).user_id, "matter.commissioning_window",
                           device.id, {"timeout": timeout})
    return json_response({**codes, "timeout": timeout})


def setup(app: web.Application) -> None:
    app[_JOBS] = {}
    app[_TASKS] = set()
    app.on_cleanup.append(_cancel_tasks)
    r = app.router
    r.add_post("/api/matter/commission", commission)
    r.add_get("/api/matter/commission/{job_id}", get_job)
    r.add_post("/api/matter/devices/{device_id}/commissioning-window", open_window)


# -- internals -----------------------------------------------------------------------------

def _matter(request: web.Request) -> Any:
    instance = request.app[HUB_KEY].integrations.instance("matter")
    if instance is None:
        raise Conflict("the Matter integration is not running (add integrations.matter to "
                       "the config; docs/matter.md)")
    return instance


async def _run(app: web.Application, matter: Any, job: CommissionJob, code: str,
               wifi: WifiCredentials | None) -> None:
    hub = app[HUB_KEY]
    try:
        device = await matter.commission(
            code, lambda state, message: _step(app, job, state, message), wifi)
    except Exception as exc:  # the job ends failed, with why; never a crash of the API
        code_name = getattr(exc, "code", None) or type(exc).__name__
        job.error = {"code": str(code_name), "message": str(exc)}
        job.attestation = getattr(exc, "attestation", None)  # refused for it: which check
        _step(app, job, "failed", str(exc))
        await hub.audit.record(job.actor, "matter.commission", None,
                               {"outcome": "failed", "code": job.error["code"]})
        return
    job.device_id = device.id
    job.attestation = matter.attestation(device)
    _step(app, job, "succeeded", f"added {device.name}")
    await hub.audit.record(job.actor, "matter.commission", device.id, {"outcome": "succeeded"})


def _step(app: web.Application, job: CommissionJob, state: str, message: str | None) -> None:
    hub = app[HUB_KEY]
    job.state = state
    job.history.append({"state": state, "message": message, "at": hub.clock.time()})
    hub.bus.publish(MatterCommissioning(job.id, state, job.to_json()))


async def _cancel_tasks(app: web.Application) -> None:
    tasks: list[asyncio.Task[None]] = [*app[_TASKS]]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
