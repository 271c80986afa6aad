"""Integration manifests: what each integration is and discovers, declared as data.

Every `integrations/<name>/manifest.json` is read at start, before any integration code is
imported, so the hub can validate their settings and build one discovery matcher index.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import integrations as _integrations_pkg
from hub.errors import ConfigProblem
from hub.yamlsource import INVALID, Document, KeyPath, show_value

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class BleMatcher:
    """One way an integration recognises a BLE advertisement; all given fields must match."""

    service_uuid: str | None = None
    service_data_uuid: str | None = None
    manufacturer_id: int | None = None
    local_name: str | None = None  # fnmatch pattern, e.g. "Improv-*"

    def matches(
        self,
        service_uuids: list[str],
        service_data: dict[str, bytes],
        manufacturer_data: dict[int, bytes],
        local_name: str | None,
    ) -> bool:
        if self.service_uuid is not None and self.service_uuid not in service_uuids:
            return False
        if self.service_data_uuid is not None and self.service_data_uuid not in service_data:
            return False
        if self.manufacturer_id is not None and self.manufacturer_id not in manufacturer_data:
            return False
        if self.local_name is not None and not (
            local_name and fnmatch.fnmatchcase(local_name, self.local_name)
        ):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an integration declares about itself."""

    name: str
    version: str
    description: str = ""
    mdns: tuple[str, ...] = ()
    ble: tuple[BleMatcher, ...] = ()
    dependencies: tuple[str, ...] = ()
    config_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    path: Path | None = None


class ManifestError(Exception):
    """A manifest file is malformed: a bug in the integration, reported at start."""


@functools.cache
def read_manifests(root: Path | None = None) -> dict[str, Manifest]:
    """Read every integration manifest under `root` (default: the `integrations` package)."""
    base = root or Path(_integrations_pkg.__file__).parent
    out: dict[str, Manifest] = {}
    for path in sorted(base.glob("*/manifest.json")):
        manifest = parse_manifest(path)
        out[manifest.name] = manifest
    return out


def parse_manifest(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != path.parent.name:
        raise ManifestError(f"{path}: name must be the folder name, got {name!r}")
    try:
        ble = tuple(BleMatcher(**m) for m in raw.get("ble", []))
    except TypeError as exc:
        raise ManifestError(f"{path}: bad ble matcher: {exc}") from exc
    mdns = tuple(raw.get("mdns", []))
    for t in mdns:
        if not re.fullmatch(r"_[a-z0-9-]+\._(tcp|udp)\.local\.", t):
            raise ManifestError(f"{path}: bad mDNS service type {t!r}")
    return Manifest(
        name=name,
        version=str(raw.get("version", "0")),
        description=str(raw.get("description", "")),
        mdns=mdns,
        ble=ble,
        dependencies=tuple(raw.get("dependencies", [])),
        config_schema=raw.get("config_schema", {"type": "object"}),
        path=path.parent,
    )


def validate_against(
    schema: dict[str, Any], value: Any, path: KeyPath, doc: Document,
    problems: list[ConfigProblem],
) -> None:
    """Check `value` against the JSON Schema subset manifests use, locating each problem.

    The subset (type, properties, required, additionalProperties, items, enum, minimum,
    maximum, minLength, maxLength, pattern, anyOf) keeps start-up free of the ~90 ms import
    of a full JSON Schema validator; the test suite checks the manifests with `jsonschema`.
    """
    if value is INVALID:
        return
    if "anyOf" in schema:
        for alt in schema["anyOf"]:
            trial: list[ConfigProblem] = []
            validate_against(alt, value, path, doc, trial)
            if not trial:
                return
        problems.append(doc.problem(path, "matches none of the allowed forms"))
        return
    t = schema.get("type")
    if t is not None and not _is_type(value, t):
        problems.append(doc.problem(path, f"expected {_describe(t)}, got {show_value(value)}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(doc.problem(path, f"expected one of {schema['enum']}, got {value!r}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(doc.problem(path, f"must be >= {schema['minimum']}, got {value}"))
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(doc.problem(path, f"must be <= {schema['maximum']}, got {value}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(doc.problem(path, f"must be at least {schema['minLength']} chars"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(doc.problem(path, f"must be at most {schema['maxLength']} chars"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(doc.problem(path, f"must match {schema['pattern']!r}, got {value!r}"))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                problems.append(doc.problem(path, f"missing required key '{req}'"))
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                validate_against(props[k], v, (*path, k), doc, problems)
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                problems.append(doc.problem((*path, k), f"unknown key (expected one of: {known})"))
            elif isinstance(extra, dict):
                validate_against(extra, v, (*path, k), doc, problems)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            validate_against(schema["items"], item, (*path, i), doc, problems)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _is_type(value: Any, t: str | list[str]) -> bool:
    names = [t] if isinstance(t, str) else t
    for name in names:
        if isinstance(value, _TYPES[name]) and not (
            name in ("integer", "number") and isinstance(value, bool)
        ):
            return True
    return False


def _describe(t: str | list[str]) -> str:
    names = [t] if isinstance(t, str) else t
    return " or ".join({"object": "a mapping", "array": "a list"}.get(n, f"a {n}") for n in names)
