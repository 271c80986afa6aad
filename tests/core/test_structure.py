"""The shape of the code: a pinned façade, modules that import alone, one-way dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]



def _modules(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts))
    return out


@pytest.mark.parametrize("module", _modules("hub") + _modules("integrations"))
def test_module_imports_alone(module: str) -> None:
    # A fresh interpreter per module finds import cycles that a warm one would hide.
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_core_never_imports_the_api() -> None:
    for path in (ROOT / "hub").rglob("*.py"):
        rel = path.relative_to(ROOT / "hub")
        if rel.parts[0] in ("api",) or rel.name in ("daemon.py", "cli.py", "__main__.py"):
            continue
        if rel.name == "cli.py" or rel.parts[-1] == "cli.py":
            continue
        bad = {m for m in _imports(path) if m == "hub.api" or m.startswith("hub.api.")}
        assert not bad, f"hub/{rel} imports {bad}: the core must not depend on the API"


def test_integrations_import_only_the_facade() -> None:
    for path in (ROOT / "integrations").rglob("*.py"):
        own = path.relative_to(ROOT / "integrations").parts[0]
        for module in _imports(path):
            if module.startswith("hub"):
                assert module == "hub.facade", f"{path.relative_to(ROOT)} imports {module}"
            if module.startswith("integrations."):
                assert module.split(".")[1] == own, (
                    f"{path.relative_to(ROOT)} imports another integration: {module}")


# -- the service graph: no Hub passed around, no probing it, no import cycles -------------

# The composition root, the process and the API (which sits on top of the core) may name Hub.
_MAY_USE_HUB = {"hub/hub.py", "hub/daemon.py", "hub/cli.py", "hub/__main__.py"}


def _core_files() -> list[Path]:
    return [p for p in sorted((ROOT / "hub").rglob("*.py"))
            if p.relative_to(ROOT).parts[1] != "api"
            and str(p.relative_to(ROOT)) not in _MAY_USE_HUB]


def _is_hubish(node: ast.expr) -> bool:
    """`hub`, `self.hub`, `self._hub`, `x.hub`..."""
    if isinstance(node, ast.Name):
        return node.id in ("hub", "_hub")
    return isinstance(node, ast.Attribute) and node.attr in ("hub", "_hub")


def test_core_services_receive_what_they_use_not_the_hub() -> None:
    """No core module imports `Hub` (even for typing) or probes it with getattr: each
    service is given the services it uses, and hub/hub.py shows the whole graph."""
    problems = []
    for path in _core_files():
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "hub.hub" and any(
                    a.name == "Hub" for a in node.names):
                problems.append(f"{rel}:{node.lineno} imports Hub")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "getattr" and node.args and _is_hubish(node.args[0])):
                problems.append(f"{rel}:{node.lineno} probes the hub with getattr")
            elif isinstance(node, ast.arg) and node.annotation is not None and (
                    "Hub" in {n.id for n in ast.walk(node.annotation)
                              if isinstance(n, ast.Name)}):
                problems.append(f"{rel}:{node.lineno} takes the Hub ({node.arg})")
    assert not problems, "\n".join(problems)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: str = "hub") -> dict[str, set[str]]:
    """Every import between the package's modules: module level, inside functions and under
    TYPE_CHECKING alike (a type-only cycle is still a knot in the design)."""
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_hub() -> None:
    graph = import_graph("hub")
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the scan sees imports
    assert cycles(graph) == []
