"""The Matter server's unit passes `systemd-analyze verify` silently, is hardened, runs before
the hub, keeps its own state and listens on loopback only."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "uone-matter.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _local_unit(tmp_path: Path) -> Path:
    """verify fails when ExecStart's binary is missing: point it at this interpreter."""
    out, skipping = [], False
    for line in UNIT.read_text().splitlines():
        if line.startswith("ExecStart="):
            out.append(f"ExecStart={sys.executable} -c pass")
            skipping = line.endswith("\\")
            continue
        if skipping:
            skipping = line.endswith("\\")
            continue
        out.append(line)
    path = tmp_path / "uone-matter.service"
    path.write_text("\n".join(out) + "\n")
    return path


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(_local_unit(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and output == "", output


def test_unit_declares_what_the_issue_requires() -> None:
    text = UNIT.read_text()
    for needle in ("/opt/uone-matter/.venv/bin/python -I "
                   "/opt/uone-hub/systemd/matter_server_offline.py",
                   "Before=uone-hub.service", "Restart=on-failure",
                   "StateDirectory=uone-matter", "--listen-address 127.0.0.1",
                   "--paa-root-cert-dir %S/uone-matter/paa", "User=uone-matter",
                   "IPAddressDeny=any", "NoNewPrivileges=yes", "ProtectSystem=strict",
                   "--log-file %L/uone-matter/server.log", "LogsDirectoryMode=0750"):
        assert needle in text, needle


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=35",
                           str(_local_unit(tmp_path))], capture_output=True, text=True,
                          timeout=60)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, last
    score = float(last.split(":")[1].split()[0])
    assert score <= 3.5, last
