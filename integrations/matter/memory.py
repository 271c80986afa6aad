"""How much memory the Matter server uses, for health beside the hub's own RSS.

Under systemd the hub cannot see the server's process (the hub unit has
ProtectProc=invisible), but it can read the server unit's cgroup: `memory.current` under
/sys/fs/cgroup is world-readable and the hub unit's ProtectControlGroups only makes it
read-only. Elsewhere (tests, development) the server is the process listening on the
websocket's loopback port, found through /proc/net/tcp and the processes' socket inodes,
and its VmRSS is read. Otherwise the answer says why it is unknown. Blocking file reads:
call it in a thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CGROUP = Path("/sys/fs/cgroup/system.slice/uone-matter.service/memory.current")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def own_rss() -> int | None:
    """This process's resident memory in bytes (None where /proc has no answer)."""
    return _vm_rss(Path("/proc/self/status"))


def server_memory(url: str, cgroup: Path = DEFAULT_CGROUP) -> dict[str, Any]:
    """{"bytes": N, "source": ...} or {"bytes": None, "unknown": why}."""
    try:
        return {"bytes": int(cgroup.read_text().strip()),
                "source": f"cgroup {cgroup.parent.name} (memory.current: resident + cache)"}
    except FileNotFoundError:
        pass  # not under systemd (or the unit is not running): try the process
    except (OSError, ValueError) as exc:
        return {"bytes": None, "unknown": f"{cgroup} not readable ({exc.__class__.__name__})"}
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or parts.port is None:
        return {"bytes": None, "unknown": f"no {cgroup.parent.name} cgroup and the server "
                "is not on this machine's loopback"}
    pid = listening_pid(parts.port)
    if pid is None:
        return {"bytes": None, "unknown": f"no {cgroup.parent.name} cgroup and no visible "
                f"process listens on port {parts.port} (another user's process under "
                "ProtectProc?)"}
    rss = _vm_rss(Path(f"/proc/{pid}/status"))
    if rss is None:
        return {"bytes": None, "unknown": f"/proc/{pid}/status not readable"}
    return {"bytes": rss, "source": f"process {pid} (VmRSS)"}


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on `port` in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and \
                    int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    try:
        processes = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return None
    for pid in processes:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                if os.readlink(fd.path) in inodes:
                    return int(pid)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def _vm_rss(status: Path) -> int | None:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
