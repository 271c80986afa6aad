"""The Matter server fetches nothing from the internet, even when its PAA roots are old.

python-matter-server 7.0.1 downloads PAA roots from the DCL and GitHub at start whenever the
PAA directory's `.version` is more than a day old, and vendor names from the DCL at every
start; it has no flag against either. The unit (and the test double) start it through
systemd/matter_server_offline.py, which replaces both with no-ops. Here its `.version` is
three days old: the server must neither try to fetch nor touch the directory.
(The plain `matter-server` fails both checks: it logs "Fetching the latest PAA root
certificates from DCL." and "... vendor info from DCL." and rewrites `.version`.) Every other
Matter test runs the server through the same wrapper, commissioning and attestation
included.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.doubles import matter

THREE_DAYS = 3 * 24 * 3600


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir())}


async def test_old_paa_roots_are_not_refreshed_and_nothing_is_fetched(
        matter_parts, lan, paa_dir: Path, tmp_path: Path) -> None:
    version = paa_dir / ".version"
    aged = version.stat().st_mtime - THREE_DAYS
    os.utime(version, (aged, aged))
    before = snapshot(paa_dir)
    assert ".version" in before and any(n.endswith(".der") for n in before)

    server = matter.MatterServer(matter_parts[0], tmp_path / "server", paa_dir)
    async with matter.running(server):  # returns once it listens: past both fetches
        pass
    log = server.log.read_text(errors="replace")
    assert "Matter Server successfully initialized" in log, log[-2000:]
    assert [line for line in log.splitlines() if "Fetching" in line] == []
    assert "offline: not fetching PAA root certificates" in log
    assert "offline: not fetching vendor names" in log
    assert snapshot(paa_dir) == before  # not emptied, not rewritten, .version still old

