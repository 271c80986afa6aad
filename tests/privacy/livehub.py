"""A real hub process on loopback for tests that change data while it runs: start, stop,
sign in through onboarding, call the API and the CLI, read the database file directly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
OWNER, PASSWORD = "olga", "a long passphrase"


class LiveHub:
    """`python -m hub run` in its own process (plain HTTP on 127.0.0.1)."""

    def __init__(self, tmp_path: Path, extra: dict[str, Any] | None = None) -> None:
        self.config = write_config(tmp_path, {"api": {"port": free_port()}, **(extra or {})})
        cfg = yaml.safe_load(self.config.read_text())
        self.base = f"http://127.0.0.1:{cfg['api']['port']}"
        self.state = Path(cfg["data_dir"])
        self.db = self.state / "hub.db"
        self.log = tmp_path / "hub.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.token: str | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "run", "-c", str(self.config), cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL, stderr=self.log.open("ab"))
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        for _ in range(600):
            assert self.proc.returncode is None, self.log.read_text()
            try:
                async with self.session.get(self.base + "/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the hub did not come up:\n" + self.log.read_text())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
            assert self.proc.returncode == 0, self.log.read_text()
        self.proc = None

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            if self.session is not None:
                await self.session.close()
                self.session = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
        if self.token is not None:
            await self.sign_in()

    async def onboard(self) -> None:
        code = (self.state / "onboarding-code").read_text().strip()
        status, body = await self.call("POST", "/api/onboarding", {
            "code": code, "username": OWNER, "password": PASSWORD}, auth=False)
        assert status == 201, body
        self.token = body["access_token"]

    async def sign_in(self, username: str = OWNER, password: str = PASSWORD) -> str:
        status, body = await self.call("POST", "/api/auth/login", {
            "username": username, "password": password}, auth=False)
        assert status == 200, body
        if username == OWNER:
            self.token = body["access_token"]
        return str(body["access_token"])

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                   token: str | None = None) -> tuple[int, Any]:
        assert self.session is not None
        headers = {}
        if auth or token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        async with self.session.request(method, self.base + path, json=body,
                                        headers=headers) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.read()

    async def cli(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", *args, "-c", str(self.config), cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None),
                                        120)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database file as another process would (WAL: sees what is committed)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    def count(self, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> int:
        return int(self.rows(f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0])
