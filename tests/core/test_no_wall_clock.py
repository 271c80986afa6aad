"""The suite asserts behaviour, never speed: a duration measured on the wall clock and held
under a limit fails on a slow or busy machine (a cold Chromium start took 1.67 s where a test
wanted 1.0). Speed and memory are measured by bench/ scripts that print tables.

This scan finds an upper bound on a measured duration in an `assert`: a clock reading minus
something (`loop.time() - t0`, `time.monotonic() - started`), or a name assigned from one,
on the small side of `<`, `<=`, `>` or `>=`; and the browser's `performance.now()`. A
deadline for a poll (`assert time.monotonic() < deadline`) and a lower bound (a timer did not
fire early) are behaviour and pass."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"time", "monotonic", "perf_counter", "monotonic_ns", "perf_counter_ns", "time_ns"}


def test_no_assertion_holds_a_measured_duration_under_a_limit() -> None:
    found = [f"{path.relative_to(TESTS.parent)}:{line}: {what}"
             for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
             for line, what in timing_asserts(path)]
    assert found == [], "speed belongs in bench/, not in the suite:\n" + "\n".join(found)


def test_the_scan_finds_what_it_is_meant_to(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\n"
        "async def f(loop, page):\n"
        "    t0 = loop.time()\n"
        "    took = loop.time() - t0\n"
        "    assert took < 15\n"                                     # 5: flagged
        "    assert 2.0 > time.monotonic() - t0\n"                   # 6: flagged
        "    assert took >= 0.05\n"                                  # 7: lower bound, fine
        "    deadline = time.monotonic() + 30\n"
        "    assert time.monotonic() < deadline\n"                   # 9: a poll, fine
        "    ms = await page.evaluate('() => performance.now()')\n"  # 10: flagged
    )
    assert [line for line, _ in timing_asserts(sample)] == [5, 6, 10]


# -- the scan ----------------------------------------------------------------------------


def timing_asserts(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            continue
        durations = {t.id for node in ast.walk(fn) if isinstance(node, ast.Assign)
                     and _is_duration(node.value, set())
                     for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assert):
                for cmp in ast.walk(node.test):
                    if isinstance(cmp, ast.Compare) and _bounds_above(cmp, durations):
                        out.append((node.lineno, ast.unparse(node.test)))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and "performance.now" in node.value):
            out.append((node.lineno, "performance.now() in a test"))
    return sorted(set(out))


def _is_clock(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in CLOCKS)


def _is_duration(node: ast.AST, durations: set[str]) -> bool:
    """A clock reading minus something, or a name holding one (scaled or not)."""
    if isinstance(node, ast.Name):
        return node.id in durations
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Sub) and any(_is_clock(n) for n in ast.walk(node.left)):
            return True
        return _is_duration(node.left, durations) or _is_duration(node.right, durations)
    return False


def _bounds_above(cmp: ast.Compare, durations: set[str]) -> bool:
    operands = [cmp.left, *cmp.comparators]
    for op, left, right in zip(cmp.ops, operands[:-1], operands[1:], strict=True):
        small = left if isinstance(op, ast.Lt | ast.LtE) else (
            right if isinstance(op, ast.Gt | ast.GtE) else None)
        if small is not None and _is_duration(small, durations):
            return True
    return False
