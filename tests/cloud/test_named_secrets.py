"""Named secrets (issue 18.10): the broker password the config names can be stored, from the
CLI (stdin, hub stopped or running) and the owner-only write-only API, and the cloud uses it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.auth.principal import Role
from hub.config import LoadedConfig, load_config
from hub.hub import Hub
from tests.cloud.conftest import USERS, cloud_section
from tests.conftest import write_config
from tests.doubles import mosquitto

ROOT = Path(__file__).resolve().parents[2]
NAME = "home_broker"


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    kw: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "hub", *args, "-c", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, start_new_session=True,
                          **kw)


@pytest.fixture
def config_factory(tmp_path: Path, broker: mosquitto.Mosquitto) -> Callable[..., LoadedConfig]:
    """Hubs of this module: a cloud section naming the broker password `home_broker`."""
    def make(extra: dict[str, Any] | None = None, **kw: Any) -> LoadedConfig:
        cfg = {"cloud": cloud_section(broker, password_secret=NAME), **(extra or {})}
        return load_config(write_config(tmp_path, cfg, **kw))

    return make


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_owner_sets_the_broker_password_through_the_api_and_the_cloud_connects(
        hub: Hub, client_for: Callable[..., Any], api_client: Any) -> None:
    r = await api_client.put("/api/privacy/consents", json={"cloud_sync": True})
    assert r.status == 200, await r.text()
    await _until(lambda: hub.cloud.state == "error", "the cloud to miss its password")
    assert NAME in (hub.cloud.last_error or "")
    r = await api_client.get("/api/vault/secrets")
    body = await r.json()
    assert body["secrets"] == []
    assert body["referenced"] == [{"key": "cloud.password_secret", "name": NAME, "set": False}]

    admin = await client_for(Role.ADMIN)
    r = await admin.put(f"/api/vault/secrets/{NAME}", json={"value": USERS["hub"]})
    assert r.status == 403
    r = await admin.get("/api/vault/secrets")
    assert r.status == 403
    for bad, fld in (({"value": ""}, "value"), ({"value": 5}, "value"),
                     ({"value": "x", "also": 1}, "also")):
        r = await api_client.put(f"/api/vault/secrets/{NAME}", json=bad)
        assert r.status == 400 and (await r.json())["error"]["field"] == fld
    r = await api_client.put("/api/vault/secrets/cloud/sync_key", json={"value": "x"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "name"

    r = await api_client.put(f"/api/vault/secrets/{NAME}", json={"value": USERS["hub"]})
    assert r.status == 200
    info = await r.json()
    assert info["created"] is True and info["used_by"] == ["cloud.password_secret"]
    assert USERS["hub"] not in json.dumps(info)
    await _until(lambda: hub.cloud.connected, "the cloud to connect with the stored password")

    r = await api_client.get("/api/vault/secrets")
    text = await r.text()
    assert USERS["hub"] not in text
    body = json.loads(text)
    assert [s["name"] for s in body["secrets"]] == [NAME]
    assert body["referenced"][0]["set"] is True
    assert await hub.vault.get("secret", NAME) == {"value": USERS["hub"]}
    actions = [(e.action, e.target) for e in await hub.audit.entries()]
    assert ("vault.secret.set", NAME) in actions
    assert all(USERS["hub"] not in json.dumps(e.details) for e in await hub.audit.entries())

    r = await api_client.delete(f"/api/vault/secrets/{NAME}")
    assert r.status == 204
    r = await api_client.delete(f"/api/vault/secrets/{NAME}")
    assert r.status == 404
    assert not await hub.vault.exists("secret", NAME)
    assert ("vault.secret.delete", NAME) in [(e.action, e.target)
                                            for e in await hub.audit.entries()]


async def test_openapi_documents_the_secret_routes(api_client: Any) -> None:
    spec = await (await api_client.get("/api/openapi.json")).json()
    assert {"get"} <= set(spec["paths"]["/api/vault/secrets"])
    assert {"put", "delete"} <= set(spec["paths"]["/api/vault/secrets/{name}"])


async def test_cli_sets_a_secret_with_the_hub_stopped_and_running(
        config_factory: Callable[..., LoadedConfig]) -> None:
    loaded = config_factory()
    config = loaded.path
    r = cli(config, "vault", "set", NAME, stdin=USERS["hub"] + "\n")
    assert r.returncode == 0, r.stderr
    assert "stored secret home_broker (used by cloud.password_secret)" in r.stdout
    assert USERS["hub"] not in r.stdout + r.stderr
    r = cli(config, "vault", "set", NAME, stdin="")
    assert r.returncode == 2 and "no value" in r.stderr
    r = cli(config, "vault", "set", NAME, USERS["hub"])  # never from argv
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr

    async with Hub(loaded) as hub:  # the running hub holds the vault lock (shared)
        assert await hub.cloud.secrets.get(NAME) == USERS["hub"]
        r = await asyncio.to_thread(cli, config, "vault", "set", NAME,
                                    stdin="line one\nline two\n")
        assert r.returncode == 0, r.stderr
        assert "replaced secret home_broker" in r.stdout
        assert await hub.cloud.secrets.get(NAME) == "line one\nline two"
        r = await asyncio.to_thread(cli, config, "vault", "list")
        assert r.returncode == 0 and NAME in r.stdout and "line one" not in r.stdout
        actions = [e.action for e in await hub.audit.entries()]
        assert actions.count("vault.secret.set") == 2

    from hub.vault import acquire_lock

    lock = acquire_lock(loaded.state_dir)  # as a rotation holds it
    try:
        r = cli(config, "vault", "set", NAME, stdin="x\n")
        assert r.returncode == 2 and "rotated" in r.stderr
    finally:
        os.close(lock)


async def test_cli_refuses_to_make_a_key_beside_a_credential_key(
        config_factory: Callable[..., LoadedConfig], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub that runs on a systemd credential key: a key file made by the CLI would lock
    it out of its own vault."""
    from hub.vault import CREDENTIAL_NAME

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / CREDENTIAL_NAME).write_bytes(os.urandom(32))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    loaded = config_factory()
    async with Hub(loaded):
        pass
    assert not (loaded.state_dir / "vault.key").exists()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    r = cli(loaded.path, "vault", "set", NAME, stdin="x\n")
    assert r.returncode == 2 and "systemd credential" in r.stderr
    assert not (loaded.state_dir / "vault.key").exists()


async def test_cloud_reads_named_secrets_first_then_the_legacy_kind(tmp_path: Path) -> None:
    from hub.cloud.sources import VaultSecrets

    async with Hub(load_config(write_config(tmp_path))) as hub:
        secrets = VaultSecrets(hub.vault)
        await hub.vault.put("broker", "pw", {"password": "old"})
        assert await secrets.get("pw") == "old"
        await hub.vault.put("secret", "pw", {"value": "new"})
        assert await secrets.get("pw") == "new"


@pytest.fixture
async def hub(config_factory: Callable[..., LoadedConfig]) -> AsyncIterator[Hub]:
    async with Hub(config_factory()) as h:
        yield h
