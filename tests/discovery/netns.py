"""A private LAN for mDNS tests: a device namespace joined to ours by a veth pair.

Only usable when the test process itself runs in a private network namespace (as
scripts/test.sh does, as root): then nothing can reach a real interface. The device side
runs `tests.discovery.mdns_device` (real zeroconf) inside the device namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def unavailable() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (run: sudo sh scripts/test.sh)"
    if shutil.which("ip") is None:
        return "needs iproute2"
    try:
        own = os.stat("/proc/self/ns/net").st_ino
        suite_ns = os.environ.get("UONE_TEST_NETNS")
        if suite_ns:  # scripts/test.sh says which namespace it made: check we are in it
            if os.stat(f"/run/netns/{suite_ns}").st_ino == own:
                return None
            return f"not inside the suite's namespace {suite_ns}"
        if own == os.stat("/proc/1/ns/net").st_ino:
            return "must run inside a private network namespace (use scripts/test.sh)"
    except OSError as exc:
        return f"cannot check the network namespace (use scripts/test.sh): {exc}"
    return None


async def run(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {err.decode().strip()}")


@dataclass(frozen=True)
class Lan:
    hub_if: str
    hub_ip: str
    dev_ns: str
    dev_ip: str


@contextlib.asynccontextmanager
async def veth_lan(prefix: str = "disc", net: int = 77) -> AsyncIterator[Lan]:
    """A device namespace with 10.<net>.N.2, joined by veth to our 10.<net>.N.1; deleted
    after. `prefix` names the namespace (uone-<prefix>-...) and our end of the veth, so each
    area's tests have names of their own."""
    n = next(_counter)
    tag = f"{os.getpid() % 100000}{n}"
    subnet = (os.getpid() + n) % 250
    lan = Lan(f"v{prefix[:2]}{tag}"[:15], f"10.{net}.{subnet}.1", f"uone-{prefix}-{tag}",
              f"10.{net}.{subnet}.2")
    await run("ip", "netns", "add", lan.dev_ns)
    try:
        await run("ip", "link", "add", lan.hub_if, "type", "veth", "peer", "name", "vdev",
                  "netns", lan.dev_ns)
        try:
            await run("ip", "addr", "add", f"{lan.hub_ip}/24", "dev", lan.hub_if)
            await run("ip", "link", "set", lan.hub_if, "up")
            await run("ip", "-n", lan.dev_ns, "addr", "add", f"{lan.dev_ip}/24", "dev", "vdev")
            await run("ip", "-n", lan.dev_ns, "link", "set", "vdev", "up")
            await run("ip", "-n", lan.dev_ns, "link", "set", "lo", "up")
            yield lan
        finally:
            with contextlib.suppress(RuntimeError):
                await run("ip", "link", "del", lan.hub_if)
    finally:
        await run("ip", "netns", "del", lan.dev_ns)


class MdnsDevice:
    """The device process (real zeroconf) in the device namespace."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        if not line:
            raise RuntimeError("mDNS device process exited")
        return json.loads(line)


@contextlib.asynccontextmanager
async def mdns_device(ns: str | None, address: str) -> AsyncIterator[MdnsDevice]:
    """Start the device process (in namespace `ns`, or ours if None); stop it after."""
    argv = [sys.executable, "-m", "tests.discovery.mdns_device", address]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    device = MdnsDevice(proc)
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 15)
        if not ready:
            raise RuntimeError("mDNS device process did not start")
        yield device
    finally:
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await device.send(op="exit")
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
