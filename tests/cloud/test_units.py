"""Unit tests: wire format against the spec, backoff, config checks, key handling."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.cloud.client import backoff_policy
from hub.cloud.config import CloudConfig
from hub.cloud.crypto import (
    EnvelopeError,
    Pairing,
    SyncKeys,
    command_key,
    derive_from_passphrase,
    open_envelope,
    seal,
)
from hub.cloud.topics import Topics
from hub.errors import ConfigError
from tests.conftest import write_config

ROOT = bytes(range(32))


def test_an_independent_reader_following_the_spec_decrypts():
    """docs/cloud-sync.md, implemented again here from the text only."""
    keys = SyncKeys.from_root("hub-123", ROOT)
    topic = Topics.of("uone", keys).stream
    payload = seal(keys.enc, "hub-123", topic, 77, {"type": "state", "value": 1})

    enc = HKDF(hashes.SHA256(), 32, salt=None, info=b"uone-sync/1\x00enc").derive(ROOT)
    tkey = HKDF(hashes.SHA256(), 32, salt=None, info=b"uone-sync/1\x00topic").derive(ROOT)
    import base64

    hub_tid = base64.b32encode(hmac.new(tkey, b"hub\x00hub-123", hashlib.sha256)
                               .digest()[:15]).decode().lower()
    assert topic == f"uone/{hub_tid}/s"
    version, seq = payload[0], struct.unpack(">Q", payload[1:9])[0]
    nonce, ct = payload[9:21], payload[21:]
    aad = b"uone-sync/1\x00hub-123\x00" + topic.encode() + b"\x00" + struct.pack(">Q", seq)
    body = json.loads(AESGCM(enc).decrypt(nonce, ct, aad))
    assert (version, seq, body) == (1, 77, {"type": "state", "value": 1})


def test_envelope_binds_topic_seq_and_key():
    keys = SyncKeys.from_root("h", ROOT)
    payload = seal(keys.enc, "h", "t/1", 5, {"a": 1})
    assert open_envelope(keys.enc, "h", "t/1", payload) == (5, {"a": 1})
    with pytest.raises(EnvelopeError):
        open_envelope(keys.enc, "h", "t/2", payload)  # moved to another topic
    with pytest.raises(EnvelopeError):
        open_envelope(keys.enc, "other-hub", "t/1", payload)
    bumped = payload[:1] + struct.pack(">Q", 6) + payload[9:]
    with pytest.raises(EnvelopeError):
        open_envelope(keys.enc, "h", "t/1", bumped)  # sequence number changed
    with pytest.raises(EnvelopeError):
        open_envelope(SyncKeys.from_root("h", bytes(32)).enc, "h", "t/1", payload)
    with pytest.raises(EnvelopeError):
        open_envelope(keys.enc, "h", "t/1", b"\x01short")
    assert command_key(ROOT) != keys.enc


def test_topics_are_opaque_and_stable():
    keys = SyncKeys.from_root("h", ROOT)
    a = keys.opaque("device", "virtual.lamp")
    assert a == SyncKeys.from_root("h", ROOT).opaque("device", "virtual.lamp")
    assert "lamp" not in a and a != keys.opaque("device", "virtual.temp")
    assert a != SyncKeys.from_root("h", bytes(32)).opaque("device", "virtual.lamp")


def test_passphrase_derivation_depends_on_hub():
    k1 = derive_from_passphrase("correct horse", "hub-a")
    assert len(k1) == 32 and k1 == derive_from_passphrase("correct horse", "hub-a")
    assert k1 != derive_from_passphrase("correct horse", "hub-b")


def test_pairing_code_round_trip_and_errors():
    p = Pairing("hub", "uone", ROOT, "phone", bytes(32), "mqtts://b:8883")
    code = p.encode()
    assert code.startswith("UONE1-") and Pairing.decode(code) == p
    for bad in ("nope", "UONE1-!!!", "UONE1-e30"):
        with pytest.raises(ValueError):
            Pairing.decode(bad)


def test_backoff_is_capped_exponential_with_jitter():
    policy = backoff_policy(CloudConfig(backoff_initial=1.0, backoff_max=8.0))
    assert [policy.delay(n, 0.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    jittered = [policy.delay(n, 0.999) for n in range(1, 4)]
    assert all(0.7 * full < j < full for j, full in zip(jittered, [1.0, 2.0, 4.0], strict=True))
    auth = backoff_policy(CloudConfig(backoff_initial=1.0, backoff_max=300.0))
    assert auth.delay(1, 0.0, auth=True) == 30.0  # credentials refused: no hammering
    capped = backoff_policy(CloudConfig(backoff_initial=0.05, backoff_max=0.5))
    assert capped.delay(1, 0.0, auth=True) == 0.5  # never beyond the configured maximum


@pytest.mark.parametrize(("section", "message"), [
    ({"broker_url": "http://x"}, "must match"),
    ({"broker_url": "mqtt://broker.example.com"}, "only allowed to loopback"),
    ({"password_secret": "p"}, "needs a username"),
    ({"broker_url": "mqtts://u:pw@broker:8883"}, "no credentials in the URL"),
    ({"client_cert": "c.pem"}, "go together"),
    ({"categories": ["states", "passwords"]}, "expected one of"),
    ({"outbox_limit": 1}, "must be >= 10"),
    ({"outbox_policy": "keep_all"}, "expected one of"),
    ({"remote_clients": {"bad name": {}}}, "bad name"),
    ({"remote_clients": {"x": {"role": "root"}}}, "expected one of"),
])
def test_bad_cloud_config_is_reported_with_location(tmp_path, section, message):
    from hub.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, {"cloud": section}))
    text = str(info.value)
    assert message in text and "config.yaml:" in text and "cloud" in text


def test_default_config_is_off(tmp_path):
    from hub.config import load_config

    cfg = load_config(write_config(tmp_path)).config.cloud
    assert cfg.broker_url is None and not cfg.configured
    assert cfg.categories == ["devices", "states"]


async def test_cloud_secrets_live_in_the_vault(tmp_path):
    """With the credential vault (issue-6) present: keys the hub creates are sealed there."""
    vault_mod = pytest.importorskip("hub.vault", reason="the vault (issue-6) is not merged yet")
    from hub.cloud.sources import VaultSecrets
    from hub.storage import Database

    async with Database(tmp_path / "v.db", [vault_mod.SCHEMA]) as db:
        from hub.clock import SystemClock

        vault = vault_mod.Vault(db, tmp_path, SystemClock())
        await vault.open()
        try:
            secrets = VaultSecrets(vault)
            assert await secrets.get("cloud/sync_key") is None
            await secrets.put("cloud/sync_key", "a2V5")
            assert await secrets.get("cloud/sync_key") == "a2V5"
            await vault.put("broker", "home", {"password": "s3cret"})
            assert await secrets.get("home") == "s3cret"
        finally:
            vault.close()
