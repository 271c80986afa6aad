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
                   commit_interval: float = 1.0, extra: dict[str, Any] | None = None,
                   integrations: dict[str, Any] | None = None) -> Path:
    """A config with `devices` virtual devices (switches and sensors alternating), plus
    `integrations` beside the virtual one."""
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
        "integrations": {"virtual": {"devices": devs}, **(integrations or {})},
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


def private_mib(pid: int) -> float:
    """Memory only this process holds (USS: private pages; RSS also counts the shared library
    pages other processes map too, which the kernel can drop and read back)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


# Where a process's resident pages are, by what maps them (rss_by_kind).
DISCOVERY_LIBS = ("/zeroconf/", "/dbus_fast/", "/bleak/", "/ifaddr/")


def rss_by_kind(pid: int) -> dict[str, float]:
    """RSS in MiB split by mapping: "objects" (anonymous memory and the malloc heap: Python
    objects, code objects, SQLite's cache), "discovery" (the compiled modules of zeroconf,
    dbus_fast and bleak), "python" (libpython and the standard library's extension modules),
    "libraries" (every other file: OpenSSL, cryptography, SQLite, aiohttp...)."""
    out = dict.fromkeys(("objects", "discovery", "python", "libraries"), 0.0)
    kind = "objects"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
            path = head[5] if len(head) > 5 else ""
            if not path.startswith("/"):
                kind = "objects"  # anonymous, [heap], [stack]...
            elif any(lib in path for lib in DISCOVERY_LIBS):
                kind = "discovery"
            elif "libpython" in path or "/lib-dynload/" in path:
                kind = "python"
            else:
                kind = "libraries"
        elif head[0] == "Rss:":
            out[kind] += int(head[1]) / 1024
    return out


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo_root()) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def in_private_netns() -> bool:
    """True inside the namespace `run_in_private_netns` (or the test runner) made."""
    ns = os.environ.get("UONE_TEST_NETNS") or os.environ.get("UONE_BENCH_NETNS")
    if not ns:
        return False
    try:
        return os.stat(f"/run/netns/{ns}").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False


def run_in_private_netns(module: str, args: list[str], *, veth: bool = False) -> int:
    """Run `python -m module args` again inside a fresh network namespace with `lo` up (and,
    with `veth`, a veth pair on 10.77.0.0/24, so mDNS has an interface as on a LAN): nothing
    reaches a real interface. Needs root and iproute2; returns the exit code."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("needs root and iproute2: it runs itself in a private network namespace")
        return 2
    ns = f"uone-bench-{module.rsplit('.', 1)[-1]}-{os.getpid()}"
    setup = [["ip", "link", "set", "lo", "up"]]
    if veth:
        setup += [["ip", "link", "add", "ubench0", "type", "veth", "peer", "name", "ubench1"],
                  ["ip", "addr", "add", "10.77.0.1/24", "dev", "ubench0"],
                  ["ip", "addr", "add", "10.77.0.2/24", "dev", "ubench1"],
                  ["ip", "link", "set", "ubench0", "up"], ["ip", "link", "set", "ubench1", "up"]]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in setup:
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True)
        env = {**os.environ, "UONE_BENCH_NETNS": ns, "PYTHONPATH": str(repo_root())}
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", module, *args],
                              cwd=repo_root(), env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
