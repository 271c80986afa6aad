"""A real full disk under the state directory (a small tmpfs): health says why, writes answer
507, signing in still works and its records are written once space returns (issue 18.15)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import make_app
from hub.auth.principal import Role
from hub.hub import Hub
from tests.conftest import TEST_PASSWORD

HANG_GUARD = 30.0  # seconds: only so that a regression fails instead of hanging


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs of our own: filling it fills nothing else."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    where = tmp_path / "state"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    with pytest.raises(OSError) as err, (directory / "probe").open("wb", buffering=0) as f:
        f.write(b"\0" * 4096)
    assert err.value.errno == errno.ENOSPC
    return filler


async def test_full_disk_is_reported_writes_507_and_sign_in_still_works(
        small_disk: Path, config_factory) -> None:
    config = config_factory({"data_dir": str(small_disk)})
    async with Hub(config) as hub:
        hub.db.backlog.retry = 0.2
        owner = await hub.auth.create_user("owner", TEST_PASSWORD, Role.OWNER)
        token, _ = await hub.auth.create_token(owner.id, "script")
        bearer = {"Authorization": f"Bearer {token}"}
        async with TestClient(TestServer(make_app(hub))) as client:
            health = await (await client.get("/api/health")).json()
            assert health["status"] == "ok" and "problems" not in health

            await hub.db.checkpoint()  # an empty WAL: the next write needs new space
            filler = fill(small_disk)
            try:

                health = await (await client.get("/api/health")).json()
                assert health["status"] == "degraded"
                assert any("disk full" in p for p in health["problems"]), health

                # writes: 507 with a clear message, nothing changed
                resp = await client.patch("/api/devices/virtual.lamp", headers=bearer,
                                          json={"name": "Hall lamp"})
                assert resp.status == 507, await resp.text()
                err = (await resp.json())["error"]
                assert err["code"] == "storage_full" and "disk is full" in err["message"]
                assert hub.devices.get("virtual.lamp").name == "Lamp"
                resp = await client.post("/api/tokens", headers=bearer, json={"name": "more"})
                assert resp.status == 507
                # reads still work
                assert (await client.get("/api/devices", headers=bearer)).status == 200

                # signing in needs no write: a wrong password is a 401, the right one a session
                resp = await client.post("/api/auth/login",
                                         json={"username": "owner", "password": "wrong one"})
                assert resp.status == 401, await resp.text()
                resp = await client.post("/api/auth/login",
                                         json={"username": "owner", "password": TEST_PASSWORD})
                assert resp.status == 200, await resp.text()
                session = await resp.json()
                me = await client.get("/api/users/me", headers={
                    "Authorization": f"Bearer {session['access_token']}"})
                assert me.status == 200 and (await me.json())["username"] == "owner"
                assert len(hub.db.backlog) >= 4  # 2 sign-in records, 2 audit entries, tokens

                rows = await hub.db.fetchall("SELECT ok FROM logins WHERE user_id = ?",
                                             (owner.id,))
                assert rows == []  # not yet: the disk is full

            finally:  # (else the hub cannot stop cleanly and the failure is hidden)
                filler.unlink()

            # space returns: the deferred records are written, in order, health recovers
            await asyncio.wait_for(hub.db.backlog.drained.wait(), HANG_GUARD)
            rows = await hub.db.fetchall(
                "SELECT ok, reason FROM logins WHERE user_id = ? ORDER BY id", (owner.id,))
            assert [(r["ok"], r["reason"]) for r in rows] == [(0, "bad_credentials"),
                                                             (1, None)]
            actions = [e.action for e in await hub.audit.entries(actor=owner.id)]
            assert actions[:2] == ["login.ok", "login.failed"]  # newest first
            assert await hub.audit.verify() is None  # the chain holds
            stored = await hub.db.fetchall(
                "SELECT kind FROM tokens WHERE user_id = ? AND kind != 'long'", (owner.id,))
            assert sorted(r["kind"] for r in stored) == ["access", "refresh"]
            resp = await client.patch("/api/devices/virtual.lamp", headers=bearer,
                                      json={"name": "Hall lamp"})
            assert resp.status == 200, await resp.text()
            health = await (await client.get("/api/health")).json()
            assert health["status"] == "ok" and "problems" not in health, health


async def test_the_backlog_retries_on_the_injected_clock() -> None:
    """The retry while the disk is full waits on the hub's clock (a test moves it), not on
    the loop's real time (before: asyncio.sleep)."""
    from hub.clock import ManualClock
    from hub.errors import StorageFull
    from hub.storage.full import WriteBacklog

    clock = ManualClock()
    backlog = WriteBacklog(retry=5.0, clock=clock)
    full, written = [True], []

    async def write() -> None:
        if full[0]:
            raise StorageFull("disk full")
        written.append("sign-in")

    assert not await backlog.write("a sign-in", write)
    full[0] = False  # space returns
    await clock.advance(4.9)
    assert written == [] and len(backlog) == 1  # not before the retry is due
    await clock.advance(0.1)
    assert written == ["sign-in"] and backlog.drained.is_set()
    await backlog.close()


async def test_the_hub_gives_its_clock_to_the_backlog(config_factory) -> None:
    from hub.clock import ManualClock

    clock = ManualClock()
    async with Hub(config_factory(), clock=clock) as hub:
        assert hub.db.backlog.clock is clock
