"""POST /api/backups: an encrypted backup of the whole hub, streamed to the owner."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.routes.privacy import who
from hub.api.spec import STR, describe, obj
from hub.auth.principal import Role

_CHUNK = 256 * 1024


@requires(Role.OWNER)
@describe("An encrypted backup of the whole hub (database, keys, config), streamed",
          tags=("privacy",), body=obj(["passphrase"], passphrase=STR),
          description="application/octet-stream; scrypt + AES-256-GCM under the passphrase, "
          "which the hub never stores.")
async def post_backup(request: web.Request) -> web.StreamResponse:
    """Body {"passphrase": "..."} (12+ characters; the hub never stores it)."""
    hub = request.app[HUB_KEY]
    body = await read_json(request)
    reject_unknown(body, {"passphrase"})
    passphrase = field(body, "passphrase", str)
    path = await hub.privacy.create_backup(passphrase, who(request))
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(hub.clock.time()))
        resp = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="uone-backup-{stamp}.uone"',
            "Content-Length": str(path.stat().st_size),
        })
        await resp.prepare(request)
        with path.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        path.unlink(missing_ok=True)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/backups", post_backup)
