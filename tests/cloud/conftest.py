"""Fixtures for cloud sync: a real mosquitto (TLS test CA + passwords) and hubs wired to it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.cloud.crypto import Pairing
from hub.cloud.remote import CloudPeer
from hub.cloud.sources import CLOUD_SYNC, REMOTE_ACCESS, MemoryConsent, MemorySecrets
from hub.config import load_config
from hub.hub import Hub
from hub.state import HISTORY_ROWS
from tests.conftest import write_config
from tests.doubles import mosquitto
from tests.doubles.mosquitto import broker, mosquitto_pki  # noqa: F401 - shared fixtures

USERS = {"hub": "hub-pass-1", "phone": "phone-pass-2", "eve": "eve-pass-3"}
SYNC_KEY = base64.b64encode(bytes(range(32))).decode()
PHONE_KEY = base64.b64encode(bytes(range(100, 132))).decode()
ALL_CATEGORIES = ["devices", "states", "events", "automations"]


@pytest.fixture
def mosquitto_users() -> dict[str, str]:
    return USERS


def cloud_section(b: mosquitto.Mosquitto, **over: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "broker_url": b.url,
        "ca_file": str(b.pki.ca),
        "username": "hub",
        "password_secret": "cloud/broker_password",
        "categories": ALL_CATEGORIES,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "keepalive": 5,
        "remote_clients": {"phone": {"role": "member"}},
    }
    section.update(over)
    return section


def secrets() -> MemorySecrets:
    return MemorySecrets({"cloud/broker_password": USERS["hub"], "cloud/sync_key": SYNC_KEY,
                          "cloud/client/phone": PHONE_KEY})


@pytest.fixture
def make_hub(tmp_path: Path) -> Callable[..., Any]:
    """make_hub(cloud_section, consent=..., extra=...) -> an unstarted Hub with cloud wiring."""

    def make(cloud: dict[str, Any] | None, *, consent: MemoryConsent | None = None,
             vault: MemorySecrets | None = None, extra: dict[str, Any] | None = None,
             name: str = "config.yaml", real_consent: bool = False) -> Hub:
        cfg = {"cloud": cloud or {}, **(extra or {})}
        hub = Hub(load_config(write_config(tmp_path, cfg, name=name)))
        if not real_consent:  # else: the privacy center's ledger (hub.privacy)
            hub.cloud.consent = consent if consent is not None else MemoryConsent(
                CLOUD_SYNC, REMOTE_ACCESS)
        hub.cloud.secrets = vault if vault is not None else secrets()
        return hub

    return make


def pairing_for(hub: Hub, client: str | None = "phone") -> Pairing:
    session = hub.cloud._session
    assert session is not None
    ck = base64.b64decode(PHONE_KEY) if client == "phone" else None
    return Pairing(session.keys.hub_id, hub.config.cloud.topic_prefix, session.root,
                   client, ck, hub.config.cloud.broker_url)


def peer(b: mosquitto.Mosquitto, pairing: Pairing, user: str = "phone", **kw: Any) -> CloudPeer:
    return CloudPeer(pairing, host="127.0.0.1", port=b.port, username=user,
                     password=USERS[user], ca_file=str(b.pki.ca), **kw)


def history_values(db_path: Path, device_id: str, attribute: str) -> list[Any]:
    import json
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(f"SELECT value FROM ({HISTORY_ROWS}) WHERE device_id = ? "
                            "AND attribute = ? ORDER BY part, id", (device_id, attribute)
                            ).fetchall()
    finally:
        conn.close()
    return [json.loads(r[0]) for r in rows]


