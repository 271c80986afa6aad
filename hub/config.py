"""The hub's configuration: typed sections read from one YAML file.

Everything is checked before anything starts; `load_config` raises ConfigError listing every
problem with file:line:column, key path and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.auth.config import AuthConfig
from hub.automation.config import AutomationConfig
from hub.cloud.config import CloudConfig
from hub.configtypes import decode_into, json_schema, option
from hub.discovery.config import DiscoveryConfig
from hub.errors import ConfigError, ConfigProblem
from hub.homekit.config import HomekitBridgeConfig
from hub.manifests import Manifest, read_manifests, validate_against
from hub.privacy.config import PrivacyConfig
from hub.provisioning.config import ProvisioningConfig
from hub.yamlsource import Document, load_file


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The local HTTP API. HTTPS by default on anything but loopback."""

    host: str = option("127.0.0.1", doc="Address to listen on (0.0.0.0 for the whole LAN).")
    port: int = option(8443, doc="TCP port of the API (0: any free port).", min=0, max=65535)
    insecure_http: bool = option(
        False, doc="Serve plain HTTP on a non-loopback address (logs a warning at every start)."
    )
    tls_cert: str | None = option(None, doc="PEM certificate; default: a self-signed one.")
    tls_key: str | None = option(None, doc="PEM private key for tls_cert.")
    max_body_bytes: int = option(
        1 << 20, doc="Largest request body accepted, bytes.", min=1024, max=64 << 20
    )
    idle_timeout: float = option(
        30.0, doc="Seconds a connection may sit idle (before its first request, between "
        "requests, or sending its headers) before the hub closes it.", min=1.0, max=3600.0
    )
    body_timeout: float = option(
        30.0, doc="Seconds a client may take to send a request body.", min=1.0, max=3600.0
    )
    max_connections_per_address: int = option(
        32, doc="Open connections one client address may hold; more are refused (503) while "
        "other addresses still get through.", min=1, max=10_000
    )

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")


@dataclass(frozen=True, slots=True)
class LocationConfig:
    """Where the home is. Coordinates are personal data (see privacy consent)."""

    time_zone: str = option("UTC", doc="IANA time zone, e.g. Europe/Berlin.")
    latitude: float | None = option(None, doc="Latitude, degrees.", min=-90, max=90)
    longitude: float | None = option(None, doc="Longitude, degrees.", min=-180, max=180)
    elevation: float = option(0.0, doc="Elevation, metres.")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The SQLite database and its batching writer (SD cards wear out)."""

    commit_interval: float = option(
        5.0, doc="Seconds between batched commits of history (fewer commits, less SD wear).",
        min=0.0, max=60.0,
    )
    max_batch: int = option(
        10_000, doc="Commit early when this many rows are pending.", min=1
    )
    state_snapshot_interval: float = option(
        300.0, doc="Seconds between snapshots of current values (history has every change; "
        "after a crash the newest values are replayed from it), and between moves of newly "
        "recorded history into the indexed table (fewer index pages written: SD wear).",
        min=1.0
    )
    synchronous: Literal["normal", "full"] = option(
        "normal", doc="SQLite synchronous mode; normal is safe against crashes in WAL mode."
    )
    integrity_check_seconds: float = option(
        30.0, doc="Time budget of the database check (PRAGMA quick_check) at every start; a "
        "damaged database stops the start. A file too large to check in time is checked "
        "that far and the start goes on with a warning. 0 turns the check off.",
        min=0.0, max=3600.0,
    )


@dataclass(frozen=True, slots=True)
class BusConfig:
    """The in-process event bus."""

    queue_size: int = option(
        2_000, doc="Events buffered per slow subscriber before it starts dropping.", min=1
    )


@dataclass(frozen=True, slots=True)
class Config:
    """Uone Hub configuration."""

    data_dir: str = option("./data", doc="State directory; $STATE_DIRECTORY wins under systemd.")
    log_level: Literal["debug", "info", "warning", "error"] = option("info", doc="Log level.")
    api: ApiConfig = option(factory=ApiConfig)
    location: LocationConfig = option(factory=LocationConfig)
    storage: StorageConfig = option(factory=StorageConfig)
    bus: BusConfig = option(factory=BusConfig)
    auth: AuthConfig = option(factory=AuthConfig)
    discovery: DiscoveryConfig = option(factory=DiscoveryConfig)
    automation: AutomationConfig = option(factory=AutomationConfig)
    provisioning: ProvisioningConfig = option(factory=ProvisioningConfig)
    privacy: PrivacyConfig = option(factory=PrivacyConfig)
    cloud: CloudConfig = option(factory=CloudConfig)
    homekit_bridge: HomekitBridgeConfig = option(factory=HomekitBridgeConfig)
    integrations: dict[str, Any] = option(
        factory=dict, doc="Integrations to load, by name, each with its own settings."
    )
    automations: list[Any] = option(
        factory=list, doc="Automations defined in YAML (read-only through the API)."
    )


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with where it came from."""

    config: Config
    path: Path
    document: Document
    manifests: dict[str, Manifest]

    @property
    def state_dir(self) -> Path:
        """$STATE_DIRECTORY (systemd) wins over data_dir, relative to the config file."""
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        p = Path(self.config.data_dir)
        return p if p.is_absolute() else (self.path.parent / p)


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read, check and type the config file; raise ConfigError with every problem."""
    doc = load_file(path, strict=False)
    problems: list[ConfigProblem] = list(doc.problems)
    if not isinstance(doc.value, dict):
        raise ConfigError([doc.problem((), "the config must be a mapping")])
    config = decode_into(Config, doc.value, (), doc, problems)
    manifests = read_manifests()
    integrations = doc.value.get("integrations") or {}
    if isinstance(integrations, dict):
        for name, settings in integrations.items():
            manifest = manifests.get(name)
            if manifest is None:
                known = ", ".join(sorted(manifests)) or "none"
                problems.append(
                    doc.problem(("integrations", name), f"unknown integration (known: {known})")
                )
                continue
            validate_against(manifest.config_schema, settings, ("integrations", name), doc,
                             problems)
    if config is not None:
        problems.extend(_value_problems(config, doc, manifests))
    if problems or config is None:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ConfigError(problems)
    return LoadedConfig(config, Path(path).resolve(), doc, manifests)


def _value_problems(config: Config, doc: Document,
                    manifests: dict[str, Manifest]) -> list[ConfigProblem]:
    """Values whose type is right but whose meaning is checked against the system: found
    here, so that `check-config` reports them rather than the hub at its next start."""
    from hub.privacy.consent import PURPOSES

    problems = []
    zone = config.location.time_zone
    try:
        if isinstance(zone, str):  # else already reported (e.g. an unset !env)
            ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(doc.problem(("location", "time_zone"),
                                    f"unknown time zone {zone!r} (an IANA name such as "
                                    "Europe/Berlin; `timedatectl list-timezones` lists them)"))
    for purpose in config.privacy.terms_changed:
        if purpose not in PURPOSES:
            problems.append(doc.problem(("privacy", "terms_changed", purpose),
                                        f"unknown purpose (known: {', '.join(PURPOSES)})"))
    for i, name in enumerate(config.discovery.auto_adopt):
        if name not in manifests:
            problems.append(doc.problem(("discovery", "auto_adopt", i),
                                        f"unknown integration {name!r} (known: "
                                        f"{', '.join(sorted(manifests)) or 'none'})"))
    return problems


def config_schema() -> dict[str, Any]:
    """JSON Schema of the whole config file, integrations' settings included."""
    schema = json_schema(Config)
    props = {name: m.config_schema for name, m in sorted(read_manifests().items())}
    schema["properties"]["integrations"] = {
        "type": "object",
        "description": "Integrations to load, by name, each with its own settings.",
        "properties": props,
        "additionalProperties": False,
    }
    return schema
