"""Provisioning: start a job for a discovered device, follow it (also on the websocket)."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import principal, requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import ANY, BOOL, STR, array, describe, nullable, obj
from hub.auth.principal import Role

JOB = obj(("id", "state", "kind", "encrypted"), extra=True, id=STR, state=STR, kind=STR,
          encrypted=BOOL, warnings=array(STR), attestation=nullable(ANY),
          error=nullable(ANY), device_id=nullable(STR), redirect_url=nullable(STR))


@requires(Role.ADMIN)
@describe("Give a discovered device Wi-Fi from the vault, attest it, adopt it", status=202,
          tags=("provisioning",), body=obj(("ssid",), ssid=STR), response=JOB,
          errors=(404, 409),
          description="Starts a job; progress and outcome are `provisioning` events on the "
                      "websocket and GET /api/provisioning/{job_id}. Uone devices are attested "
                      "first and get the credentials encrypted to their certified key; Improv "
                      "devices get them in clear (`encrypted: false`, with a warning).")
async def provision(request: web.Request) -> web.Response:
    """`{"ssid": ...}` (a network in the vault): 202 with the job; progress as events."""
    hub = request.app[HUB_KEY]
    body = await read_json(request)
    reject_unknown(body, {"ssid"})
    ssid = field(body, "ssid", str)
    target = hub.provisioning.target_for(request.match_info["discovery_id"])
    job = await hub.provisioning.start_job(target, ssid, principal(request).user_id)
    return json_response(job.to_json(), status=202,
                         headers={"Location": f"/api/provisioning/{job.id}"})


@requires(Role.ADMIN)
@describe("A provisioning job: its state, steps, attestation and outcome",
          tags=("provisioning",), response=JOB, errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(hub.provisioning.get(request.match_info["job_id"]).to_json())


@requires(Role.ADMIN)
@describe("Recent provisioning jobs", tags=("provisioning",),
          response=obj(("jobs",), jobs=array(JOB)))
async def list_jobs(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response({"jobs": [j.to_json() for j in hub.provisioning.jobs()]})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/discovered/{discovery_id}/provision", provision)
    r.add_get("/api/provisioning", list_jobs)
    r.add_get("/api/provisioning/{job_id}", get_job)
