"""The start-up database check: PRAGMA quick_check time against file size.

`python -m bench.integrity [--mb 50,200]` builds hub databases of history rows (the real
schema, indexes included) and times `hub.storage.database.quick_check` on each, cold-ish
(after the build) and warm. The figure sets `storage.integrity_check_seconds`' default.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import table
from hub.hub import core_schemas
from hub.storage.database import quick_check
from hub.storage.migrations import migrate


def build(path: Path, megabytes: int) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, core_schemas())
    rows = 0
    ts = 1_700_000_000.0
    while path.stat().st_size < megabytes * 1_000_000:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO history(device_id, attribute, value, ts) VALUES(?, ?, ?, ?)",
            ((f"virtual.d{i % 500}", "value", str(i * 0.5), ts + i)
             for i in range(rows, rows + 100_000)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows += 100_000
    conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="50,200", help="file sizes to build, in MB")
    args = parser.parse_args()
    out = []
    with tempfile.TemporaryDirectory(prefix="uone-bench-integrity-") as tmp:
        for mb in (int(x) for x in args.mb.split(",")):
            path = Path(tmp) / f"hub-{mb}.db"
            rows = build(path, mb)
            first = quick_check(path, 3600)
            started = time.perf_counter()
            second = quick_check(path, 3600)
            warm = time.perf_counter() - started
            assert first.complete and second.complete
            size = path.stat().st_size / 1e6
            out.append((f"quick_check {size:.0f} MB ({rows:,} history rows)",
                        f"{first.seconds:.2f} s / {warm:.2f} s warm",
                        f"{size / max(warm, 1e-9):.0f} MB/s warm"))
    print(table("Start-up database check (PRAGMA quick_check)", out))


if __name__ == "__main__":
    main()
