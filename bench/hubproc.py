"""A hub in a process of its own for the benchmarks, so the CPU and memory measured are the
hub's alone, driven over stdin/stdout: one JSON command a line, one JSON answer a line.

The benchmark runs `python -m <its module> _serve <args>`; that entry calls `serve()` with
what answers its commands, and the benchmark talks to it through `HubProcess`.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import env_with_repo, repo_root, rss_mib

if TYPE_CHECKING:
    from hub.hub import Hub


class HubProcess:
    """The benchmark's side: starts the hub, reads its port and an owner's token."""

    def __init__(self, module: str, *args: str | Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "_serve", *map(str, args)], cwd=repo_root(),
            env=env_with_repo(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.port, self.token = info["port"], info["token"]
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def ask(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout)


async def serve(config: str, answer: Callable[[Hub, dict[str, Any]], Any], *,
                freeze: bool = False, cleanup: Callable[[], None] | None = None) -> None:
    """The hub's side: a Hub with the API, an owner and a token (printed with the port),
    then `answer(hub, command)` for every command line until stdin closes. `freeze` moves
    the start-up objects out of the collector's sight, as hub.daemon does once started;
    `cleanup` runs before the API and the hub stop."""
    import gc

    from hub.api.server import ApiServer
    from hub.auth.principal import Role
    from hub.config import load_config
    from hub.hub import Hub

    async with Hub(load_config(config)) as hub:
        owner = await hub.auth.create_user("bench", "bench password", Role.OWNER)
        token, _ = await hub.auth.create_token(owner.id, "bench")
        async with ApiServer(hub) as server:
            if freeze:
                gc.collect()
                gc.freeze()
            print(json.dumps({"port": server.port, "token": token}), flush=True)
            loop = asyncio.get_running_loop()
            try:
                while line := await loop.run_in_executor(None, sys.stdin.readline):
                    print(json.dumps(answer(hub, json.loads(line))), flush=True)
            finally:
                if cleanup is not None:
                    cleanup()


def cpu_seconds() -> float:
    """CPU time of this process so far (user and kernel)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
