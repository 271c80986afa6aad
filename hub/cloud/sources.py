"""Where cloud sync gets consent and secrets from: tiny Protocols, so the privacy center
(`hub.privacy.allowed(purpose)` + its `ConsentChanged` bus event) and the vault (`hub.vault`)
plug in with one line each, and tests and benchmarks can hand in their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hub.bus import EventBus

CLOUD_SYNC = "cloud_sync"
REMOTE_ACCESS = "remote_access"


@runtime_checkable
class ConsentSource(Protocol):
    def allowed(self, purpose: str) -> bool:
        """Whether the owner currently consents to `purpose`."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` after any consent changed; returns the unsubscribe."""
        ...


@runtime_checkable
class SecretSource(Protocol):
    async def get(self, name: str) -> str | None:
        """The secret stored under `name`, or None."""
        ...

    async def put(self, name: str, value: str) -> None:
        """Store a secret (used for keys the hub generates)."""
        ...


class NoConsent:
    """Until the privacy center is wired in: nothing is consented, so nothing connects."""

    def allowed(self, purpose: str) -> bool:
        return False

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


class NoVault:
    """Until the vault is wired in: no secrets, so no broker password and no sync key."""

    async def get(self, name: str) -> str | None:
        return None

    async def put(self, name: str, value: str) -> None:
        from hub.errors import HubError

        raise HubError("no vault available to store cloud keys")


class MemoryConsent:
    """Consent held in memory (tests, benchmarks, and a hub without the privacy center)."""

    def __init__(self, *purposes: str) -> None:
        self._granted = set(purposes)
        self._callbacks: list[Callable[[], None]] = []

    def allowed(self, purpose: str) -> bool:
        return purpose in self._granted

    def set(self, purpose: str, granted: bool) -> None:
        if granted:
            self._granted.add(purpose)
        else:
            self._granted.discard(purpose)
        for cb in list(self._callbacks):
            cb()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None


class MemorySecrets:
    """Secrets held in memory (tests and benchmarks)."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    async def get(self, name: str) -> str | None:
        return self.values.get(name)

    async def put(self, name: str, value: str) -> None:
        self.values[name] = value


VAULT_KIND = "broker"  # the cloud's generated keys; broker passwords before named secrets


class VaultSecrets:
    """Cloud secrets in the credential vault, named by the config (`password_secret`...):
    the owner's named secrets (kind `secret`, set with `uone-hub vault set`) first, then
    kind `broker` (the cloud's own keys, and passwords stored before named secrets), each
    a {"value": ...} entry (a broker password entered as {"password": ...} is read too)."""

    def __init__(self, vault: Any) -> None:
        self._vault = vault

    async def get(self, name: str) -> str | None:
        from hub.errors import NotFound
        from hub.namedsecrets import KIND

        for kind in (KIND, VAULT_KIND):
            try:
                secret = await self._vault.get(kind, name)
            except NotFound:
                continue
            value = secret.get("value", secret.get("password"))
            return value if isinstance(value, str) else None
        return None

    async def put(self, name: str, value: str) -> None:
        await self._vault.put(VAULT_KIND, name, {"value": value}, {"purpose": "cloud_sync"})


class PrivacyConsent:
    """The privacy center's ledger: `allowed(purpose)` and its `ConsentChanged` events."""

    def __init__(self, allowed: Callable[[str], bool], bus: EventBus) -> None:
        self._allowed = allowed
        self._bus = bus

    def allowed(self, purpose: str) -> bool:
        return bool(self._allowed(purpose))

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        from hub.privacy.consent import ConsentChanged

        return self._bus.subscribe(ConsentChanged, lambda _event: callback())
