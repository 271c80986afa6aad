"""The dashboard: static files served by the hub itself (no CDN, no build step).

The files hold no data; everything they show comes from the authenticated API, so serving
them needs no token. Paths are resolved inside hub/web only.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from pathlib import Path

from aiohttp import web

from hub.api.access import PUBLIC, requires
from hub.api.spec import describe

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".html": "text/html"}


_File = tuple[bytes, str, str]  # body, content type, etag
FILES = web.AppKey("dashboard_files", dict[str, _File])


def _read_files() -> dict[str, _File]:
    """Every file of the dashboard, read once at start (in a thread): a request can only name
    one of these."""
    out = {}
    for path in WEB_ROOT.rglob("*"):
        if path.is_file():
            body = path.read_bytes()
            ctype = (_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
                     or "application/octet-stream")
            out[path.relative_to(WEB_ROOT).as_posix()] = (
                body, ctype, hashlib.sha256(body).hexdigest()[:16])
    return out


def _serve(request: web.Request, rel: str, cache_control: str) -> web.Response:
    found = request.app[FILES].get(rel)
    if found is None:
        raise web.HTTPNotFound()
    body, ctype, etag = found
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache_control}
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=ctype, charset="utf-8" if ctype.startswith("text")
                        else None, headers=headers)


@requires(PUBLIC)
@describe("The dashboard's page (HTML)", tags=("dashboard",),
          description="Static; holds no data. Everything it shows comes from this API.")
async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html", "no-cache")


@requires(PUBLIC)
@describe("The dashboard's scripts, styles and icon", tags=("dashboard",), errors=(404,),
          description="Static files of the dashboard, served by the hub itself (no CDN).")
async def static(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["path"], "no-cache")


def setup(app: web.Application) -> None:
    app.on_startup.append(_load)
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static)


async def _load(app: web.Application) -> None:
    app[FILES] = await asyncio.to_thread(_read_files)
