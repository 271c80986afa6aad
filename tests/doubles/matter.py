"""Matter test doubles: python-matter-server (the controller the hub talks to) and matter.js
devices (foreign device code), both pinned and cached under ~/.cache/uone-test/matter.

- The server runs in its own venv (it pins aiohttp, cryptography and zeroconf of its own and
  its `[server]` extra brings the CHIP SDK wheel), in the test's namespace, its websocket
  bound to loopback, with the Matter test PAA as its only trust anchor. It is started as the
  unit starts it: through `systemd/matter_server_offline.py`, which keeps it from fetching
  PAA roots and vendor names from the internet.
- Each device is `tests/matter/matter_device.mjs` under Node 20 in a device namespace joined
  to the hub's by a veth (IPv6 link-local is on by default, which is what Matter uses).
Building the venv takes about a minute, the npm install half that; both are cached, keyed on
the pinned versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

SERVER_VERSION = "7.0.1"
CACHE = Path(os.environ.get("UONE_TEST_CACHE") or Path.home() / ".cache" / "uone-test") / "matter"
DEVICES = Path(__file__).resolve().parents[1] / "matter"
DEVICE_SCRIPT = DEVICES / "matter_device.mjs"
# the matter.js devices' packages, pinned with their whole tree and integrity hashes
NPM_FILES = (DEVICES / "package.json", DEVICES / "package-lock.json")
NPM_PACKAGES: dict[str, str] = json.loads(NPM_FILES[0].read_text())["dependencies"]
# what systemd/uone-matter.service starts: the server's main without its downloads
OFFLINE_WRAPPER = Path(__file__).resolve().parents[2] / "systemd" / "matter_server_offline.py"
LIBNL = ("libnl-3.so.200", "libnl-route-3.so.200")  # the CHIP SDK wheel links them


def unavailable() -> str | None:
    """Why the Matter doubles cannot run here, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "needs Node 20 and npm (Debian nodejs)"
    if shutil.which("python3.11") is None:
        return "needs python3.11 for python-matter-server 7.0.1"
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    missing = [lib for lib in LIBNL if lib not in out]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install libnl-3-200 libnl-route-3-200)"
    return None


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def server_venv() -> Path:
    """The pinned python-matter-server venv (built once; concurrent runs wait on a lock)."""
    venv = CACHE / f"server-{SERVER_VERSION}"
    with _locked("server"):
        if not (venv / "bin" / "matter-server").exists():
            tmp = venv.with_name(venv.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["python3.11", "-m", "venv", str(tmp)], check=True)
            subprocess.run([str(tmp / "bin" / "pip"), "install", "-q",
                            f"python-matter-server[server]=={SERVER_VERSION}"], check=True)
            shutil.rmtree(venv, ignore_errors=True)
            tmp.rename(venv)
            # scripts carry the venv's path in their shebang: point them at the final place
            for script in (venv / "bin").iterdir():
                if script.is_file() and not script.is_symlink():
                    data = script.read_bytes()
                    if data.startswith(b"#!") and str(tmp).encode() in data:
                        script.write_bytes(data.replace(str(tmp).encode(), str(venv).encode()))
    return venv


def npm_dir() -> Path:
    """A directory with the pinned matter.js packages in node_modules and the device script.

    `npm ci` from tests/matter/package.json and its package-lock.json (exactly the locked
    tree, integrity-checked), cached under a name made of both files' hash; built by
    scripts/test.sh before the suite's namespace cuts the network off."""
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in NPM_FILES)).hexdigest()[:12]
    root = CACHE / f"npm-{digest}"
    with _locked("npm"):
        if not (root / "node_modules" / "@matter" / "main").exists():
            tmp = root.with_name(root.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for f in NPM_FILES:
                shutil.copyfile(f, tmp / f.name)
            subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund",
                            "--silent"], cwd=tmp, check=True)
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        # beside node_modules (node finds the packages there), named by its content: the
        # cache is shared by every checkout on the machine, whose scripts may differ
        target = root / device_script_name()
        if not target.exists():
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(DEVICE_SCRIPT, tmp)
            tmp.rename(target)
    return root


def device_script_name() -> str:
    """The device script's name in the npm cache: matter_device-<content hash>.mjs."""
    digest = hashlib.sha256(DEVICE_SCRIPT.read_bytes()).hexdigest()[:12]
    return f"{DEVICE_SCRIPT.stem}-{digest}.mjs"


def write_test_paa(npm: Path, directory: Path) -> list[Path]:
    """The Matter test PAAs that sign matter.js devices' DACs, as DER files in `directory`
    (the form the server's --paa-root-cert-dir takes). Read from @matter/protocol."""
    src = (npm / "node_modules" / "@matter" / "protocol" / "dist" / "esm" / "certificate" /
           "ChipPAAuthorities.js").read_text()
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    pattern = r'const (TestCert_PAA_\w+)_Cert = Bytes\.fromHex\(\s*"([0-9a-f]+)"'
    for name, hexder in re.findall(pattern, src):
        path = directory / f"{name}.der"
        path.write_bytes(bytes.fromhex(hexder))
        out.append(path)
    if not out:
        raise RuntimeError("no test PAA found in @matter/protocol")
    # without `.version` the plain server (offline=False) empties the directory and downloads
    (directory / ".version").write_text("1")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MatterServer:
    """python-matter-server as a process; `start`/`stop` may be repeated (a restart)."""

    def __init__(self, venv: Path, storage: Path, paa_dir: Path, port: int | None = None,
                 log: Path | None = None, offline: bool = True) -> None:
        self.venv, self.storage, self.paa_dir = venv, storage, paa_dir
        self.offline = offline  # False: the plain `matter-server` (it fetches at start)
        self.port = port or free_port()
        self.log = log or storage.with_suffix(".log")
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        log = await asyncio.to_thread(self._prepare)
        program = ([str(self.venv / "bin" / "python"), "-I", str(OFFLINE_WRAPPER)]
                   if self.offline else [str(self.venv / "bin" / "matter-server")])
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *program, "--storage-path", str(self.storage),
                "--port", str(self.port), "--listen-address", "127.0.0.1",
                "--paa-root-cert-dir", str(self.paa_dir), "--log-level", "info",
                stdout=log, stderr=log)
        finally:
            log.close()
        await self._wait_listening()

    def _prepare(self) -> Any:
        Path("/data").mkdir(exist_ok=True)  # the CHIP SDK writes /data/chip_factory.ini
        self.storage.mkdir(parents=True, exist_ok=True)
        return open(self.log, "ab")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def _wait_listening(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError(f"matter-server exited ({self.proc.returncode}); see "
                                   f"{self.log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                if loop.time() > deadline:
                    raise RuntimeError(f"matter-server did not listen; see {self.log}") from None
                await asyncio.sleep(0.2)


class MatterDevice:
    """One matter.js device process in a device namespace; its storage survives a restart."""

    def __init__(self, npm: Path, ns: str, kind: str, port: int, discriminator: int,
                 storage: Path, passcode: int = 20202021) -> None:
        self.npm, self.ns, self.kind, self.port = npm, ns, kind, port
        self.discriminator, self.passcode, self.storage = discriminator, passcode, storage
        self.proc: asyncio.subprocess.Process | None = None
        self.codes: dict[str, Any] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @property
    def manual_code(self) -> str:
        return str(self.codes["manual"])

    async def start(self) -> None:
        log = await asyncio.to_thread(self._prepare)
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self.proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, "node", str(self.npm / device_script_name()),
            self.kind, str(self.port), str(self.discriminator), str(self.passcode),
            cwd=self.npm, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env={**os.environ, "MATTER_STORAGE_PATH": str(self.storage),
                 "MATTER_LOG_LEVEL": "warn"})
        log.close()
        self._reader = asyncio.create_task(self._read())
        self.codes = await asyncio.wait_for(self._ready, 60)

    def _prepare(self) -> Any:
        self.storage.mkdir(parents=True, exist_ok=True)
        return open(self.storage.with_suffix(".log"), "ab")

    async def set(self, values: dict[str, Any]) -> None:
        """Change the device's own state (as a person pressing its button would)."""
        await self._ask({"set": values})

    async def get(self, behavior: str) -> dict[str, Any]:
        """The device's own state of one cluster (`colorControl`, `windowCovering`...)."""
        state: dict[str, Any] = (await self._ask({"get": behavior}))["state"]
        return state

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await asyncio.wait_for(self._replies.get(), 15)
        if "error" in reply:
            raise RuntimeError(f"device refused {request}: {reply['error']}")
        return reply

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg and self._ready is not None and not self._ready.done():
                self._ready.set_result(msg["ready"])
            elif "done" in msg or "error" in msg:
                self._replies.put_nowait(msg)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError(
                f"matter.js device exited; see {self.storage.with_suffix('.log')}"))


@contextlib.asynccontextmanager
async def running(*parts: MatterServer | MatterDevice) -> AsyncIterator[None]:
    """Start the parts in order, stop them in reverse (also on failure)."""
    started: list[MatterServer | MatterDevice] = []
    try:
        for part in parts:
            started.append(part)
            await part.start()
        yield
    finally:
        for part in reversed(started):
            with contextlib.suppress(Exception):
                await part.stop()


if __name__ == "__main__":  # build the caches ahead: python -m tests.doubles.matter
    why = unavailable()
    if why is not None:
        print(f"Matter test doubles not built: {why}", file=sys.stderr)
    else:
        print(server_venv(), npm_dir(), file=sys.stderr)
