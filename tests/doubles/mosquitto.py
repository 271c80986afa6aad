"""A real mosquitto broker on loopback for tests: TLS with a throwaway test CA, password auth.

`make_pki(dir)` writes a CA, a server certificate for 127.0.0.1/localhost and a second,
unrelated CA (for "wrong CA" tests). `Mosquitto(dir, pki, users)` writes a config on free
ports and starts the broker; `stop()`/`start()` restart it on the same ports (persistence on,
so a graceful stop keeps sessions and queued messages, like a real broker's restart).
Only the process this object started is ever signalled. See shared test-doubles §3.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def available() -> str | None:
    """None if mosquitto and openssl can be used here, else why not."""
    for tool in (MOSQUITTO, MOSQUITTO_PASSWD, shutil.which("openssl")):
        if not tool or not os.path.exists(tool):
            return "mosquitto/openssl not installed (scripts/test.sh installs them as root)"
    return None


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path
    client_cert: Path  # CN=uone-hub, signed by `ca` (for mutual TLS)
    client_key: Path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=uone-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other-ca",
        "-keyout", "other.key", "-out", "other.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=uone-hub",
        "-keyout", "client.key", "-out", "client.csr")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.crt")
    for key in ("server.key", "client.key", "ca.key", "other.key"):
        os.chmod(directory / key, 0o600)
    return Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key",
               directory / "other.crt", directory / "client.crt", directory / "client.key")


@pytest.fixture(scope="session")
def mosquitto_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA and certificates for the whole session (skips without mosquitto/openssl);
    import it into a conftest to use it."""
    reason = available()
    if reason:
        pytest.skip(reason)
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, mosquitto_pki: Pki, mosquitto_users: dict[str, str]
           ) -> Iterator[Mosquitto]:
    """A broker for one test; the conftest that imports it defines `mosquitto_users`."""
    b = Mosquitto(tmp_path / "broker", mosquitto_pki, mosquitto_users)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class PortTaken(RuntimeError):
    """mosquitto could not bind one of its ports."""


class Mosquitto:
    """One broker process: TLS + password listener (`port`), a mutual-TLS one (`mtls_port`,
    the client certificate's CN is the username) and a plain loopback one (`plain_port`)."""

    def __init__(self, directory: Path, pki: Pki, users: dict[str, str]) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.users = users
        self.port = free_port()
        self.plain_port = free_port()
        self.mtls_port = free_port()
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        passwd = self.dir / "passwd"
        first = True
        for user, password in users.items():
            flags = ["-c", "-b"] if first else ["-b"]
            subprocess.run([MOSQUITTO_PASSWD, *flags, str(passwd), user, password], check=True,
                           capture_output=True)
            first = False
        os.chmod(passwd, 0o600)
        (self.dir / "data").mkdir(exist_ok=True)
        self.started_once = False
        self.conf = self.dir / "mosquitto.conf"
        self._write_conf()

    def _write_conf(self) -> None:
        passwd, pki = self.dir / "passwd", self.pki
        self.conf.write_text(
            "user root\n"
            "per_listener_settings true\n"
            "persistence true\n"
            f"persistence_location {self.dir / 'data'}/\n"
            "log_dest stderr\n"
            "log_type all\n"
            "max_queued_messages 100000\n"
            f"listener {self.plain_port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"cafile {pki.ca}\n"
            f"certfile {pki.server_cert}\n"
            f"keyfile {pki.server_key}\n"
            f"listener {self.mtls_port} 127.0.0.1\n"
            "allow_anonymous false\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            f"cafile {pki.ca}\n"
            f"certfile {pki.server_cert}\n"
            f"keyfile {pki.server_key}\n"
        )

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        assert self.proc is None, "already running"
        try:
            self._start(timeout)
        except PortTaken:
            if self.started_once:
                raise
            # first start only: take other ports (a restart must keep its ports)
            self.port, self.plain_port, self.mtls_port = free_port(), free_port(), free_port()
            self._write_conf()
            self._start(timeout)
        self.started_once = True

    def _start(self, timeout: float) -> None:
        seen = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                text = self.log.read_bytes()[seen:].decode(errors="replace")[-2000:]
                if "Address already in use" in text:
                    raise PortTaken(text)
                raise RuntimeError(f"mosquitto exited: {text}")
            try:
                # probe the plain listener: a probe of the TLS one would show in its counts
                with socket.create_connection(("127.0.0.1", self.plain_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def connections(self) -> int:
        """How many TCP connections the TLS listeners have seen (from the broker's log)."""
        ports = {f"on port {self.port}.", f"on port {self.mtls_port}."}
        return sum(1 for line in self.log_text().splitlines()
                   if "New connection from" in line and any(p in line for p in ports))
