"""Config section `cloud`: opt-in, end-to-end encrypted sync and remote access over MQTT.

Nothing here switches sync on: the owner's `cloud_sync` consent does (and `remote_access` for
commands). Secrets are never written in this file: passwords, the sync passphrase and the
remote clients' keys are named here and kept in the vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from hub.configtypes import option

CATEGORIES = ("devices", "states", "events", "automations")
Category = Literal["devices", "states", "events", "automations"]


@dataclass(frozen=True, slots=True)
class RemoteClientConfig:
    """A device of the owner's (phone, laptop, installer console) allowed to send commands."""

    role: Literal["owner", "admin", "member", "guest"] = option(
        "member", doc="Role its commands run as; checked exactly like the local API's."
    )
    key_secret: str | None = option(
        None, doc="Vault name of its 32-byte command key; default cloud/client/<name> "
        "(created on first use and exported in its pairing code)."
    )
    devices: list[str] = option(
        factory=list, doc="For role guest: the device ids it may see and command."
    )


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """Opt-in, end-to-end encrypted sync. Nothing connects without consent."""

    broker_url: str | None = option(
        None, doc="mqtts://host:port of the broker (mqtt:// only for loopback tests).",
        pattern=r"mqtts?://[^/\s]+(:\d+)?/?",
    )
    ca_file: str | None = option(
        None, doc="PEM CA bundle the broker's certificate must chain to "
        "(default: the system trust store)."
    )
    client_cert: str | None = option(None, doc="PEM client certificate (mutual TLS).")
    client_key: str | None = option(None, doc="PEM private key of client_cert.")
    username: str | None = option(None, doc="Username for password authentication.")
    password_secret: str | None = option(
        None, doc="Vault name of the broker password (never the password itself)."
    )
    client_id: str | None = option(
        None, doc="MQTT client identifier; default uone-<opaque hub topic id>."
    )
    protocol: Literal["5", "3.1.1"] = option("5", doc="MQTT protocol version.")
    topic_prefix: str = option(
        "uone", doc="First topic level; the rest of every topic is opaque.",
        pattern=r"[A-Za-z0-9_\-/]{1,64}",
    )
    categories: list[Category] = option(
        factory=lambda: ["devices", "states"],
        doc="What is synced: devices, states, events, automations.",
    )
    passphrase_secret: str | None = option(
        None, doc="Vault name of a sync passphrase to derive the key from (scrypt); "
        "default: a random key kept in the vault as cloud/sync_key."
    )
    outbox_limit: int = option(
        10_000, doc="Most messages kept waiting for the broker.", min=10, max=1_000_000
    )
    outbox_policy: Literal["drop_oldest", "drop_newest"] = option(
        "drop_oldest", doc="When the outbox is full: drop the oldest waiting messages "
        "(retained latest states are re-sent anyway) or refuse new ones. Both are counted."
    )
    keepalive: int = option(60, doc="MQTT keepalive, seconds.", min=5, max=3600)
    session_expiry: int = option(
        7 * 86400, doc="Seconds the broker keeps the hub's session (queued commands) "
        "while it is offline.", min=0,
    )
    backoff_initial: float = option(1.0, doc="First reconnect wait, seconds.", min=0.01)
    backoff_max: float = option(300.0, doc="Longest reconnect wait, seconds.", min=0.1)
    max_delay: float | None = option(
        None, doc="Commit (and so publish) a synced change within this many seconds instead of "
        "waiting for storage.commit_interval; lower latency, more SD-card writes. "
        "null: follow commit_interval.", min=0.0, max=60.0,
    )
    max_inflight: int = option(
        100, doc="Messages published and waiting for PUBACK at once.", min=1, max=65535
    )
    command_window: float = option(
        120.0, doc="Remote commands older or newer than this (seconds) are refused.",
        min=1.0, max=3600.0,
    )
    remote_clients: dict[str, RemoteClientConfig] = option(
        factory=dict, doc="Remote clients by name (letters, digits, - and _), with their role."
    )

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        if self.password_secret is not None and self.username is None:
            raise ValueError("password_secret needs a username")
        if self.broker_url is not None:
            parts = urlsplit(self.broker_url)
            if parts.username is not None or parts.password is not None:
                raise ValueError("broker_url: no credentials in the URL; use username and "
                                 "password_secret (the password lives in the vault)")
            if parts.scheme == "mqtt" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
                raise ValueError(
                    "broker_url: plain mqtt:// is only allowed to loopback; use mqtts://"
                )
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories: each category at most once")
        for name in self.remote_clients:
            if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"remote_clients: bad name {name!r} (letters, digits, - and _)")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")

    @property
    def configured(self) -> bool:
        return self.broker_url is not None

    def endpoint(self) -> tuple[str, int, bool]:
        """(host, port, tls) of the broker."""
        assert self.broker_url is not None
        parts = urlsplit(self.broker_url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "", parts.port or (8883 if tls else 1883), tls
