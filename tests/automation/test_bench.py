"""The automation benchmark runs end to end (tiny sizes): hub process, HTTP, websocket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_against_a_hub_process():
    out = subprocess.run(
        [sys.executable, "-m", "bench.automation", "--devices", "30", "--automations", "10",
         "--sequential", "20", "--total", "100", "--inflight", "8", "--json", "--no-floor",
         "--both", "--echo-row"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["completed"] == 100
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["triggers_per_s"] > 0
    other = result["other"]  # --both: the same with one frame per message
    assert 0 < other["p50_ms"] <= other["p99_ms"] and other["triggers_per_s"] > 0
    echo = result["echo"]  # --echo-row: a bare aiohttp websocket echo, the same counts
    assert 0 < echo["p50_ms"] <= echo["p99_ms"] and echo["triggers_per_s"] > 0


def test_in_process_figures():
    out = subprocess.run(
        [sys.executable, "-m", "bench.automation", "--in-process", "--devices", "20",
         "--automations", "10", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["automation_per_s"] > 0 and got["direct_per_s"] > 0
    assert got["automation_cpu_us"] > got["direct_cpu_us"] > 0
