"""Keys and credentials of cloud sync, from the vault: the sync key (stored, or derived from a
passphrase), each remote client's command key, and the broker password; built into one
`Session` when sync is enabled. Nothing here is logged or leaves the hub unencrypted."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from hub.auth.principal import Role
from hub.cloud.commands import RemoteClient
from hub.cloud.config import CloudConfig
from hub.cloud.crypto import SyncKeys, command_key, derive_from_passphrase, new_key
from hub.cloud.sources import SecretSource
from hub.cloud.topics import Topics
from hub.errors import HubError

SYNC_KEY_SECRET = "cloud/sync_key"
CLIENT_KEY_SECRET = "cloud/client/{name}"


class CloudError(HubError):
    """Cloud sync cannot run as configured (missing secret, bad key...)."""

    status = 409
    code = "cloud_unavailable"


@dataclass(slots=True)
class Session:
    """What an enabled sync holds in memory: keys, credentials, topics, remote clients."""

    keys: SyncKeys
    root: bytes
    topics: Topics
    password: str | None
    clients: list[RemoteClient]
    identifier: str


class CloudKeys:
    """Reads (and at first use makes) the keys cloud sync needs, in the vault."""

    def __init__(self, config: CloudConfig, secrets: SecretSource, hub_id: str) -> None:
        self.config = config
        self.secrets = secrets
        self.hub_id = hub_id

    async def session(self) -> Session:
        """Everything a connection needs; CloudError names the missing or bad secret."""
        config = self.config
        root = await self._sync_root()
        keys = SyncKeys.from_root(self.hub_id, root)
        topics = Topics.of(config.topic_prefix, keys)
        password = None
        if config.password_secret:
            password = await self.secrets.get(config.password_secret)
            if password is None:
                raise CloudError(f"the vault has no secret {config.password_secret!r} "
                                 "(cloud.password_secret)")
        clients = []
        for name, rc in config.remote_clients.items():
            clients.append(RemoteClient(name, keys.opaque("client", name), Role.parse(rc.role),
                                        command_key(await self.client_key(name)),
                                        frozenset(rc.devices)))
        identifier = config.client_id or f"uone-{keys.hub_topic[:20]}"
        return Session(keys, root, topics, password, clients, identifier)

    async def client_key(self, name: str) -> bytes:
        rc = self.config.remote_clients[name]
        return await self._stored_key(rc.key_secret or CLIENT_KEY_SECRET.format(name=name))

    async def _sync_root(self) -> bytes:
        if self.config.passphrase_secret:
            passphrase = await self.secrets.get(self.config.passphrase_secret)
            if not passphrase:
                raise CloudError(f"the vault has no secret {self.config.passphrase_secret!r} "
                                 "(cloud.passphrase_secret)")
            return await asyncio.to_thread(derive_from_passphrase, passphrase, self.hub_id)
        return await self._stored_key(SYNC_KEY_SECRET)

    async def _stored_key(self, secret: str) -> bytes:
        raw = await self.secrets.get(secret)
        if raw is None:
            key = new_key()
            await self.secrets.put(secret, base64.b64encode(key).decode())
            return key
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise CloudError(f"vault secret {secret!r} is not a base64 32-byte key")
        return key
