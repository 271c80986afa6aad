"""Every failure of a `uone-hub` command is one line on stderr and exit 2, never a traceback:
no terminal, standard input closed or empty, unwritable paths, unknown names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str | None = None, close_stdin: bool = False
        ) -> subprocess.CompletedProcess[str]:
    """The CLI without a controlling terminal (a new session), like a script or a unit."""
    kw: dict = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    if close_stdin:
        kw = {"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)}
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, start_new_session=True, **kw)


def one_line_exit_2(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(("uone-hub: error: ", "uone-hub: config error: "))
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_config(tmp_path))


def test_user_add_without_a_terminal_or_password_stdin(config: str) -> None:
    r = run("user", "add", "olga", "--role", "owner", "-c", config)
    one_line_exit_2(r, "no terminal", "--password-stdin")
    r = run("user", "add", "olga", "--role", "owner", "-c", config, close_stdin=True)
    one_line_exit_2(r, "no terminal")
    r = run("user", "add", "olga", "--password-stdin", "-c", config)
    one_line_exit_2(r, "no password on standard input")
    r = run("user", "add", "olga", "--password-stdin", "-c", config, close_stdin=True)
    one_line_exit_2(r, "standard input is closed")
    r = run("user", "add", "olga", "--password-stdin", "-c", config, stdin="\n")
    one_line_exit_2(r, "empty")
    r = run("user", "passwd", "olga", "-c", config)
    one_line_exit_2(r)


def test_refused_and_failed_commands(config: str, tmp_path: Path) -> None:
    r = run("user", "add", "x", "--role", "king", "--password-stdin", "-c", config,
            stdin="a long password\n")
    one_line_exit_2(r, "role")
    r = run("user", "delete", "nobody", "-c", config)
    one_line_exit_2(r, "nobody")
    r = run("token", "revoke", "nope", "-c", config)
    one_line_exit_2(r)
    r = run("backup", "create", "-o", str(tmp_path / "b.bin"), "-c", config)
    one_line_exit_2(r, "no terminal", "--passphrase-stdin")
    r = run("backup", "restore", str(tmp_path / "none.bin"), "-c", config,
            stdin="a long passphrase\n")
    one_line_exit_2(r, "already holds a hub")
    r = run("export", "-o", str(tmp_path / "no" / "dir" / "x.zip"), "-c", config)
    one_line_exit_2(r, "No such file or directory")
    r = run("vault", "set", "broker", "-c", config)
    one_line_exit_2(r, "no value")
    r = run("vault", "delete", "nope", "-c", config)
    one_line_exit_2(r, "nope")


def test_state_directory_that_cannot_be_used(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    config = str(write_config(tmp_path, {"data_dir": str(blocker / "data")}))
    for args in (("user", "list"), ("status",), ("vault", "list"), ("audit", "verify")):
        one_line_exit_2(run(*args, "-c", config))


def test_a_config_that_cannot_be_read_or_has_one_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for args in (("check-config", str(missing)), ("user", "list", "-c", str(missing)),
                 ("vault", "set", "x", "-c", str(missing))):
        one_line_exit_2(run(*args), f"{missing}: cannot read: No such file or directory")
    bad = tmp_path / "bad.yaml"
    bad.write_text("location: {time_zone: Mars/Olympus}\n")
    one_line_exit_2(run("status", "-c", str(bad)),
                    f"{bad}:1:23: location.time_zone: unknown time zone")
