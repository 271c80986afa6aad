"""The shipped unit passes `systemd-analyze verify` silently and scores as well hardened."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "uone-hub.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _unit_with_local_execstart(tmp_path: Path) -> Path:
    # verify fails when ExecStart's binary is missing; point it at this interpreter.
    text = UNIT.read_text()
    lines = [
        f"ExecStart={sys.executable} -m hub run -c /etc/uone-hub/config.yaml"
        if line.startswith("ExecStart=") else line
        for line in text.splitlines()
    ]
    out = tmp_path / "uone-hub.service"
    out.write_text("\n".join(lines) + "\n")
    return out


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    unit = _unit_with_local_execstart(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    # verify exits 0 even for typos and unknown keys: any output at all is a failure.
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and output == "", output


def test_unit_declares_what_the_issue_requires() -> None:
    text = UNIT.read_text()
    for needle in ("Type=notify", "WatchdogSec=", "StateDirectory=uone-hub",
                   "ConfigurationDirectory=uone-hub", "User=uone-hub", "NoNewPrivileges=yes",
                   "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH"):
        assert needle in text, needle


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    unit = _unit_with_local_execstart(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=35", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, last
    assert "Overall exposure level" in last
    score = float(last.split(":")[1].split()[0])
    assert score <= 3.5, last
