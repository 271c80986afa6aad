"""`uone-hub user|token|status` on the state directory of a stopped hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.auth.principal import Role
from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args, "-c", str(config)], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


async def test_users_and_tokens_from_the_command_line(config: Path) -> None:
    loaded = load_config(config)
    async with Hub(loaded) as hub:  # first start: onboarding code written
        assert hub.auth.needs_owner and hub.auth.onboarding_path.exists()
    r = cli(config, "user", "add", "olga", "--role", "owner", "--password-stdin",
            stdin="owner password\n")
    assert r.returncode == 0, r.stderr
    assert "created owner olga" in r.stdout
    assert not (loaded.state_dir / "onboarding-code").exists()  # onboarding is over
    r = cli(config, "user", "add", "kid", "--role", "guest", "--minor", "--password-stdin",
            stdin="kid password\n")
    assert r.returncode == 0, r.stderr
    r = cli(config, "user", "add", "x", "--role", "king", "--password-stdin", stdin="12345678\n")
    assert r.returncode == 2 and "role" in r.stderr
    r = cli(config, "user", "add", "olga", "--role", "member", "--password-stdin",
            stdin="another password\n")
    assert r.returncode == 2 and "taken" in r.stderr
    r = cli(config, "user", "add", "shorty", "--password-stdin", stdin="short\n")
    assert r.returncode == 2 and "password" in r.stderr
    r = cli(config, "user", "list")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3
    assert any(line.split()[:2] == ["kid", "guest"] and " yes " in line for line in lines)

    r = cli(config, "token", "create", "--user", "olga", "--name", "backup")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("uh_") and len(token) > 40
    r = cli(config, "token", "list")
    assert "backup" in r.stdout and token not in r.stdout
    token_id = next(line.split()[0] for line in r.stdout.splitlines() if "backup" in line)

    async with Hub(loaded) as hub:
        assert not hub.auth.onboarding_path.exists()  # an owner exists: no new code
        who = hub.auth.authenticate(token)
        assert who.username == "olga" and who.role == Role.OWNER
        assert hub.auth.find_user("kid").is_minor
        actions = [e.action for e in await hub.audit.entries()]
        assert actions.count("user.create") == 2 and "token.create" in actions

    r = cli(config, "user", "passwd", "kid", "--password-stdin", stdin="new kid password\n")
    assert r.returncode == 0, r.stderr
    r = cli(config, "token", "revoke", token_id)
    assert r.returncode == 0, r.stderr
    r = cli(config, "token", "revoke", "nope")
    assert r.returncode == 2
    r = cli(config, "user", "delete", "olga")
    assert r.returncode == 2 and "last owner" in r.stderr
    r = cli(config, "user", "delete", "kid")
    assert r.returncode == 0
    async with Hub(loaded) as hub:
        assert hub.auth.find_user("kid") is None
        assert not hub.auth.tokens()
        from hub.errors import AuthError
        with pytest.raises(AuthError):
            hub.auth.authenticate(token)


def test_status_shows_version_fingerprint_and_users(config: Path, tmp_path: Path) -> None:
    from hub import __version__, tls

    r = cli(config, "status")
    assert r.returncode == 0, r.stderr
    assert __version__ in r.stdout and "users:            0" in r.stdout
    assert "not created yet" in r.stdout and "onboarding" in r.stdout
    state = load_config(config).state_dir
    cert, _ = tls.ensure_self_signed(state)
    r = cli(config, "status")
    assert tls.fingerprint(cert) in r.stdout


async def test_cli_token_works_on_a_running_hub_and_revocation_reaches_it(
        config: Path) -> None:
    """The CLI writes while the hub runs; the hub sees new tokens at once and
    revocations within a second."""
    import asyncio

    loaded = load_config(config)
    async with Hub(loaded) as hub:
        user = await hub.auth.create_user("olga", "owner password", Role.OWNER)
        await hub.db.flush()
        r = await asyncio.to_thread(cli, config, "token", "create", "--user", "olga",
                                    "--name", "cron")
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        who = await hub.auth.resolve(token)
        assert who.user_id == user.id
        revoked = asyncio.Event()
        hub.auth.on_revoke(who.token_id, revoked.set)
        r = await asyncio.to_thread(cli, config, "token", "revoke", who.token_id)
        assert r.returncode == 0, r.stderr
        await asyncio.wait_for(revoked.wait(), 5)
        from hub.errors import AuthError
        with pytest.raises(AuthError):
            await hub.auth.resolve(token)
