"""Small helpers shared by the benchmarks: tables, percentiles, configs, RSS."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import yaml


def table(title: str, rows: list[tuple[str, str, str]]) -> str:
    """A plain-text table: metric, value, target/reference."""
    widths = [max(len(r[i]) for r in [("metric", "value", "target"), *rows]) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [title, line]
    for r in [("metric", "value", "target"), *rows]:
        out.append("|".join(f" {c:<{w}} " for c, w in zip(r, widths, strict=True)))
        if r[0] == "metric":
            out.append(line)
    out.append(line)
    return "\n".join(out)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def virtual_config(tmp: Path, devices: int, *, port: int = 0, automations: list[Any] | None = None,
                   commit_interval: float = 1.0, extra: dict[str, Any] | None = None) -> Path:
    """A config with `devices` virtual devices (switches and sensors alternating)."""
    devs = [
        {"id": f"d{i}", "name": f"Device {i}", "kind": "switch" if i % 2 == 0 else "sensor",
         "area": f"room{i % 20}"}
        for i in range(devices)
    ]
    cfg: dict[str, Any] = {
        "data_dir": str(tmp / "data"),
        "log_level": "warning",
        # the load generator opens up to 50 connections from one address (the default
        # api.max_connections_per_address is 32)
        "api": {"host": "127.0.0.1", "port": port or free_port(),
                "max_connections_per_address": 256},
        "storage": {"commit_interval": commit_interval},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": devs}},
        "automations": automations or [],
    }
    for k, v in (extra or {}).items():
        cfg[k] = v
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo_root()) + os.pathsep + env.get("PYTHONPATH", "")
    return env
