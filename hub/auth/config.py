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
