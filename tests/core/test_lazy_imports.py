"""What the running hub does not import: modules only a command, an export, an erasure, a
backup or a compressed device list uses are loaded on that use, so the daemon's memory
(bench.core: RSS after start) does not carry them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.core.test_daemon import ROOT, _config

# Loaded by `uone-hub run` before they are needed, they would stay for the process's life.
NOT_AT_RUN = (
    "hub.auth.cli", "hub.automation.cli", "hub.privacy.cli", "hub.vault_cli",  # subcommands
    "getpass",  # asks for passwords in those subcommands
    "hub.privacy.export", "hub.privacy.erase", "hub.privacy.backup",  # on request only
    "gzip",  # the first gzip-accepting GET /api/devices
)

_RUN = """
import atexit, sys
from hub import cli
atexit.register(lambda: open(sys.argv[2], "w").write("\\n".join(sorted(sys.modules))))
sys.exit(cli.main(["run", "--loop", "asyncio", "-c", sys.argv[1]]))
"""


def test_the_running_hub_leaves_on_use_modules_unloaded(tmp_path: Path) -> None:
    config, port = _config(tmp_path)
    modules = tmp_path / "modules.txt"
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(config), str(modules)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    loaded = set(modules.read_text().split())
    assert "hub.api.routes.devices" in loaded and "hub.privacy.center" in loaded  # it ran
    assert sorted(set(NOT_AT_RUN) & loaded) == []


def test_bleak_waits_for_a_bluetooth_adapter(tmp_path: Path) -> None:
    """BLE on, a BLE integration configured, no BlueZ: the hub probes the system bus (and
    keeps probing: tests/discovery/test_ble_recovery.py has an adapter appear later) but
    loads bleak only once an adapter is there."""
    config, port = _config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["discovery"]["ble"] = {"enabled": True, "restart_min": 0.1, "restart_max": 0.2}
    cfg["integrations"]["bthome"] = {}
    config.write_text(yaml.safe_dump(cfg))
    modules = tmp_path / "modules.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(config), str(modules)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(port, proc)
        for _ in range(600):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                ble = json.loads(r.read())["discovery"]["ble"]
            if ble["state"] == "unavailable":
                break
            time.sleep(0.05)
        assert ble["state"] == "unavailable" and "D-Bus" in ble["reason"], ble
        time.sleep(0.5)  # a few more probes
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    loaded = set(modules.read_text().split())
    assert "dbus_fast.aio" in loaded  # it probed
    assert sorted(m for m in loaded if m == "bleak" or m.startswith("bleak.")) == []


def test_the_commands_are_there_for_every_other_subcommand() -> None:
    """`run` alone skips the subcommand modules; the full command line still has them."""
    out = subprocess.run(
        [sys.executable, "-m", "hub", "--help"], cwd=ROOT, capture_output=True, text=True,
        check=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for command in ("user", "token", "export", "automations", "vault"):
        assert f"    {command}" in out.stdout, out.stdout


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], scheme: str = "http",
                  context: Any = None) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"the hub exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/api/health", timeout=2,
                                        context=context):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the hub did not answer /api/health")


def test_a_tls_hub_signs_in_without_cryptography(tmp_path: Path) -> None:
    """cryptography brings its own OpenSSL (+8 MiB of RSS): the first start issues the
    certificate with it; later starts check the certificate from tls-cert.json, and a sign-in
    hashes with the standard library's scrypt, so it stays unloaded."""
    import ssl

    config, port = _config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["api"]["host"] = "0.0.0.0"  # not loopback: TLS with the self-signed certificate
    config.write_text(yaml.safe_dump(cfg))
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE

    def run(modules: Path, signin: bool) -> set[str]:
        proc = subprocess.Popen([sys.executable, "-c", _RUN, str(config), str(modules)],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(port, proc, scheme="https", context=insecure)
            if signin:
                body = json.dumps({"username": "ann", "password": "a long test password"})
                req = urllib.request.Request(
                    f"https://127.0.0.1:{port}/api/auth/login", data=body.encode(),
                    headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(req, timeout=10, context=insecure) as r:
                    assert r.status == 200 and json.loads(r.read())["access_token"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        return set(modules.read_text().split())

    first = run(tmp_path / "first.txt", signin=False)
    assert "cryptography" in first  # it issued the certificate
    assert (tmp_path / "data" / "tls-cert.json").exists()
    subprocess.run([sys.executable, "-m", "hub", "user", "add", "ann", "--role", "owner",
                    "--password-stdin", "-c", str(config)], input="a long test password\n",
                   cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    second = run(tmp_path / "second.txt", signin=True)
    assert "hub.auth.passwords" in second  # it signed in
    assert sorted(m for m in second if m.split(".")[0] == "cryptography") == []
