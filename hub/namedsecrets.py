"""Named secrets: values the config refers to by name (a broker password, a sync passphrase).

The config never holds a secret, only its name (`cloud.password_secret: broker`); the value
lives in the vault as kind "secret", name NAME, secret {"value": "<string>"}. They are set
with `uone-hub vault set NAME` (value from standard input) or `PUT /api/vault/secrets/NAME`
(owner only), listed by name and date, deleted; never read back by the CLI or the API.
Readers: the cloud sync (`hub.cloud.sources.VaultSecrets`) and integrations
(`IntegrationContext.named_secret`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from hub.audit import AuditLog
    from hub.config import Config
    from hub.vault import EntryInfo, Vault

KIND = "secret"
LEGACY_KIND = "broker"  # where the cloud kept broker passwords before named secrets
MAX_VALUE = 4096  # characters; a passphrase or a password, not a file
# Names the cloud generates for its own keys (hub/cloud/service.py SYNC_KEY_SECRET and
# CLIENT_KEY_SECRET): a named secret there would replace the end-to-end keys under the
# devices already paired.
RESERVED = ("cloud/sync_key", "cloud/client/")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a named secret: never its value."""

    name: str
    created_at: float
    updated_at: float
    used_by: tuple[str, ...]  # config keys that name it, e.g. cloud.password_secret

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at,
                "updated_at": self.updated_at, "used_by": list(self.used_by)}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValidationError("name", "1-128 letters, digits and . _ / -, starting with a "
                                      "letter or digit")
    if name == RESERVED[0] or name.startswith(RESERVED[1]):
        raise ValidationError("name", f"{name!r} is one of the cloud's own keys "
                                      f"({RESERVED[0]}, {RESERVED[1]}...)")
    return name


def check_value(value: str) -> str:
    if not value:
        raise ValidationError("value", "must not be empty")
    if len(value) > MAX_VALUE:
        raise ValidationError("value", f"at most {MAX_VALUE} characters")
    if "\0" in value:
        raise ValidationError("value", "must not contain NUL")
    return value


def referenced(config: Config) -> dict[str, str]:
    """Config key -> secret name, for every name the config asks the owner to set (the
    cloud's generated keys, e.g. remote clients' `key_secret`, are not typed in)."""
    cloud = config.cloud
    out = {key: name for key, name in (("cloud.password_secret", cloud.password_secret),
                                        ("cloud.passphrase_secret", cloud.passphrase_secret))
           if name}
    for integration, settings in (config.integrations or {}).items():
        if isinstance(settings, dict):  # e.g. integrations.mqtt.password_secret
            out.update({f"integrations.{integration}.{key}": name
                        for key, name in settings.items()
                        if key.endswith("_secret") and isinstance(name, str) and name})
    return out


class NamedSecrets:
    """Set, list and delete named secrets in `vault`, each change in the audit log."""

    def __init__(self, vault: Vault, audit: AuditLog, config: Config) -> None:
        self._vault = vault
        self._audit = audit
        self._config = config

    async def set(self, name: str, value: str, actor: str | None) -> tuple[SecretInfo, bool]:
        """Store or replace; returns (info, created). Durable when it returns."""
        check_name(name)
        check_value(value)
        entry, created = await self._vault.put(KIND, name, {"value": value})
        await self._audit.record(actor, "vault.secret.set", name, {"created": created})
        return self._info(entry), created

    async def entries(self) -> list[SecretInfo]:
        return [self._info(e) for e in await self._vault.entries(KIND)]

    async def references(self) -> list[dict[str, Any]]:
        """Each name the config refers to, and whether the vault holds it (as a named
        secret, or under the cloud's older kind "broker")."""
        return [{"key": key, "name": name,
                 "set": await self._vault.exists(KIND, name)
                 or await self._vault.exists(LEGACY_KIND, name)}
                for key, name in referenced(self._config).items()]

    async def delete(self, name: str, actor: str | None) -> None:
        check_name(name)
        if not await self._vault.delete(KIND, name):
            raise NotFound(f"no secret {name!r} in the vault")
        await self._audit.record(actor, "vault.secret.delete", name, {})

    def _info(self, entry: EntryInfo) -> SecretInfo:
        used = tuple(k for k, n in referenced(self._config).items() if n == entry.name)
        return SecretInfo(entry.name, entry.created_at, entry.updated_at, used)
