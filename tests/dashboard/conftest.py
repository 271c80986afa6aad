"""A hub started by the test as its own process, and Debian's Chromium driven by Playwright.

The browser is Debian's (`/usr/bin/chromium`), never a downloaded one, started with every
background-networking feature off; a request listener fails the test if the page asks
anything of another origin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DEFAULT_VIRTUAL, free_port
from tests.doubles.bluez import fake_bluez  # noqa: F401 - fixture used by dashboard tests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--no-default-browser-check"]
PASSWORD = "correct horse battery staple"


@dataclass
class RunningHub:
    """A hub process on loopback with an owner account; talks to it like a LAN client."""

    proc: subprocess.Popen[bytes]
    port: int
    config: Path
    data: Path
    token: str = ""
    totp_secret: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                raw: bool = False) -> Any:
        headers = {"Content-Type": "application/json"}
        tok = self.token if token is None else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        req = urllib.request.Request(self.url + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = resp.read()
        if raw:
            return data
        return json.loads(data) if data else None

    def totp_code(self, ahead: float = 0.0) -> str:
        """The authenticator app's code; `ahead=30` gives the next one (one step of drift is
        accepted, and a code already used is refused as a replay)."""
        from cryptography.hazmat.primitives.hashes import SHA1
        from cryptography.hazmat.primitives.twofactor.totp import TOTP

        return TOTP(self.totp_secret, 6, SHA1(), 30, enforce_key_length=False).generate(
            time.time() + ahead).decode()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("hub exited during start")
        try:
            urllib.request.urlopen(url + "/api/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("hub did not answer")


def start_hub(tmp: Path, extra: dict[str, Any] | None = None, *,
              owner: bool = True) -> RunningHub:
    """Start a hub process; with `owner`, an owner account made with the CLI, signed in."""
    port = free_port()
    cfg: dict[str, Any] = {
        "data_dir": str(tmp / "data"),
        "api": {"host": "127.0.0.1", "port": port},
        "storage": {"commit_interval": 0.1},
        "discovery": {"mdns": {"enabled": False, "advertise": False}, "ble": {"enabled": False}},
        "integrations": {"virtual": {"devices": DEFAULT_VIRTUAL}},
    }
    for k, v in (extra or {}).items():
        cfg[k] = v
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    if owner:
        subprocess.run([sys.executable, "-m", "hub", "user", "add", "owner", "--role", "owner",
                        "--password-stdin", "-c", str(config)], cwd=ROOT,
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       timeout=60)
    log = open(tmp / "hub.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "-c", str(config)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=log)
    hub = RunningHub(proc, port, config, tmp / "data")
    _wait_http(hub.url, proc)
    if not owner:
        return hub
    session = hub.request("POST", "/api/auth/login", {"username": "owner", "password": PASSWORD},
                          token="")
    hub.token = session["access_token"]
    return hub


def enable_totp(hub: RunningHub) -> None:
    """Enrol the owner in two-step verification, as the API documents."""
    import base64
    from urllib.parse import parse_qs, urlparse

    uri = hub.request("POST", "/api/users/me/totp", {})["otpauth_uri"]
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    hub.totp_secret = base64.b32decode(secret + "=" * (-len(secret) % 8))
    hub.request("PUT", "/api/users/me/totp", {"code": hub.totp_code()})


def stop_hub(hub: RunningHub) -> None:
    if hub.proc.poll() is None:
        hub.proc.terminate()
        try:
            hub.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait()


@pytest.fixture
def running_hub(tmp_path: Path) -> Iterator[RunningHub]:
    hub = start_hub(tmp_path)
    try:
        yield hub
    finally:
        stop_hub(hub)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@dataclass
class PageWatch:
    """Everything a page did that a test must check: console errors, foreign requests."""

    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


async def open_page(browser: Any, hub: RunningHub, *, width: int = 1280, height: int = 800):
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        accept_downloads=True)
    page = await context.new_page()
    watch = PageWatch()
    origin = hub.url
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))

    def on_request(req: Any) -> None:
        watch.requests.append(req.url)
        if not (req.url.startswith(origin) or req.url.startswith(f"ws://127.0.0.1:{hub.port}")
                or req.url.startswith("blob:") or req.url.startswith("data:")):
            watch.foreign.append(req.url)

    page.on("request", on_request)
    return context, page, watch


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Any, hub: RunningHub, totp: bool = True, username: str = "owner",
                  password: str = PASSWORD) -> None:
    """Sign in on the page (the owner by default) and wait for Home."""
    await page.goto(hub.url + "/")
    await page.fill("#login-form input[name=username]", username)
    await page.fill("#login-form input[name=password]", password)
    if totp:
        # enrolment used this step's code: a replay would be refused, so use the next one
        await page.fill("#login-form input[name=totp]", hub.totp_code(ahead=30))
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("[data-device]")


async def new_automation_on_motion(page: Any, hub: RunningHub, automation_id: str) -> Any:
    """Open a new automation in the form with its id and the first trigger set to
    `virtual.motion` turning on; returns the form's locator."""
    await page.goto(hub.url + "/#/automations")
    await page.get_by_role("button", name="New automation").click()
    form = page.locator("#automation-form")
    await form.locator("input[name=id]").fill(automation_id)
    trig = form.locator('[data-list="triggers"] > li').first
    await trig.locator("select[name=device]").select_option("virtual.motion")
    await trig.locator("select[name=attribute]").select_option("on")
    await trig.locator("input[name=to]").fill("true")
    return form


def need_zbarimg() -> None:
    """Skip (saying why) where zbarimg, the QR reader the tests scan codes with, is missing."""
    if not shutil.which("zbarimg"):
        pytest.skip("zbarimg (zbar-tools) is not installed; scripts/test.sh installs it")


async def scan_qr(page: Any, selector: str, shot: Path) -> str:
    """What a phone's camera reads from the QR code at `selector`: zbarimg on its picture."""
    import asyncio

    from playwright.async_api import expect

    qr = page.locator(selector)
    await expect(qr).to_be_visible()
    await qr.screenshot(path=str(shot))
    scanned = await asyncio.to_thread(subprocess.run, ["zbarimg", "--raw", "-q", str(shot)],
                                      capture_output=True, text=True, timeout=30)
    return scanned.stdout.strip()
