"""`uone-hub automations check` names the real blocker of a sun automation: the missing
`location` consent, not coordinates the config already has (issue 18.12)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
SUN = {"id": "porch", "triggers": [{"type": "sun", "event": "sunset"}],
       "actions": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"}]}


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", "automations", "check", "-c",
                           str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


async def test_check_blames_the_missing_location_consent(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"location": {"latitude": 52.5, "longitude": 13.4},
                                     "automations": [SUN]})
    loaded = load_config(config)
    async with Hub(loaded):
        pass
    r = await asyncio.to_thread(check, config)
    assert r.returncode == 2, r.stdout
    assert "automation 'porch'" in r.stderr
    assert "the owner has not given 'location' consent" in r.stderr
    assert "set location.latitude" not in r.stderr  # the config has them

    async with Hub(loaded) as hub:
        await hub.privacy.set_consent("location", True, None)
    r = await asyncio.to_thread(check, config)
    assert r.returncode == 0, r.stderr
    assert "1 automations, 0 with problems" in r.stdout


async def test_check_with_consent_but_no_coordinates_asks_for_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"automations": [SUN]})
    loaded = load_config(config)
    async with Hub(loaded) as hub:
        await hub.privacy.set_consent("location", True, None)
    r = await asyncio.to_thread(check, config)
    assert r.returncode == 2
    assert "no coordinates" in r.stderr and "'location' consent" not in r.stderr
