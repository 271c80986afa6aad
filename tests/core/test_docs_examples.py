"""The README's and docs' examples run against a hub started on config.example.yaml.

Every fenced `sh`/`bash` block of README.md and docs/*.md is run with bash (-e, pipefail)
against a real hub process serving HTTPS on a 10.x address inside the suite's private
network namespace; every YAML automation example (docs, and the commented one in
config.example.yaml) is checked by `uone-hub automations check` and accepted by the API.
A block that is not meant to run says so just above its fence:

    <!-- doc-test: skip: why -->      never run (installs packages, runs the suite...)
    <!-- doc-test: automation -->     a YAML list of automations to check
    <!-- doc-test: run -->            (optional) run it, as for an unmarked sh block

An unmarked YAML block is an error, so nothing is silently left out. The only rewriting is a
fixed table of substitutions (the hub's address, its state directory and config path, the
onboarding code), each of which must still match the docs; `sudo` and `uone-hub` are small
shims on PATH, and curl gets `--fail-with-body` so an HTTP error fails the block.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hub import tls
from hub.vault import CREDENTIAL_NAME

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = ROOT / "config.example.yaml"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```"
                    r"[ \t]*$", re.M | re.S)
_MARK = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<what>[a-z]+)\s*(?::\s*(?P<why>.*?))?\s*-->\s*$")
RUNNABLE = {"sh", "bash"}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    lang: str
    mark: str | None  # skip | run | automation | None
    why: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = [x for x in text[:m.start()].splitlines() if x.strip()]
            mark = _MARK.match(before[-1]) if before else None
            indent = len(m["indent"])
            body = "".join(x[indent:] if x[:indent].isspace() else x
                           for x in m["body"].splitlines(keepends=True))
            out.append(Block(path, line, m["lang"], mark["what"] if mark else None,
                             (mark["why"] or "") if mark else "", body))
    return out


def example_automations() -> list[dict]:
    """The commented example under `automations:` in config.example.yaml, uncommented."""
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("# ")
                 and "Example (tested against this file's devices)" in x)
    body = []
    for x in lines[start + 1:]:
        if not x.startswith("#   "):
            break
        body.append(x[2:])
    items = yaml.safe_load("\n".join(body))
    assert isinstance(items, list) and items, body
    return items


def test_every_block_is_runnable_or_marked() -> None:
    found = blocks()
    assert any(b.lang in RUNNABLE and b.mark != "skip" for b in found)
    for b in found:
        assert b.mark in (None, "skip", "run", "automation"), f"{b.where}: marker {b.mark!r}"
        if b.mark == "skip":
            assert b.why, f"{b.where}: say why the block is not run"
        if b.lang in ("yaml", "yml"):
            assert b.mark in ("skip", "automation"), \
                f"{b.where}: mark the YAML block (automation, or skip: why)"
        if b.mark in ("run", "automation"):
            assert b.lang in RUNNABLE | {"yaml"}, f"{b.where}: cannot run a {b.lang!r} block"


def test_unit_names_the_credential_the_vault_reads() -> None:
    unit = (ROOT / "systemd" / "uone-hub.service").read_text()
    names = re.findall(r"LoadCredential(?:Encrypted)?=([\w.-]+):", unit)
    assert names and set(names) == {CREDENTIAL_NAME}, names


# -- against a running hub ----------------------------------------------------------------


@dataclass
class RunningExample:
    url: str
    config: Path
    state: Path
    client: Path  # the client's directory: tls-cert.pem copied there
    env: dict[str, str]

    def substitutions(self) -> dict[str, str]:
        code = (self.state / "onboarding-code").read_text().strip()
        return {
            "https://uone-hub.local:8443": self.url,
            "https://192.168.1.20:8443": self.url,
            "CODE=ABCD-EFGH-IJKL-MNOP": f"CODE={code}",
            "/etc/uone-hub/config.yaml": str(self.config),
            "/var/lib/uone-hub": str(self.state),
        }

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.client,
                              env=self.env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub", *args, "-c", str(self.config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)


def _example_config(tmp: Path, host: str, port: int) -> Path:
    """config.example.yaml as shipped, but for its state directory, address and port, and
    a cloud section naming a broker password (what the docs' `vault set` stores)."""
    text = EXAMPLE.read_text()
    for old, new in (("data_dir: ./data", f"data_dir: {tmp / 'state'}"),
                     ("  host: 127.0.0.1", f"  host: {host}"),
                     ("  port: 8443", f"  port: {port}"),
                     ("  username: null", "  username: hub"),
                     ("  password_secret: null", "  password_secret: home_broker")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp / "etc" / "config.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def _shims(tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shims = {
        "uone-hub": f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m hub "$@"\n',
        "sudo": '#!/bin/sh\nexec "$@"\n',  # the suite runs as root already
        "curl": '#!/bin/sh\nexec /usr/bin/curl --fail-with-body "$@"\n',
    }
    for name, body in shims.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _wait_up(url: str, cert: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        if cert.exists():
            try:
                ctx = ssl.create_default_context(cafile=str(cert))
                with urllib.request.urlopen(url + "/api/health", context=ctx, timeout=5) as r:
                    if r.status == 200:
                        return
            except (OSError, ssl.SSLError):
                pass
        assert time.monotonic() < deadline, "hub did not come up:\n" + log.read_text()
        time.sleep(0.2)


def _wait_devices_stored(db: Path, count: int) -> None:
    """The example's devices are committed (storage.commit_interval, 5 s): what `automations
    check` reads them from."""
    import sqlite3

    deadline = time.monotonic() + 30
    while True:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            stored = conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0]
        finally:
            conn.close()
        if stored >= count:
            return
        assert time.monotonic() < deadline, f"{stored} of {count} devices stored"
        time.sleep(0.2)


@pytest.fixture
def example_hub(tmp_path: Path) -> Iterator[RunningExample]:
    if not os.environ.get("UONE_TEST_NETNS") or os.geteuid() != 0:
        print("SKIP reason: needs root inside the private namespace of scripts/test.sh")
        pytest.skip("needs root inside the private network namespace (run scripts/test.sh)")
    for tool in ("curl", "jq", "openssl", "bash"):
        assert subprocess.run(["which", tool], capture_output=True).returncode == 0, \
            f"{tool} is needed (scripts/test.sh installs it)"
    address = f"10.205.{os.getpid() % 250}.1"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        with socket.socket() as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
        config = _example_config(tmp_path, address, port)
        state = tmp_path / "state"
        log = tmp_path / "hub.log"
        proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "-c", str(config)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            url = f"https://{address}:{port}"
            _wait_up(url, state / tls.CERT_FILE, proc, log)
            _wait_devices_stored(state / "hub.db", 4)
            client = tmp_path / "client"
            client.mkdir()
            (client / "tls-cert.pem").write_bytes((state / tls.CERT_FILE).read_bytes())
            env = {**os.environ, "PATH": f"{_shims(tmp_path)}:{os.environ['PATH']}"}
            yield RunningExample(url, config, state, client, env)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            print(log.read_text()[-4000:])
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def test_docs_shell_examples_run_against_the_example_config(
        example_hub: RunningExample) -> None:
    subs = example_hub.substitutions()
    used: set[str] = set()
    ran = []
    for b in blocks():
        if b.lang not in RUNNABLE or b.mark == "skip":
            continue
        script = b.text
        for old, new in subs.items():
            if old in script:
                used.add(old)
                script = script.replace(old, new)
        r = example_hub.run(script)
        assert r.returncode == 0, f"{b.where} failed ({r.returncode}):\n{script}\n" \
                                  f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
        ran.append((b, r))
    assert set(subs) == used, f"substitutions no longer in the docs: {set(subs) - used}"

    readme = [r for b, r in ran if b.file.name == "README.md"]
    assert readme, "the README's API examples did not run"
    out = readme[0].stdout
    assert '"virtual.hall_light"' in out and '"on":true' in out.replace(" ", "")
    assert "olga" in out  # onboarding made the owner
    r = example_hub.cli("vault", "list")  # the docs' `vault set` stored the broker password
    assert r.returncode == 0 and "home_broker" in r.stdout and "cloud.password_secret" in r.stdout


def test_automation_examples_are_valid_against_the_example_config(
        example_hub: RunningExample) -> None:
    examples = [("config.example.yaml", example_automations())]
    examples += [(b.where, yaml.safe_load(b.text)) for b in blocks() if b.mark == "automation"]
    assert len(examples) >= 2
    automations_file = example_hub.config.parent / "automations.yaml"
    token = example_hub.cli("token", "create", "--user", "olga", "--name", "doc test")
    if token.returncode != 0:  # the shell examples (onboarding) did not run first
        r = example_hub.run("printf 'a long passphrase\\n' | uone-hub user add olga "
                            f"--role owner --password-stdin -c {example_hub.config}")
        assert r.returncode == 0, r.stderr
        token = example_hub.cli("token", "create", "--user", "olga", "--name", "doc test")
    assert token.returncode == 0, token.stderr
    ctx = ssl.create_default_context(cafile=str(example_hub.client / "tls-cert.pem"))
    for where, items in examples:
        automations_file.write_text(yaml.safe_dump(items, sort_keys=False))
        r = example_hub.cli("automations", "check")
        assert r.returncode == 0, f"{where}:\n{r.stdout}{r.stderr}"
        assert f"{len(items)} automations, 0 with problems; checked shape, devices" in r.stdout
        for item in items:  # the running hub takes each as it is, through the API
            req = urllib.request.Request(
                example_hub.url + "/api/automations", method="POST",
                data=json.dumps(item).encode(),
                headers={"Authorization": f"Bearer {token.stdout.strip()}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                assert resp.status in (200, 201), where
            req = urllib.request.Request(
                f"{example_hub.url}/api/automations/{item['id']}", method="DELETE",
                headers={"Authorization": f"Bearer {token.stdout.strip()}"})
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                assert resp.status in (200, 204), where
    automations_file.unlink()
