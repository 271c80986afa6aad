"""Restore, erase and delete driven through the API and the CLI while a real hub process
runs, checking exactly what survives: rows in each table, vault entries, sign-ins, and
(for a Uone device) its LAN connection (issue 18.7).

Each used to lose data or leave it behind: a restore under a running hub lost every later
change; an erased or deleted device kept its connection and its vault key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from integrations.uone.factory import FactoryPKI
from integrations.uone.simulator import Simulator, make_identity
from tests.privacy.livehub import OWNER, LiveHub
from tests.provisioning.conftest import needs_netns

PASS = "a long backup passphrase"
UONE_DID, UONE_MAC = "uone-00000000000000d7", "24:0a:c4:00:00:d7"
USER_PASSWORD = "another long passphrase"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveHub]:
    hub = LiveHub(tmp_path)
    try:
        await hub.start()
        await hub.onboard()
        yield hub
    finally:
        await hub.close()


async def _ssids(hub: LiveHub) -> set[str]:
    status, body = await hub.call("GET", "/api/wifi/networks")
    assert status == 200, body
    return {n["ssid"] for n in body["networks"]}


async def _usernames(hub: LiveHub) -> set[str]:
    status, body = await hub.call("GET", "/api/users")
    assert status == 200, body
    return {u["username"] for u in body["users"]}


async def _put_wifi(hub: LiveHub, ssid: str) -> None:
    status, body = await hub.call("PUT", f"/api/wifi/networks/{ssid}",
                                  {"password": f"password-{ssid}", "security": "wpa2-psk"})
    assert status in (200, 201), body


async def _user(hub: LiveHub, name: str, role: str = "member") -> str:
    status, body = await hub.call("POST", "/api/users", {
        "username": name, "password": USER_PASSWORD, "role": role})
    assert status == 201, body
    return str(body["id"])


async def _command(hub: LiveHub, device: str, command: str, **params: Any) -> None:
    status, body = await hub.call("POST", f"/api/devices/{device}/commands",
                                  {"command": command, "params": params})
    assert status == 200, body


async def test_restore_while_running_is_refused_and_later_keeps_exactly_the_backup(
        live: LiveHub, tmp_path: Path) -> None:
    hub = live
    await _put_wifi(hub, "Before")
    await _user(hub, "early")
    await _command(hub, "virtual.lamp", "turn_on")
    status, blob = await hub.call("POST", "/api/backups", {"passphrase": PASS})
    assert status == 200 and isinstance(blob, bytes)
    backup = tmp_path / "hub.uone"
    backup.write_bytes(blob)
    # changes after the backup
    await _put_wifi(hub, "After")
    await _user(hub, "late")
    await _command(hub, "virtual.lamp", "turn_off")
    # a restore while the hub runs: refused, --force or not, and nothing is replaced
    inode = hub.db.stat().st_ino
    for extra in ((), ("--force",)):
        rc, out = await hub.cli("backup", "restore", str(backup), *extra,
                                "--passphrase-stdin", stdin=PASS + "\n")
        assert rc == 2 and "a hub is running" in out, out
    assert hub.db.stat().st_ino == inode
    # the hub still writes into its own file: a change now survives a restart
    await _put_wifi(hub, "AfterRefused")
    await hub.restart()
    assert await _ssids(hub) == {"Before", "After", "AfterRefused"}
    assert await _usernames(hub) == {OWNER, "early", "late"}
    # stopped: the restore goes through and the hub comes back as it was at the backup
    await hub.stop()
    rc, out = await hub.cli("backup", "restore", str(backup), "--force",
                            "--passphrase-stdin", stdin=PASS + "\n")
    assert rc == 0, out
    await hub.start()
    await hub.sign_in()
    assert await _ssids(hub) == {"Before"}
    assert await _usernames(hub) == {OWNER, "early"}
    assert hub.count("vault_entries", "kind = 'wifi'") == 1
    status, state = await hub.call("GET", "/api/devices/virtual.lamp/state")
    assert state["attributes"]["on"]["value"] is True  # turn_off came after the backup
    lamp = [v for (v, _ts) in hub.rows(
        "SELECT value, ts FROM history WHERE device_id = 'virtual.lamp' UNION ALL "
        "SELECT value, ts FROM history_recent WHERE device_id = 'virtual.lamp' ORDER BY ts")]
    assert lamp == ["false", "true"]  # its first state, turn_on; not the later turn_off
    rc, out = await hub.cli("audit", "verify")
    assert rc == 0, out


async def test_erase_and_delete_through_the_api_and_the_cli_while_running(
        live: LiveHub) -> None:
    hub = live
    for i in range(5):
        await _command(hub, "virtual.lamp", "toggle")
        await _command(hub, "virtual.temp", "set", value=30.0 + i)
    await _command(hub, "virtual.button", "press")
    kid = await _user(hub, "kid")
    guest = await _user(hub, "visitor", "guest")
    kid_token = await hub.sign_in("kid", USER_PASSWORD)
    visitor_token = await hub.sign_in("visitor", USER_PASSWORD)
    status, _ = await hub.call("GET", "/api/devices", token=kid_token)
    assert status == 200
    await hub.call("POST", "/api/privacy/export")  # flushes the batch: rows are in the file
    lamp_history = hub.count("history", "device_id = 'virtual.lamp'") + hub.count(
        "history_recent", "device_id = 'virtual.lamp'")
    assert lamp_history >= 5
    before_audit = hub.count("audit")

    # erase a device (API): the device, its state, history and events go; nothing else
    status, report = await hub.call("POST", "/api/privacy/erase",
                                    {"target": "device", "device_id": "virtual.temp"})
    assert status == 200, report
    assert report["deleted"]["devices"] == 1 and report["deleted"]["history"] >= 5
    for table in ("devices", "states", "history", "history_recent", "events"):
        column = "id" if table == "devices" else "device_id"
        assert hub.count(table, f"{column} = 'virtual.temp'") == 0, table
    assert hub.count("history", "device_id = 'virtual.lamp'") + hub.count(
        "history_recent", "device_id = 'virtual.lamp'") == lamp_history
    assert hub.count("events", "device_id = 'virtual.button'") == 1

    # delete a device (API): the device and its current state go, its history stays
    status, _ = await hub.call("DELETE", "/api/devices/virtual.lamp")
    assert status == 204
    assert hub.count("devices", "id = 'virtual.lamp'") == 0
    assert hub.count("states", "device_id = 'virtual.lamp'") == 0
    assert hub.count("history", "device_id = 'virtual.lamp'") + hub.count(
        "history_recent", "device_id = 'virtual.lamp'") == lamp_history
    status, _ = await hub.call("GET", "/api/devices/virtual.lamp")
    assert status == 404

    # erase a user (API): account, sign-ins and tokens go; their token stops working
    status, report = await hub.call("POST", "/api/privacy/erase",
                                    {"target": "user", "user_id": kid})
    assert status == 200, report
    for table, column in (("users", "id"), ("logins", "user_id"), ("tokens", "user_id")):
        assert hub.count(table, f"{column} = ?", (kid,)) == 0, table
    status, _ = await hub.call("GET", "/api/devices", token=kid_token)
    assert status == 401

    # delete a user with the CLI while the hub runs: the running hub reloads its accounts
    # (it polls their generation once a second) and the user's token stops working
    rc, out = await hub.cli("user", "delete", "visitor")
    assert rc == 0, out
    assert hub.count("users", "id = ?", (guest,)) == 0
    for _ in range(200):
        status, _ = await hub.call("GET", "/api/devices", token=visitor_token)
        if status == 401:
            break
        await asyncio.sleep(0.05)
    assert status == 401
    assert await _usernames(hub) == {OWNER}

    # what else survives: the owner, the other devices, the audit trail (which names the
    # erasures but holds none of the erased content), an intact chain
    assert hub.count("devices", "id IN ('virtual.button', 'virtual.motion')") == 2
    actions = {a for (a,) in hub.rows("SELECT action FROM audit WHERE id > ?",
                                      (before_audit,))}
    assert {"privacy.erase.device", "privacy.erase.user"} <= actions
    assert not hub.rows("SELECT 1 FROM audit WHERE details LIKE '%30.0%'")
    rc, out = await hub.cli("audit", "verify")
    assert rc == 0, out

    # after a restart: the configured virtual devices are registered again (they are in
    # the config), but nothing erased comes back
    await hub.restart()
    assert hub.count("history", "device_id = 'virtual.temp' AND value != '20.0'") == 0
    assert hub.count("events", "device_id = 'virtual.temp'") == 0
    assert hub.count("users") == 1
    status, _ = await hub.call("GET", "/api/devices", token=kid_token)
    assert status == 401


@needs_netns
async def test_erased_or_deleted_uone_device_loses_its_connection_and_key_for_good(
        tmp_path: Path) -> None:
    """A real hub process adopts a simulated Uone device (mDNS on the namespace's lo), then
    erases it (API), adopts it again and deletes it (API): each time its LAN connection ends
    and its device_key row goes, and neither comes back after a restart."""
    pki = FactoryPKI.create()
    anchor = tmp_path / "factory-root.pem"
    anchor.write_bytes(pki.root_pem())
    sim = Simulator(make_identity(pki, UONE_DID, UONE_MAC, set()), set(), lan_host="127.0.0.1")
    await sim.start_lan(announce=True)
    hub = LiveHub(tmp_path, {
        "provisioning": {"trust_anchors": [str(anchor)]},
        "discovery": {"mdns": {"enabled": True, "interfaces": ["lo"], "advertise": False},
                      "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": []}, "uone": {"check_interval": 3600}}})
    try:
        await hub.start()
        await hub.onboard()
        for how in ("erase", "delete"):
            device_id = await _adopt_uone(hub)
            assert hub.count("vault_entries", "kind = 'device_key'") == 1
            await _until(lambda: len(sim._writers) == 1)
            status, state = await hub.call("GET", f"/api/devices/{device_id}/state")
            assert set(state["attributes"]) == {"on", "power"}  # issue 18.5, end to end
            if how == "erase":
                status, body = await hub.call("POST", "/api/privacy/erase",
                                              {"target": "device", "device_id": device_id})
                assert status == 200, body
            else:
                status, body = await hub.call("DELETE", f"/api/devices/{device_id}")
                assert status == 204, body
            await _until(lambda: not sim._writers)
            assert hub.count("vault_entries", "kind = 'device_key'") == 0
            assert hub.count("devices") == 0
            await hub.restart()  # nothing of it comes back, no connection is made
            await _discovered_uone(hub)  # (its announcement is seen again: adoptable)
            assert not sim._writers
            assert hub.count("vault_entries", "kind = 'device_key'") == 0
            status, body = await hub.call("GET", "/api/devices")
            assert body["devices"] == [], body
    finally:
        await hub.close()
        await sim.stop()


async def _until(predicate: Any, tries: int = 300) -> None:
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def _discovered_uone(hub: LiveHub) -> dict[str, Any]:
    for _ in range(400):
        status, body = await hub.call("GET", "/api/discovered")
        assert status == 200, body
        for item in body["discovered"]:
            if item.get("did") == UONE_DID and item["state"] == "new":
                return dict(item)
        await asyncio.sleep(0.05)
    raise AssertionError("the device was not discovered:\n" + hub.log.read_text())


async def _adopt_uone(hub: LiveHub) -> str:
    item = await _discovered_uone(hub)
    status, body = await hub.call("POST", f"/api/discovered/{item['id']}/adopt")
    assert status == 201, body
    return str(body["device"]["id"])
