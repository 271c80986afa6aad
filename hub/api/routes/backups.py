"""POST /api/backups: an encrypted backup of the whole hub, streamed to the owner."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import BinaryIO

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
        fh, size = await asyncio.to_thread(_open_sized, path)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(hub.clock.time()))
        resp = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="uone-backup-{stamp}.uone"',
            "Content-Length": str(size),
        })
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(fh.read, _CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await asyncio.to_thread(_close_and_delete, fh, path)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/backups", post_backup)


def _open_sized(path: Path) -> tuple[BinaryIO, int]:
    fh = path.open("rb")
    return fh, os.fstat(fh.fileno()).st_size


def _close_and_delete(fh: BinaryIO, path: Path) -> None:
    fh.close()
    path.unlink(missing_ok=True)
