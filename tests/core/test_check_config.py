"""`check-config` reports what the hub used to find only at start: time zones, names of
purposes and integrations, and the files the config points at, each with file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import load_config
from hub.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _example(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "config.example.yaml").read_text()
    assert old in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _at(path: Path, needle: str) -> str:
    """file:line:column where `needle` starts (the value a problem is reported at)."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"{path}:{i}:{line.index(needle) + 1}"
    raise AssertionError(needle)


def test_unknown_time_zone_is_a_located_config_error(tmp_path: Path) -> None:
    path = _example(tmp_path, "time_zone: UTC", "time_zone: Mars/Olympus")
    r = _check(path)
    assert r.returncode == 2, r.stdout
    assert f"{_at(path, 'Mars/')}: location.time_zone: unknown time zone 'Mars/Olympus'" in r.stderr
    with pytest.raises(ConfigError):  # and the hub refuses to start on it, not UTC silently
        load_config(path)
    ok = _example(tmp_path, "time_zone: UTC", "time_zone: Europe/Berlin")
    assert _check(ok).returncode == 0


def test_names_checked_at_start_are_checked_by_check_config(tmp_path: Path) -> None:
    path = _example(tmp_path, "  auto_adopt: []", "  auto_adopt: [bthome, zigbee]")
    text = path.read_text().replace("  terms_changed: {}", "  terms_changed: {telemetry: 2}")
    path.write_text(text)
    r = _check(path)
    assert r.returncode == 2
    assert (f"{_at(path, 'zigbee')}: discovery.auto_adopt[1]: "
            "unknown integration 'zigbee'") in r.stderr
    assert f"{_at(path, '2}')}: privacy.terms_changed.telemetry: unknown purpose" in r.stderr


def test_tls_files_are_read_by_check_config(tmp_path: Path) -> None:
    from hub import tls

    alone = _example(tmp_path, "  tls_key: null", "  tls_key: null\n")
    alone.write_text(alone.read_text().replace("  tls_cert: null", "  tls_cert: /nope.pem"))
    r = _check(alone)
    assert r.returncode == 2 and "api: tls_cert and tls_key go together" in r.stderr

    a, b = tmp_path / "a", tmp_path / "b"
    cert_a, _key_a = tls.ensure_self_signed(a, "a")
    _cert_b, key_b = tls.ensure_self_signed(b, "b")
    path = _example(tmp_path, "  tls_cert: null", f"  tls_cert: {cert_a}")
    path.write_text(path.read_text().replace("  tls_key: null", f"  tls_key: {key_b}"))
    r = _check(path)
    assert r.returncode == 2
    assert f"{_at(path, str(cert_a))}: api.tls_cert: {cert_a} with {key_b}" in r.stderr
    assert "KEY_VALUES_MISMATCH" in r.stderr

    path.write_text(path.read_text().replace(f"tls_key: {key_b}", "tls_key: /gone/key.pem"))
    r = _check(path)
    assert r.returncode == 2 and "api.tls_key: /gone/key.pem: no such file" in r.stderr


def test_trust_anchors_and_broker_ca_are_read_by_check_config(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello\n")
    path = _example(tmp_path, "  trust_anchors: []", f"  trust_anchors: [{bad}]")
    path.write_text(path.read_text().replace("  ca_file: null", "  ca_file: /gone/ca.pem"))
    r = _check(path)
    assert r.returncode == 2
    assert f"{_at(path, str(bad))}: provisioning.trust_anchors[0]: {bad}" in r.stderr
    assert f"{_at(path, '/gone/ca.pem')}: cloud.ca_file: /gone/ca.pem" in r.stderr
    assert r.stderr.count("\n") == 3  # the heading and one line per problem, no traceback
