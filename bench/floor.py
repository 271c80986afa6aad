"""The floor of start-to-READY: a process that only imports the hub's stack (asyncio, aiohttp's
server, aiosqlite, PyYAML, orjson; not cryptography, which the hub loads only to issue a
certificate or open a secret), opens a SQLite file and listens, then
says READY=1 like the hub. bench.core runs it beside the hub, in the same run, so the hub's
start is shown against what Python and these libraries cost on this machine that day.

    python -m bench.floor PORT DB_PATH      (NOTIFY_SOCKET set by the caller)
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys


async def _serve(port: int, db_path: str) -> None:
    import aiosqlite
    import orjson  # noqa: F401 - part of the stack the hub imports before READY
    import yaml  # noqa: F401
    from aiohttp import web

    async with aiosqlite.connect(db_path) as db:
        await db.execute("PRAGMA journal_mode = WAL")
        app = web.Application()
        app.router.add_get("/api/health", lambda _r: web.json_response({"status": "ok"}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2]))
