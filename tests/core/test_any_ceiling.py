"""`Any` in the strictly type-checked modules may only go down (issue 17.5).

The strict modules are read from pyproject.toml (the mypy override that turns mypy's
--strict flags on); every `Any` used in them (annotations, aliases, casts; not the import
itself) is counted and held at or under CEILING. Lower CEILING when you remove some; a
change that needs a new `Any` there has to take one out elsewhere, or say why here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CEILING = 73  # 115 at 1e0a828; 73 once tasks, the loader context, storage and secrets were typed


def strict_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    [strict] = [o for o in config["overrides"] if o.get("disallow_any_generics")]
    return list(strict["module"])


def module_files(module: str) -> list[Path]:
    if module.endswith(".*"):
        package = ROOT / module.removesuffix(".*").replace(".", "/")
        return sorted(package.rglob("*.py"))
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return [path]
    return []


def count_any(source: str) -> int:
    """Uses of `Any` / `typing.Any` (string annotations parsed too); imports not counted."""
    tree = ast.parse(source)
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "Any":
            count += 1
        elif isinstance(node, ast.Attribute) and node.attr == "Any" \
                and isinstance(node.value, ast.Name) and node.value.id in ("typing", "t"):
            count += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _annotation_strings(tree, node):
            try:
                count += count_any(node.value)
            except SyntaxError:
                pass
    return count


def _annotation_strings(tree: ast.AST, const: ast.Constant) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is const:
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is const:
            return True
    return False


def test_any_in_the_strict_modules_does_not_grow() -> None:
    counts = {path.relative_to(ROOT).as_posix(): count_any(path.read_text())
              for module in strict_modules() for path in module_files(module)}
    total = sum(counts.values())
    worst = ", ".join(f"{f} {n}" for f, n in sorted(counts.items(), key=lambda x: -x[1])[:5])
    assert total <= CEILING, (f"{total} uses of Any in the strict modules, ceiling {CEILING} "
                              f"(most in: {worst}): type the new ones")


def test_every_strict_module_is_counted() -> None:
    modules = strict_modules()
    assert "hub.facade" in modules and "hub.storage.*" in modules
    assert [m for m in modules if not module_files(m)] == []


def test_the_count_sees_what_it_is_meant_to() -> None:
    sample = (
        "from typing import Any\n"                       # the import: not counted
        "import typing\n"
        "X = dict[str, Any]\n"                           # 1
        "def f(a: Any, b: 'list[Any]') -> typing.Any:\n"  # 3
        "    return cast(Any, a)\n"                       # 1
    )
    assert count_any(sample) == 5
