"""The hub stays small: HAP-python and aiohomekit are imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hub_imports_no_homekit_library_until_used() -> None:
    code = ("import sys, hub.hub, hub.api.app, integrations.homekit_controller, "
            "hub.homekit.bridge; print(sorted({m.split('.')[0] for m in sys.modules "
            "if m.split('.')[0] in ('pyhap', 'aiohomekit')}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
