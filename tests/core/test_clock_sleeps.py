"""Waits run on the injected clock (`hub.clock.Clock.sleep`, `ctx.clock.sleep`), so tests move
a ManualClock instead of sleeping. This scan keeps the few waits on the loop's real time to the
list below, each with its reason; `asyncio.sleep(0)` (yield to the loop) is not a wait."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (file, function) -> why it waits on real time on purpose
ON_PURPOSE = {
    ("hub/clock.py", "sleep"): "SystemClock.sleep is the injected clock's real implementation",
    ("hub/systemd.py", "watchdog"): "systemd's watchdog counts real time; a ManualClock in a "
                                    "test must not starve it",
    ("hub/storage/database.py", "checkpoint"): "VACUUM retried every 10 ms (50 tries) while "
                                               "SQLite's writer thread finishes a batch: real "
                                               "I/O, no hub time",
    ("hub/cloud/outbox.py", "wait_committed"): "2 ms polls of the writer thread's commit "
                                                 "counter (real I/O); the deadline is on the "
                                                 "injected clock",
    ("integrations/uone/simulator.py", "_set_wifi"): "a device simulator (a test double), "
                                                      "not the hub",
}


def test_real_time_waits_are_only_the_ones_on_purpose() -> None:
    found = {}
    for folder in ("hub", "integrations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for function, line in real_sleeps(path.read_text()):
                found[(rel, function)] = line
    unexpected = sorted(f"{f}:{line} in {fn}()" for (f, fn), line in found.items()
                        if (f, fn) not in ON_PURPOSE)
    assert unexpected == [], ("wait on the injected clock (self.clock.sleep / ctx.clock.sleep)"
                              " or add the place to ON_PURPOSE with its reason")
    assert set(ON_PURPOSE) <= set(found), "a listed place no longer sleeps: drop it"


def test_the_scan_finds_what_it_is_meant_to() -> None:
    sample = (
        "import asyncio\n"
        "async def watch(self):\n"
        "    await asyncio.sleep(60)\n"           # flagged
        "    await asyncio.sleep(0)\n"            # a yield: fine
        "    await self.clock.sleep(60)\n"        # the injected clock: fine
        "async def poll(self, every):\n"
        "    await asyncio.sleep(every)\n"        # flagged
    )
    assert real_sleeps(sample) == [("watch", 3), ("poll", 7)]


def real_sleeps(source: str) -> list[tuple[str, int]]:
    """(enclosing function, line) of every `asyncio.sleep(x)` with x not the constant 0."""
    out = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "sleep" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "asyncio"
                    and not (node.args and isinstance(node.args[0], ast.Constant)
                             and node.args[0].value == 0)):
                out.append((fn.name, node.lineno))
    return sorted(set(out), key=lambda x: x[1])
