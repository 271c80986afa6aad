"""The floor of any aiohttp websocket service on this machine: a bare echo server.

`python -m bench.echo PORT` serves `GET /ws`, sending every text frame straight back. The
automation benchmark (`--echo-row`) measures it with the same client and the same counts,
so its one-at-a-time p99 shows how much of the hub's p99 is this machine's own jitter.
"""

from __future__ import annotations

import sys

from aiohttp import WSMsgType, web


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", _echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
