"""`uone-hub vault rotate`: a new key, every entry kept, even when killed at any point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hub.hub import Hub
from hub.vault import KEY_FILENAME, PENDING_FILENAME

ROOT = Path(__file__).resolve().parents[2]
N = 200


def _rotate(config: Path, pause: str | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CREDENTIALS_DIRECTORY", None)
    if pause:
        env["UONE_TEST_VAULT_ROTATE_PAUSE"] = pause
    return subprocess.Popen([sys.executable, "-m", "hub", "vault", "rotate", "-c", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


async def _fill(loaded) -> None:
    async with Hub(loaded) as h:
        for i in range(N):
            await h.vault.put("wifi", f"net-{i}", {"password": f"password-{i}",
                                                   "security": "wpa2-psk"})
        await h.vault.put("bthome", "a4:c1:38:00:00:01", {"bind_key": "ff" * 16})


async def _check_all(loaded) -> str:
    async with Hub(loaded) as h:
        names = [e.name for e in await h.vault.entries("wifi")]
        assert sorted(names) == sorted(f"net-{i}" for i in range(N))
        for i in (0, N // 2, N - 1):
            assert (await h.vault.get("wifi", f"net-{i}"))["password"] == f"password-{i}"
        assert (await h.vault.get("bthome", "a4:c1:38:00:00:01"))["bind_key"] == "ff" * 16
        assert not (h.state_dir / PENDING_FILENAME).exists()
        return h.vault.key_id


async def test_rotate_reencrypts_everything(config_factory) -> None:
    loaded = config_factory()
    await _fill(loaded)
    before = (loaded.state_dir / KEY_FILENAME).read_bytes()
    async with Hub(loaded) as h:
        old_id = h.vault.key_id
        old_ct = bytes((await h.db.fetchone("SELECT ciphertext FROM vault_entries"))[0])
    proc = _rotate(loaded.path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"re-encrypted {N + 1} entries: key {old_id} -> " in out
    assert (loaded.state_dir / KEY_FILENAME).read_bytes() != before
    assert (loaded.state_dir / KEY_FILENAME).stat().st_mode & 0o777 == 0o600
    new_id = await _check_all(loaded)
    assert new_id != old_id
    for suffix in ("", "-wal"):
        p = loaded.state_dir / ("hub.db" + suffix)
        if p.exists():
            assert old_ct not in p.read_bytes()


@pytest.mark.parametrize(("stage", "rotated"),
                         [("pending", False), ("midway", False), ("committed", True)])
async def test_rotate_killed_midway_loses_nothing(config_factory, stage: str,
                                                  rotated: bool) -> None:
    loaded = config_factory()
    await _fill(loaded)
    async with Hub(loaded) as h:
        old_id = h.vault.key_id
    proc = _rotate(loaded.path, pause=stage)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == f"paused at {stage}", proc.stderr.read() if proc.stderr else ""
    assert (loaded.state_dir / PENDING_FILENAME).exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    key_id = await _check_all(loaded)  # recovery happens when the vault opens
    assert (key_id != old_id) is rotated
    # and a later rotation still works
    proc = _rotate(loaded.path)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    await _check_all(loaded)


async def test_rotate_refuses_while_the_hub_runs(hub: Hub) -> None:
    proc = _rotate(hub.loaded.path)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "in use by a running hub" in err
