"""A real power cut: the hub process is killed (SIGKILL) during a delay; after a restart the
run resumes from the stored deadline instead of starting over or being lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
DELAY = 3.0


def _query(db: Path, sql: str) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


def _poll(fn: Any, limit: float = 20.0) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("not reached in time")


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "hub", "run", "-c", str(cfg)], cwd=ROOT,
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_delay_survives_sigkill(tmp_path: Path) -> None:
    automation = {
        "id": "porch", "mode": "parallel",
        "triggers": [{"type": "hub_start"}],
        "conditions": [{"type": "state", "device": "virtual.lamp", "attribute": "on",
                        "state": False}],
        "actions": [{"type": "command", "device": "virtual.lamp", "command": "turn_on"},
                    {"type": "delay", "seconds": DELAY},
                    {"type": "command", "device": "virtual.lamp", "command": "turn_off"}],
    }
    cfg = write_config(tmp_path, {"automations": [automation], "log_level": "info"})
    db = tmp_path / "data" / "hub.db"
    log = tmp_path / "hub.log"
    first = _start(cfg, log)
    try:
        rows = _poll(lambda: _query(db, "SELECT * FROM automation_timers WHERE kind='delay'"))
        deadline = rows[0]["deadline"]
    finally:
        first.send_signal(signal.SIGKILL)  # no clean stop: a power cut
        first.wait(10)
    assert json.loads(rows[0]["path"]) == ["actions", 1]
    second = _start(cfg, log)
    try:
        def resumed() -> list[dict[str, Any]]:
            traces = [json.loads(r["trace"]) for r in _query(
                db, "SELECT trace FROM automation_traces WHERE automation_id='porch'")]
            return [t for t in traces if t["resumed"] and t["state"] == "done"]

        done = _poll(resumed)[0]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert [a["path"] for a in done["actions"]] == ["actions[1]", "actions[2]"]
    assert done["actions"][0].get("resumed") is True
    assert done["actions"][1]["result"] == {"on": False}
    # it waited for the stored deadline (the delay step says `resumed`: it took its deadline
    # from the saved timer, not from a new start), and did not end before it
    assert done["finished"] >= deadline - 0.05 or done["started"] >= deadline - 0.05
    assert _query(db, "SELECT * FROM automation_timers") == []
