"""Export (ZIP of JSON + JSON Schemas, scoped, no secrets) and erasure (nothing left)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import jsonschema

from hub.auth.principal import Role
from hub.hub import Hub
from hub.privacy.export import FILES
from tests.conftest import TEST_PASSWORD

MARKER = "MARKER-7f3a-PRIVATE-DIARY"


def read_export(data: bytes) -> dict[str, list]:
    """Re-read an export and validate every file against its own schema."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        for name in FILES:
            assert f"{name}.json" in names and f"schemas/{name}.schema.json" in names
            schema = json.loads(zf.read(f"schemas/{name}.schema.json"))
            doc = json.loads(zf.read(f"{name}.json"))
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
            out[name] = doc["items"]
    return out


async def fill(hub: Hub, n: int = 300) -> None:
    for i in range(n):
        hub.states.set("virtual.temp", {"value": 20 + i / 10, "note": f"{MARKER}-{i}"})
        hub.states.set("virtual.lamp", {"on": i % 2 == 0})
    await hub.devices.update("virtual.temp", name=f"Diary {MARKER}")
    await hub.db.flush()


async def test_owner_export_is_valid_complete_and_secret_free(hub: Hub, api_client,
                                                               client_for) -> None:
    await fill(hub, 50)
    member = await client_for(Role.MEMBER, username="kid", is_minor=True)
    await hub.privacy.set_consent("location", True, api_client.user.id)
    r = await api_client.post("/api/privacy/export")
    assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
    data = await r.read()
    doc = read_export(data)
    assert doc["account"][0]["scope"] == "household"
    assert {u["username"] for u in doc["users"]} == {"owner", "kid"}
    assert next(u for u in doc["users"] if u["username"] == "kid")["is_minor"] is True
    assert {d["id"] for d in doc["devices"]} >= {"virtual.temp", "virtual.lamp"}
    temp_rows = [h for h in doc["state_history"] if h["device_id"] == "virtual.temp"]
    assert len([h for h in temp_rows if h["attribute"] == "note"]) == 50
    assert [c["purpose"] for c in doc["consents"]] == ["location"]
    assert any(a["action"] == "consent.granted" for a in doc["audit_log"])
    # secrets: no password hash, no token, no TOTP secret anywhere in the archive
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist())
    for user in (api_client.user, member.user):
        assert user.password.encode() not in blob
    assert api_client.token.encode() not in blob and member.token.encode() not in blob
    assert b"password" not in blob.lower().replace(b"passwords", b"")
    # the export itself is audited
    rows = await hub.db.fetchall("SELECT * FROM audit WHERE action = 'privacy.export'")
    assert rows and rows[-1]["actor"] == api_client.user.id


async def test_member_export_is_their_own(hub: Hub, client_for) -> None:
    await fill(hub, 5)
    member = await client_for(Role.MEMBER)
    guest = await client_for(Role.GUEST, granted_devices=["virtual.lamp"])
    doc = read_export(await (await member.post("/api/privacy/export")).read())
    assert [u["username"] for u in doc["users"]] == [member.user.username]
    assert doc["account"][0]["scope"] == "own" and doc["account"][0]["location"] is None
    assert doc["automations"] == []
    assert all(a["actor"] == member.user.id or a["target"] == member.user.id
               for a in doc["audit_log"])
    gdoc = read_export(await (await guest.post("/api/privacy/export")).read())
    assert [d["id"] for d in gdoc["devices"]] == ["virtual.lamp"]
    assert {h["device_id"] for h in gdoc["state_history"]} == {"virtual.lamp"}


async def test_export_of_an_empty_hub(tmp_path, config_factory) -> None:
    from hub.auth.principal import Principal

    async with Hub(config_factory({"integrations": {"virtual": {"devices": []}}})) as hub:
        path = tmp_path / "empty.zip"
        stats = await hub.privacy.export_file(Principal("o", "o", Role.OWNER), path)
        doc = read_export(path.read_bytes())
        assert stats.files == len(FILES)
        assert doc["devices"] == [] and doc["state_history"] == [] and doc["users"] == []
        assert path.stat().st_mode & 0o777 == 0o600


def _all_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file())


async def test_erase_device_leaves_no_trace(hub: Hub, api_client) -> None:
    await fill(hub, 300)
    assert MARKER.encode() in _all_bytes(hub.state_dir)  # it is really there first
    r = await api_client.post("/api/privacy/erase", json={"target": "device",
                                                         "device_id": "virtual.temp"})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["deleted"]["history"] >= 600 and body["deleted"]["devices"] == 1
    assert MARKER.encode() not in _all_bytes(hub.state_dir)
    wal = hub.state_dir / "hub.db-wal"
    assert not wal.exists() or MARKER.encode() not in wal.read_bytes()
    # nothing lost that was not meant to be erased
    assert len(await hub.states.history("virtual.lamp")) >= 300
    assert "virtual.temp" not in hub.devices
    # erasing it again: a clear 404
    r = await api_client.post("/api/privacy/erase", json={"target": "device",
                                                         "device_id": "virtual.temp"})
    assert r.status == 404 and "nothing to erase" in (await r.json())["error"]["message"]
    audit = await hub.db.fetchall("SELECT * FROM audit WHERE action = 'privacy.erase.device'")
    assert len(audit) == 1 and audit[0]["target"] == "virtual.temp"


async def test_erase_own_account(hub: Hub, client_for) -> None:
    member = await client_for(Role.MEMBER, username=f"user-{MARKER}")
    r = await member.post("/api/privacy/erase", json={"target": "me"})
    assert r.status == 200, await r.text()
    assert hub.auth.find_user(f"user-{MARKER}") is None
    r = await member.get("/api/privacy/consents")
    assert r.status == 401  # its token went with it
    other = await client_for(Role.MEMBER)
    r = await other.post("/api/privacy/erase", json={"target": "user",
                                                    "user_id": member.user.id})
    assert r.status == 403


async def test_erase_bad_input(api_client) -> None:
    r = await api_client.post("/api/privacy/erase", json={"target": "planet"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "target"
    r = await api_client.post("/api/privacy/erase", json={"target": "device"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "device_id"
    r = await api_client.post("/api/privacy/erase", json={"target": "hub", "password": "nope"})
    assert r.status == 401


async def test_factory_reset_needs_reauth_and_removes_everything(hub: Hub, api_client) -> None:
    await fill(hub, 20)
    (hub.state_dir / "vault.key").write_bytes(b"K" * 32)
    r = await api_client.post("/api/privacy/erase", json={"target": "hub",
                                                         "password": TEST_PASSWORD})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["restart_required"] is True and "vault.key" in body["files_removed"]
    assert not (hub.state_dir / "vault.key").exists()
    assert MARKER.encode() not in _all_bytes(hub.state_dir)
    assert len(hub.devices) == 0 and hub.auth.needs_owner
    assert (await hub.db.fetchone("SELECT count(*) AS n FROM history"))["n"] == 0


async def test_concurrent_export_and_erase(hub: Hub, api_client) -> None:
    await fill(hub, 400)
    from hub.auth.principal import Principal

    chunks: list[bytes] = []

    async def slow_sink(data: bytes) -> None:
        chunks.append(data)
        await asyncio.sleep(0.01)

    owner = Principal(api_client.user.id, "owner", Role.OWNER)
    export = asyncio.create_task(hub.privacy.export(owner, slow_sink))
    await asyncio.sleep(0.02)
    report = await hub.privacy.erase_device("virtual.temp", owner)
    await export
    doc = read_export(b"".join(chunks))  # a complete, valid archive of one moment
    assert {d["id"] for d in doc["devices"]} >= {"virtual.lamp"}
    assert report.rows["history"] >= 800
    assert MARKER.encode() not in _all_bytes(hub.state_dir)
    assert len(await hub.states.history("virtual.lamp")) >= 400


async def test_wifi_networks_are_exported_as_ssids_only(hub: Hub, api_client) -> None:
    """The export asks the vault for its `wifi` entries (names and dates, never secrets).
    The double below has the vault's read interface (issue 6: Vault.entries -> EntryInfo)."""
    from dataclasses import dataclass

    @dataclass
    class Entry:
        kind: str
        name: str
        created_at: float
        updated_at: float
        last_used: float | None
        public: dict

    class VaultDouble:
        secrets = {"HomeNet": "hunter2-secret-psk", "Garden 5G": "another-secret-psk"}

        async def entries(self, kind: str) -> list[Entry]:
            assert kind == "wifi"
            return [Entry(kind, n, 1.0, 2.0, 3.0, {"security": "wpa2"})
                    for n in sorted(self.secrets)]

    real, hub.privacy.vault = hub.privacy.vault, VaultDouble()  # type: ignore[assignment]
    try:
        data = await (await api_client.post("/api/privacy/export")).read()
    finally:
        hub.privacy.vault = real
    doc = read_export(data)
    assert doc["account"][0]["wifi_networks"] == [
        {"ssid": "Garden 5G", "last_used": 3.0}, {"ssid": "HomeNet", "last_used": 3.0}]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist())
    assert b"secret-psk" not in blob and b"wpa2" not in blob


async def test_homekit_bridge_devices_and_paired_phone_count_are_exported(
        hub: Hub, api_client, client_for) -> None:
    """Which devices the owner shows in Apple Home (the bridge may be off), and how many
    phones are paired with it: never their keys, nor the setup code."""
    await hub.homekit.expose("virtual.lamp")
    await hub.homekit.expose("virtual.button")
    phone_key = "5e" * 32
    hap = json.dumps({"mac": "12:34:56:78:9A:BC", "paired_clients": {
        "0b0c5c9e-7d3e-4d39-9d4d-3f0a4e6c1a11": phone_key,
        "6f1d7a2c-1f1e-4a5b-8c3d-2e4f5a6b7c8d": "7a" * 32}})
    await hub.vault.put("homekit", "bridge", {"pincode": "031-45-154", "setup_id": "UONE",
                                              "hap": hap, "paired": True})
    data = await (await api_client.post("/api/privacy/export")).read()
    doc = read_export(data)
    assert [(r["device_id"], r["aid"], r["source"]) for r in doc["homekit_bridge"]] == [
        ("virtual.lamp", 2, "api"), ("virtual.button", 3, "api")]
    assert doc["account"][0]["homekit_paired_phones"] == 2
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist())
    assert phone_key.encode() not in blob and b"0b0c5c9e" not in blob
    assert b"031-45-154" not in blob
    guest = await client_for(Role.GUEST, granted_devices=["virtual.lamp"])
    gdoc = read_export(await (await guest.post("/api/privacy/export")).read())
    assert [r["device_id"] for r in gdoc["homekit_bridge"]] == ["virtual.lamp"]
    assert gdoc["account"][0]["homekit_paired_phones"] is None
