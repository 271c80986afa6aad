"""The one authentication middleware: every route but the PUBLIC ones needs a valid token.

It reads the matched handler's `@requires(...)` declaration (undeclared = owner-only), checks
`Authorization: Bearer <token>` against the in-memory token cache, sets
`request[PRINCIPAL_KEY]` and answers JSON 401/403 itself. Unknown paths fall through to the
router's 404/405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import hdrs, web

from hub.api.access import PRINCIPAL_KEY, required_role
from hub.api.jsonio import json_response
from hub.api.keys import HUB_KEY
from hub.api.middlewares import error_body
from hub.errors import AuthError, ValidationError

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])
_FIRST_MESSAGE_ATTR = "__uone_token_in_first_message__"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="uone-hub"'}


def token_in_first_message(handler: Handler) -> Handler:
    """For websocket routes: an upgrade without a header may send its token as first message.

    The handler must then authenticate the connection itself before sending anything.
    """
    setattr(handler, _FIRST_MESSAGE_ATTR, True)
    return handler


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    value = value.strip()
    if not value.isascii():  # tokens are URL-safe base64; the parser keeps other bytes as
        raise ValidationError(hdrs.AUTHORIZATION, "the token is not ASCII text")  # surrogates
    return value


@web.middleware
async def authenticate(request: web.Request, handler):
    match = request.match_info
    if getattr(match, "http_exception", None) is not None:
        return await handler(request)  # 404/405 from the router
    target = match.route.handler
    role = required_role(target)
    if isinstance(role, str):  # PUBLIC
        return await handler(request)
    try:
        raw = bearer_token(request)
    except ValidationError as exc:
        return json_response({"error": exc.to_json()}, exc.status)
    if raw is None:
        if getattr(target, _FIRST_MESSAGE_ATTR, False) and _is_upgrade(request):
            return await handler(request)
        return json_response(
            error_body("unauthorized", "sign in first: send 'Authorization: Bearer <token>'"),
            401, _CHALLENGE)
    auth = request.app[HUB_KEY].auth
    try:
        try:
            who = auth.authenticate(raw)  # the fast path: a hash and a dict lookup
        except AuthError:
            who = await auth.resolve(raw)  # made by another process a moment ago?
    except AuthError as exc:
        return json_response(error_body(exc.code, str(exc)), 401, _CHALLENGE)
    if who.role < role:
        return json_response(
            error_body("forbidden", f"needs the {role.label} role or higher"), 403)
    request[PRINCIPAL_KEY] = who
    return await handler(request)


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
