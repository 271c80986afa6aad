"""Config section `auth`: sign-in, tokens and brute-force limits."""

from __future__ import annotations

from dataclasses import dataclass

from hub.configtypes import option


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Accounts, tokens and sign-in throttling."""

    access_token_ttl: float = option(1800.0, doc="Lifetime of an access token, seconds.", min=30)
    refresh_token_ttl: float = option(
        30 * 86400.0, doc="Lifetime of a refresh token, seconds.", min=60
    )
    max_failures: int = option(
        5, doc="Failed logins for one username from one address before answering 429.",
        min=1, max=100,
    )
    lockout_base: float = option(
        30.0, doc="First lockout, seconds; doubles with every further failure.", min=1
    )
    lockout_max: float = option(
        3600.0, doc="Longest lockout, seconds.", min=1
    )
    address_max_failures: int = option(
        20, doc="Failed logins from one address (any username) before that address waits.",
        min=1, max=10_000,
    )
    scrypt_n: int = option(
        1 << 14, doc="scrypt cost (power of two); 2^14 uses 16 MiB per hash.",
        min=1 << 10, max=1 << 20,
    )
    ws_queue_size: int = option(
        1000, doc="Events buffered per websocket before a slow client is dropped.",
        min=10, max=100_000,
    )
