"""Middlewares: errors as JSON 4xx, security headers on every response."""

from __future__ import annotations

import logging

from aiohttp import web

from hub.api.jsonio import json_response
from hub.errors import HubError, RequestTimeout, StorageFull, TooManyRequests
from hub.storage.full import is_disk_full

_LOG = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    err: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return {"error": err}


@web.middleware
async def errors(request: web.Request, handler):
    """Map HubError leaves to their status; anything else is a logged 500 (and a bug)."""
    try:
        return await handler(request)
    except HubError as exc:
        headers = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
        response = json_response({"error": exc.to_json()}, exc.status, headers)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of a slow body is not worth waiting for
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        message = exc.reason if exc.status != 413 else "request body too large"
        return json_response(error_body(code, message), exc.status)
    except Exception as exc:
        if is_disk_full(exc):  # e.g. a VACUUM or a file written outside the batch writer
            full = StorageFull("the hub's disk is full: free some space (see /api/health)")
            return json_response({"error": full.to_json()}, full.status)
        _LOG.exception("unhandled error in %s %s", request.method, request.path)
        if _answer_begun(request) and request.transport is not None:
            # e.g. a websocket after its upgrade: an HTTP 500 would be written into it;
            # end the connection instead
            request.transport.close()
        return json_response(error_body("internal_error", "internal error"), 500)


def _answer_begun(request: web.Request) -> bool:
    writer = request.writer
    return writer is not None and writer.output_size > 0 and request.transport is not None


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
