"""`uone-hub automations check -c CONFIG`: validate every automation before (re)starting.

Checks the shape of YAML and API-made automations, and, when the hub's database exists,
devices, attributes, commands, privacy scopes and loops against the devices it knows. Reads
the database read-only, so it is safe while the hub runs. Exit 0 all valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def register(sub: Any) -> None:
    p = sub.add_parser("automations", help="check automations")
    asub = p.add_subparsers(dest="automations_command", metavar="ACTION")
    asub.required = True
    c = asub.add_parser("check", help="validate every automation and report each problem")
    c.add_argument("-c", "--config", required=True, help="path to config.yaml")
    c.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from hub.automation.checks import check
    from hub.automation.definitions import yaml_sources
    from hub.automation.model import Automation, DefinitionError, format_path, parse
    from hub.automation.sun import NoLocation, home_location
    from hub.cli import load_or_exit
    from hub.hub import DB_FILENAME

    loaded = load_or_exit(args.config)
    sources, errors = yaml_sources(loaded.config.automations, loaded.document, loaded.path)
    db_path = loaded.state_dir / DB_FILENAME
    devices, api, privacy = _read_db(db_path, loaded.config)
    items: list[tuple[Any, str, Any]] = [(raw, "yaml", (doc, base)) for raw, doc, base in sources]
    items += [(raw, "api", None) for raw in api]
    # What the privacy center would say: without `location` consent there is no location,
    # whatever the config's coordinates.

    def location_missing() -> str | None:
        try:
            home_location(privacy, loaded.config.location)
        except NoLocation as exc:
            return str(exc)
        return None

    parsed: dict[str, Automation] = {}
    results: list[tuple[str, Any, list[Any]]] = []
    for raw, _source, where in items:
        try:
            auto = parse(raw)
            parsed[auto.id] = auto
            results.append((auto.id, where, []))
        except DefinitionError as exc:
            name = raw.get("id") if isinstance(raw, dict) else None
            results.append((str(name or "?"), where, exc.problems))
    bad = len(errors)
    for error in errors:
        print(error, file=sys.stderr)
    for auto_id, where, problems in results:
        if not problems and devices is not None and auto_id in parsed:
            problems = check(parsed[auto_id], devices.get, parsed, location_missing)
        for p in problems:
            loc = ""
            if where is not None:
                doc, base = where
                line, col = doc.where((*base, *p.path))
                loc = f"{doc.file}:{line}:{col}: "
            print(f"{loc}automation {auto_id!r}: {format_path(p.path) or '<root>'}: "
                  f"{p.message}", file=sys.stderr)
        bad += bool(problems)
    checked = "shape, devices, scopes and loops" if devices is not None else (
        f"shape only (no database at {db_path} to check devices against)")
    print(f"{len(results)} automations, {bad} with problems; checked {checked}")
    return EXIT_OK if bad == 0 else EXIT_USAGE


class _StoredPrivacy:
    """The privacy center's `location` consent and coordinates as stored (read-only)."""

    def __init__(self, allowed: bool, stored: Any, config: Any) -> None:
        self._allowed = allowed
        loc = config.location
        # with consent and nothing stored yet, the hub seeds the config's coordinates
        self._location = stored if stored is not None else (
            SimpleNamespace(latitude=loc.latitude, longitude=loc.longitude,
                            elevation=loc.elevation)
            if loc.latitude is not None and loc.longitude is not None else None)

    def allowed(self, purpose: str) -> bool:
        return purpose == "location" and self._allowed

    def location(self) -> Any:
        return self._location if self._allowed else None


def _read_db(path: Path, config: Any
             ) -> tuple[dict[str, Any] | None, list[Any], _StoredPrivacy]:
    from hub.devices import _from_row
    from hub.privacy.consent import stale_grant

    if not path.exists():
        return None, [], _StoredPrivacy(False, None, config)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        devices = {d.id: d for d in map(_from_row, conn.execute("SELECT * FROM devices"))}
        try:
            api = [json.loads(r["definition"]) for r in conn.execute(
                "SELECT definition FROM automations ORDER BY created_at")]
        except sqlite3.OperationalError:  # a database from before automations existed
            api = []
        try:
            row = conn.execute("SELECT * FROM consents WHERE purpose = 'location'").fetchone()
            stored = conn.execute("SELECT latitude, longitude, elevation FROM "
                                  "privacy_location WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # a database from before the privacy center
            row = stored = None
    finally:
        conn.close()
    granted = row is not None and bool(row["granted"]) and not row["paused"]
    allowed = granted and not stale_grant(granted, row["notice_version"], "location",
                                          config.privacy)
    coords = SimpleNamespace(**dict(stored)) if stored is not None else None
    return devices, api, _StoredPrivacy(allowed, coords, config)
