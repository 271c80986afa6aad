"""The credential vault: encryption at rest, write-only API, real deletion, key handling."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from hub.hub import DB_FILENAME, Hub
from hub.vault import KEY_FILENAME, VaultError

SSID = "Casa-Zebra-7781"
PASSWORD = "plum-orbit-quartz-5531"


def _files(state_dir: Path) -> dict[str, bytes]:
    out = {}
    for suffix in ("", "-wal"):
        p = state_dir / (DB_FILENAME + suffix)
        out[p.name] = p.read_bytes() if p.exists() else b""
    return out


async def test_wifi_api_roundtrip_never_returns_the_password(api_client, hub: Hub) -> None:
    resp = await api_client.put(f"/api/wifi/networks/{SSID}",
                                json={"password": PASSWORD, "security": "wpa2-psk"})
    assert resp.status == 200 and (await resp.json())["created"] is True
    body = await resp.text()
    assert PASSWORD not in body
    assert (await resp.json())["ssid"] == SSID
    resp = await api_client.put(f"/api/wifi/networks/{SSID}",
                                json={"password": PASSWORD + "x", "security": "wpa3-sae"})
    assert resp.status == 200 and (await resp.json())["created"] is False
    listing = await api_client.get("/api/wifi/networks")
    text = await listing.text()
    assert PASSWORD not in text
    nets = (await listing.json())["networks"]
    assert [(n["ssid"], n["security"], n["last_used"]) for n in nets] == [
        (SSID, "wpa3-sae", None)]
    assert set(nets[0]) == {"ssid", "security", "created_at", "updated_at", "last_used"}
    assert (await hub.vault.get("wifi", SSID))["password"] == PASSWORD + "x"
    resp = await api_client.delete(f"/api/wifi/networks/{SSID}")
    assert resp.status == 204
    assert (await (await api_client.get("/api/wifi/networks")).json())["networks"] == []
    resp = await api_client.delete(f"/api/wifi/networks/{SSID}")
    assert resp.status == 404


async def test_ssid_with_slash_and_unicode(api_client) -> None:
    ssid = "Café/Ünï 5G"
    resp = await api_client.put("/api/wifi/networks/Caf%C3%A9%2F%C3%9Cn%C3%AF%205G",
                                json={"password": "12345678"})
    assert resp.status == 200, await resp.text()
    nets = (await (await api_client.get("/api/wifi/networks")).json())["networks"]
    assert [n["ssid"] for n in nets] == [ssid]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/wifi/networks/" + "a" * 33, {"password": "12345678"}, "ssid"),
        ("/api/wifi/networks/" + "é" * 17, {"password": "12345678"}, "ssid"),  # 34 bytes
        ("/api/wifi/networks/ok", {"password": "1234567"}, "password"),
        ("/api/wifi/networks/ok", {"password": "x" * 64}, "password"),
        ("/api/wifi/networks/ok", {"password": "contains\ttab"}, "password"),
        ("/api/wifi/networks/ok", {}, "password"),
        ("/api/wifi/networks/ok", {"password": 12345678}, "password"),
        ("/api/wifi/networks/ok", {"password": "12345678", "security": "wep"}, "security"),
        ("/api/wifi/networks/ok", {"password": "12345678", "security": "open"}, "password"),
        ("/api/wifi/networks/ok", {"password": "12345678", "pin": 1}, "pin"),
    ],
)
async def test_bad_wifi_input_is_a_clear_400_and_stores_nothing(
    api_client, hub: Hub, path: str, body: dict, field: str
) -> None:
    resp = await api_client.put(path, json=body)
    assert resp.status == 400, await resp.text()
    err = (await resp.json())["error"]
    assert err["field"] == field and err["message"]
    assert await hub.db.fetchall("SELECT * FROM vault_entries") == []


async def test_open_network_needs_no_password(api_client) -> None:
    resp = await api_client.put("/api/wifi/networks/Guest", json={"security": "open"})
    assert resp.status == 200, await resp.text()
    # the dashboard's short names are accepted and stored in full
    resp = await api_client.put("/api/wifi/networks/Home", json={"security": "wpa3",
                                                                 "password": "12345678"})
    assert (await resp.json())["security"] == "wpa3-sae"


async def test_no_plaintext_at_rest_and_deletion_really_deletes(
    api_client, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await api_client.put(f"/api/wifi/networks/{SSID}", json={"password": PASSWORD})
    assert resp.status == 200
    await hub.vault.put("bthome", "aa:bb:cc:dd:ee:ff", {"bind_key": "00112233445566778899aabb"})
    await hub.db.flush()
    row = await hub.db.fetchone("SELECT ciphertext, nonce FROM vault_entries WHERE kind='wifi'")
    ciphertext = bytes(row["ciphertext"])
    assert len(ciphertext) > 32
    files = _files(hub.state_dir)
    assert any(ciphertext in data for data in files.values()), "ciphertext is stored somewhere"
    for name, data in files.items():
        for secret in (PASSWORD, SSID, "00112233445566778899aabb"):
            assert secret.encode() not in data, f"{secret} in clear in {name}"
    resp = await api_client.delete(f"/api/wifi/networks/{SSID}")
    assert resp.status == 204
    for name, data in _files(hub.state_dir).items():
        assert ciphertext not in data, f"deleted ciphertext still in {name}"
        assert ciphertext[:16] not in data, f"part of the deleted ciphertext still in {name}"
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logs
    # the SSID is in the URL: only the test server's access log (off in the daemon) shows it
    hub_logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert SSID not in hub_logs
    # the other entry is intact
    assert (await hub.vault.get("bthome", "aa:bb:cc:dd:ee:ff"))["bind_key"].startswith("0011")


async def test_key_file_is_0600_and_rows_are_bound_to_their_name(hub: Hub) -> None:
    key_file = hub.state_dir / KEY_FILENAME
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(key_file.read_bytes())) == 32
    await hub.vault.put("device_key", "dev-a", {"key": "A"})
    await hub.vault.put("device_key", "dev-b", {"key": "B"})
    rows = {r["id"]: r for r in await hub.db.fetchall("SELECT * FROM vault_entries")}
    (id_a, _a), (id_b, b) = sorted(rows.items(), key=lambda kv: kv[1]["created_at"])
    # swap the ciphertexts between the two rows: both must refuse to open
    await hub.db.write("UPDATE vault_entries SET nonce=?, ciphertext=? WHERE id=?",
                       (b["nonce"], b["ciphertext"], id_a))
    with pytest.raises(VaultError, match="failed authentication"):
        await hub.vault.get("device_key", "dev-a")
    # a row of another kind under the same name does not open either
    await hub.db.write("UPDATE vault_entries SET kind='broker' WHERE id=?", (id_b,))
    with pytest.raises(VaultError):
        await hub.vault.entries("broker")


async def test_systemd_credential_is_used(tmp_path: Path, config_factory, monkeypatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    raw = os.urandom(32)
    (creds / "vault-key").write_bytes(raw)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    loaded = config_factory()
    async with Hub(loaded) as h:
        await h.vault.put("broker", "cloud", {"password": "hunter2hunter2"})
        assert not (h.state_dir / KEY_FILENAME).exists()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    # without the credential a fresh key file is made, which cannot open the old rows
    with pytest.raises(VaultError, match="key file was replaced"):
        async with Hub(loaded):
            pass
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (loaded.state_dir / KEY_FILENAME).unlink()
    async with Hub(loaded) as h:
        assert (await h.vault.get("broker", "cloud"))["password"] == "hunter2hunter2"


async def test_group_readable_key_file_is_refused(config_factory) -> None:
    loaded = config_factory()
    async with Hub(loaded):
        pass
    (loaded.state_dir / KEY_FILENAME).chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        async with Hub(loaded):
            pass


def test_key_derivation_is_hkdf_sha256() -> None:
    """The vault derives its keys with the standard library's HMAC: the bytes must be those of
    cryptography's HKDF (keys already on disk keep opening) and of RFC 5869's vectors."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from hub.vault import _derive

    # RFC 5869 test case 3: SHA-256, no salt, no info, 42 bytes (two blocks)
    assert _derive(bytes([0x0B] * 22), b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        "9d201395faa4b61a96c8")
    for info in (b"uone-vault key-id v1", b"uone-vault enc v1", b"uone-vault index v1"):
        for length in (8, 32, 33, 64):
            raw = os.urandom(32)
            expected = HKDF(hashes.SHA256(), length, salt=None, info=info).derive(raw)
            assert _derive(raw, info, length) == expected


def test_ciphertext_is_not_in_sqlite_after_update(tmp_path: Path) -> None:
    """Sanity for the grep tests: sqlite3 secure_delete is on in this build."""
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA secure_delete = ON").fetchone()[0] == 1


async def test_only_admins_manage_wifi_and_provisioning(client_for, hub: Hub) -> None:
    from hub.auth.principal import Role

    member = await client_for(Role.MEMBER)
    for method, path, body in [
        ("GET", "/api/wifi/networks", None),
        ("PUT", "/api/wifi/networks/Home", {"password": "12345678"}),
        ("DELETE", "/api/wifi/networks/Home", None),
        ("POST", "/api/discovered/x/provision", {"ssid": "Home"}),
        ("GET", "/api/provisioning", None),
        ("GET", "/api/provisioning/x", None),
    ]:
        resp = await member.request(method, path, json=body)
        assert resp.status == 403, (method, path, resp.status)
    anonymous = await client_for(None)
    resp = await anonymous.get("/api/wifi/networks")
    assert resp.status == 401
    admin = await client_for(Role.ADMIN)
    resp = await admin.put("/api/wifi/networks/Home", json={"password": "12345678"})
    assert resp.status == 200
    assert await hub.db.fetchall("SELECT 1 FROM vault_entries") != []
