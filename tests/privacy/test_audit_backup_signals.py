"""Audit chain verification (API actions recorded, tampering found, retention-safe), breach
signals to the owner, encrypted backup/restore, and the CLI for all of it."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.auth.principal import Principal, Role
from hub.bus import Notification
from hub.config import load_config
from hub.hub import Hub
from hub.privacy.backup import BackupError, create_backup, restore_backup
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
OWNER = Principal("owner-id", "owner", Role.OWNER)
PASS = "a long backup passphrase"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


async def test_privacy_actions_are_audited_and_chain_verifies(hub: Hub, api_client) -> None:
    await api_client.put("/api/privacy/consents", json={"cloud_sync": True})
    await api_client.put("/api/privacy/restrictions/devices/virtual.lamp",
                         json={"restricted": True})
    await api_client.post("/api/privacy/export")
    await api_client.post("/api/privacy/erase", json={"target": "device",
                                                     "device_id": "virtual.motion"})
    actions = {r["action"] for r in await hub.db.fetchall("SELECT action FROM audit")}
    assert {"consent.granted", "restriction.device.on", "privacy.export",
            "privacy.erase.device"} <= actions
    report = await hub.privacy.verify_audit()
    assert report.ok and report.checked >= 4


async def test_tampering_is_found_and_signalled(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    async with Hub(load_config(cfg)) as hub:
        for i in range(5):
            await hub.audit.record("someone", "test.action", f"t{i}", {"i": i})
    db = tmp_path / "data" / "hub.db"
    assert cli("audit", "verify", "-c", str(cfg)).returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")  # what an attacker would do
    conn.execute("UPDATE audit SET details = '{\"i\":99}' WHERE target = 't2'")
    conn.commit()
    bad_id = conn.execute("SELECT id FROM audit WHERE target = 't2'").fetchone()[0]
    conn.close()
    r = cli("audit", "verify", "-c", str(cfg))
    assert r.returncode == 1 and f"BROKEN at entry {bad_id}" in r.stderr
    async with Hub(load_config(cfg)) as hub:
        report = await hub.privacy.verify_audit()
        assert not report.ok and report.first_bad_id == bad_id
        assert "edited" in report.reason
        for _ in range(200):  # the start-up check reports it (owner notified + audited)
            rows = await hub.db.fetchall(
                "SELECT * FROM audit WHERE action = 'signal.audit_chain_broken'")
            if rows:
                break
            await asyncio.sleep(0.01)
        assert len(rows) == 1 and f'"first_bad_id":{bad_id}' in rows[0]["details"]
    # deleting a row in the middle is found too
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit WHERE target = 't3'")
    conn.commit()
    conn.close()
    assert cli("audit", "verify", "-c", str(cfg)).returncode == 1


async def test_retention_of_audit_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"privacy": {"retention": {"audit_days": 1, "batch": 10}}})
    async with Hub(load_config(cfg)) as hub:
        for i in range(25):
            await hub.audit.record(None, "old", str(i), {})
        await hub.db.write("DROP TRIGGER IF EXISTS audit_no_update")
        # age the first 25 rows (their hashes cover ts, so re-chain them as if old)
        from hub.audit import GENESIS, row_hash

        prev = GENESIS
        for r in await hub.db.fetchall("SELECT * FROM audit ORDER BY id"):
            ts = r["ts"] - 3 * 86_400 if r["action"] == "old" else r["ts"]
            h = row_hash(prev, ts, r["actor"], r["action"], r["target"], r["details"])
            await hub.db.write("UPDATE audit SET ts=?, prev_hash=?, hash=? WHERE id=?",
                               (ts, prev, h, r["id"]))
            prev = h
        await hub.audit.record(None, "new", "x", {})  # a recent one: kept
        assert (await hub.privacy.verify_audit()).ok
        deleted = await hub.privacy.retention.run_once()
        assert deleted["audit"] == 25
        report = await hub.privacy.verify_audit()
        assert report.ok, report
        await hub.audit.record(None, "after", "x", {})
        assert await hub.audit.verify() is None  # the API's check agrees


async def test_breach_signals_notify_the_owner(hub: Hub) -> None:
    sub = hub.bus.listen([Notification], name="test")  # as a websocket would
    try:
        for _ in range(hub.config.privacy.failed_login_burst):
            await hub.privacy.login_failed("owner", "10.0.0.66")
        assert await hub.privacy.token_used("tok123456789", "10.0.0.5") is False  # first use
        assert await hub.privacy.token_used("tok123456789", "10.0.0.5") is False
        assert await hub.privacy.token_used("tok123456789", "10.0.0.99") is True
        await hub.privacy.signal("attestation_failed", {"target": "virtual.lamp",
                                                        "reason": "bad signature"})
        got = [sub.get_nowait() for _ in range(sub.backlog)]
    finally:
        sub.close()
    titles = [n.title for n in got]
    assert titles == ["Many failed sign-ins", "A token was used from a new address",
                      "A device failed its authenticity check"]
    assert "10.0.0.99" in got[1].message and got[2].severity == "critical"
    actions = [r["action"] for r in await hub.db.fetchall("SELECT action FROM audit")]
    assert {"signal.failed_login_burst", "signal.token_new_address",
            "signal.attestation_failed"} <= set(actions)


async def test_token_use_is_watched_through_the_api(hub: Hub, api_client) -> None:
    await api_client.get("/api/privacy/consents")
    for _ in range(50):
        await asyncio.sleep(0.01)
        row = await hub.db.fetchone("SELECT * FROM privacy_token_addresses")
        if row is not None:
            break
    assert row is not None and row["address"] == "127.0.0.1"


def test_backup_roundtrip_and_bad_input(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / "hub.db")
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES(?)", [(f"row{i}",) for i in range(5000)])
    conn.commit()
    conn.close()
    (state / "vault.key").write_bytes(b"\x01" * 32)
    config = tmp_path / "config.yaml"
    config.write_text("data_dir: ./state\n")
    buf = io.BytesIO()
    info = create_backup(state / "hub.db", state, config, buf, PASS, "test")
    assert {"hub.db", "vault.key", "config.yaml"} <= set(info.files)
    blob = buf.getvalue()
    assert b"row42" not in blob and b"\x01" * 32 not in blob  # encrypted
    fresh = tmp_path / "fresh"
    restore_backup(io.BytesIO(blob), PASS, fresh, tmp_path / "restored.yaml")
    assert (fresh / "vault.key").read_bytes() == b"\x01" * 32
    rows = sqlite3.connect(fresh / "hub.db").execute("SELECT count(*) FROM t").fetchone()
    assert rows == (5000,)
    assert (tmp_path / "restored.yaml").read_text() == "data_dir: ./state\n"
    before = sorted(p.name for p in fresh.iterdir())
    with pytest.raises(BackupError, match="wrong passphrase"):
        restore_backup(io.BytesIO(blob), "not the passphrase!", fresh)
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF
    with pytest.raises(BackupError, match="damaged"):
        restore_backup(io.BytesIO(bytes(damaged)), PASS, fresh)
    with pytest.raises(BackupError, match=r"truncated|damaged"):
        restore_backup(io.BytesIO(blob[: len(blob) - 100]), PASS, fresh)
    with pytest.raises(BackupError, match="not a Uone Hub backup"):
        restore_backup(io.BytesIO(b"garbage" * 100), PASS, fresh)
    assert sorted(p.name for p in fresh.iterdir()) == before  # nothing changed
    assert (fresh / "vault.key").read_bytes() == b"\x01" * 32


async def test_api_backup_restores_onto_a_fresh_hub(hub: Hub, api_client, tmp_path) -> None:
    hub.states.set("virtual.temp", {"value": 42.5})
    await hub.privacy.set_consent("diagnostics", True, "owner")
    r = await api_client.post("/api/backups", json={"passphrase": "short"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "passphrase"
    r = await api_client.post("/api/backups", json={"passphrase": PASS})
    assert r.status == 200
    blob = await r.read()
    (tmp_path / "hub.uone").write_bytes(blob)
    (tmp_path / "fresh").mkdir()
    fresh_cfg = write_config(tmp_path / "fresh")
    r = cli("backup", "restore", str(tmp_path / "hub.uone"), "-c", str(fresh_cfg),
            "--passphrase-stdin", stdin="wrong passphrase here\n")
    assert r.returncode == 2 and "wrong passphrase" in r.stderr
    assert not (tmp_path / "fresh" / "data" / "hub.db").exists()
    r = cli("backup", "restore", str(tmp_path / "hub.uone"), "-c", str(fresh_cfg),
            "--passphrase-stdin", stdin=PASS + "\n")
    assert r.returncode == 0, r.stderr
    async with Hub(load_config(fresh_cfg)) as fresh:
        assert fresh.states.value("virtual.temp", "value") == 42.5
        assert fresh.privacy.allowed("diagnostics")
        assert fresh.auth.find_user("owner") is not None
        assert (await fresh.privacy.verify_audit()).ok


def test_cli_export_and_backup(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)

    async def seed() -> None:
        async with Hub(load_config(cfg)) as hub:
            hub.states.set("virtual.temp", {"value": 30.0})

    asyncio.run(seed())
    r = cli("export", "-c", str(cfg), "-o", str(tmp_path / "out.zip"))
    assert r.returncode == 0, r.stderr
    from tests.privacy.test_export_erase import read_export

    doc = read_export((tmp_path / "out.zip").read_bytes())
    assert any(h["value"] == 30.0 for h in doc["state_history"])
    r = cli("backup", "create", "-c", str(cfg), "-o", str(tmp_path / "b.uone"),
            "--passphrase-stdin", stdin=PASS + "\n")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.uone").stat().st_mode & 0o777 == 0o600
    r = cli("backup", "restore", str(tmp_path / "b.uone"), "-c", str(cfg),
            "--passphrase-stdin", stdin=PASS + "\n")
    assert r.returncode == 2 and "--force" in r.stderr
    r = cli("export", "-c", str(cfg), "-o", str(tmp_path / "x.zip"), "--user", "nobody")
    assert r.returncode == 2 and "nobody" in r.stderr


async def test_no_addresses_are_collected_for_minors(hub: Hub, client_for) -> None:
    kid = await client_for(Role.MEMBER, username="kid", is_minor=True)
    adult = await client_for(Role.MEMBER, username="adult")
    assert (await kid.get("/api/privacy/consents")).status == 200
    assert (await adult.get("/api/privacy/consents")).status == 200
    for _ in range(100):
        rows = await hub.db.fetchall("SELECT token_id FROM privacy_token_addresses")
        if rows:
            break
        await asyncio.sleep(0.01)
    tokens = {r["token_id"] for r in rows}
    assert len(tokens) == 1
    assert not hub.privacy.may_collect_presence(kid.user.id, is_minor=True)


async def test_cli_and_running_hub_share_one_chain(tmp_path: Path) -> None:
    """The CLI appends to the audit log (another process) while the hub runs."""
    cfg = write_config(tmp_path)
    async with Hub(load_config(cfg)) as hub:
        await hub.audit.record(None, "before", None, {})
        r = await asyncio.to_thread(cli, "export", "-c", str(cfg), "-o",
                                    str(tmp_path / "e.zip"))
        assert r.returncode == 0, r.stderr
        await hub.audit.record(None, "after", None, {})
        report = await hub.privacy.verify_audit()
        assert report.ok, report
        actions = [x["action"] for x in await hub.db.fetchall(
            "SELECT action FROM audit ORDER BY id")]
        assert actions[-3:] == ["before", "privacy.export", "after"]


async def test_failed_sign_in_burst_over_the_api_notifies(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from hub.api.app import make_app

    cfg = write_config(tmp_path, {"privacy": {"failed_login_burst": 4}})
    async with Hub(load_config(cfg)) as hub:
        await hub.auth.create_user("olga", "a long passphrase", Role.OWNER)
        sub = hub.bus.listen([Notification], name="ws")
        client = TestClient(TestServer(make_app(hub)))
        await client.start_server()
        try:
            for i in range(4):
                r = await client.post("/api/auth/login", json={
                    "username": f"olga{i % 2}", "password": "guess"})
                assert r.status in (401, 429)
            notes = [sub.get_nowait() for _ in range(sub.backlog)]
        finally:
            await client.close()
            sub.close()
        assert [n.title for n in notes] == ["Many failed sign-ins"]
        assert "127.0.0.1" in notes[0].message
        rows = await hub.db.fetchall(
            "SELECT * FROM audit WHERE action = 'signal.failed_login_burst'")
        assert len(rows) == 1


async def test_signal_reaches_the_owner_websocket(hub: Hub, api_client, client_for) -> None:
    member = await client_for(Role.ADMIN, username="grown-up-not-owner")
    async with api_client.ws_connect("/api/ws") as ws, member.ws_connect("/api/ws") as other:
        for sock in (ws, other):
            assert (await sock.receive_json(timeout=5))["type"] == "ready"
            await sock.send_json({"type": "subscribe", "events": ["notification"]})
            assert (await sock.receive_json(timeout=5))["type"] == "subscribed"
        await hub.privacy.signal("attestation_failed", {"target": "virtual.lamp",
                                                        "reason": "certificate chain"})
        msg = await ws.receive_json(timeout=5)
        # breach signals are for the owner: an admin's socket stays quiet
        await other.send_json({"type": "ping"})
        assert (await other.receive_json(timeout=5))["type"] == "pong"
    assert msg["type"] == "event"
    assert msg["event"]["type"] == "notification"
    assert msg["event"]["title"] == "A device failed its authenticity check"
    assert "certificate chain" in msg["event"]["message"]


async def test_minors_sign_ins_are_recorded_without_an_address(hub: Hub) -> None:
    kid = await hub.auth.create_user("kid2", "a long test password", Role.MEMBER,
                                     is_minor=True)
    adult = await hub.auth.create_user("adult2", "a long test password", Role.MEMBER)
    for user in (kid, adult):
        await hub.auth.login(user.username, "a long test password", None, "10.0.0.7")
    kid_rows = await hub.auth.logins(kid.id)
    adult_rows = await hub.auth.logins(adult.id)
    assert kid_rows and all(r["address"] is None and r["ok"] for r in kid_rows)
    assert adult_rows and adult_rows[0]["address"] == "10.0.0.7"


async def _acli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """The CLI in its own process, without blocking this loop (a hub runs on it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_restore_is_refused_while_the_hub_runs(hub: Hub, tmp_path: Path) -> None:
    """Before the fix `restore --force` replaced the files under the running hub, which kept
    writing into the deleted database: every later change was lost."""
    cfg = str(hub.loaded.path)
    await hub.provisioning.wifi.put("Before", "password-before", "wpa2-psk")
    rc, _out, err = await _acli("backup", "create", "-c", cfg, "-o", str(tmp_path / "b.uone"),
                                "--passphrase-stdin", stdin=PASS + "\n")
    assert rc == 0, err
    inode = (hub.state_dir / "hub.db").stat().st_ino
    rc, _out, err = await _acli("backup", "restore", str(tmp_path / "b.uone"), "-c", cfg,
                                "--force", "--passphrase-stdin", stdin=PASS + "\n")
    assert rc == 2 and "a hub is running" in err and "stop it first" in err, err
    assert (hub.state_dir / "hub.db").stat().st_ino == inode  # the file was not replaced
    assert not (hub.state_dir / ".before-restore").exists()
    with pytest.raises(BackupError, match="a hub is running"):  # the library refuses too
        restore_backup(io.BytesIO((tmp_path / "b.uone").read_bytes()), PASS, hub.state_dir)
    await hub.provisioning.wifi.put("After", "password-after", "wpa2-psk")
    names = {e.name for e in await hub.vault.entries("wifi")}
    assert names == {"Before", "After"}
