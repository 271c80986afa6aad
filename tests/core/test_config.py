"""Config: typed sections, every problem reported at once with file:line:column and key path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from hub.config import config_schema, load_config
from hub.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_example_config_loads_and_matches_schema() -> None:
    loaded = load_config(ROOT / "config.example.yaml")
    assert loaded.config.api.port == 8443 and loaded.config.location.time_zone == "UTC"
    assert "virtual" in loaded.config.integrations
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((ROOT / "config.example.yaml").read_text()), schema)


def test_every_problem_is_reported_with_location(tmp_path: Path) -> None:
    problems = _problems(tmp_path, (
        "api:\n"
        "  port: 70000\n"
        "  host: 1\n"
        "  bogus: 2\n"
        "storage:\n"
        "  commit_interval: fast\n"
        "  commit_interval: 2\n"
        "integrations:\n"
        "  virtual:\n"
        "    devices:\n"
        "      - {id: A, kind: lamp}\n"
        "  nope: {}\n"
    ))
    f = str(tmp_path / "c.yaml")
    assert f"{f}:2:9: api.port: must be <= 65535, got 70000" in problems
    assert f"{f}:3:9: api.host: expected a string, got int 1" in problems
    assert any(p.startswith(f"{f}:4:") and "api.bogus: unknown key" in p for p in problems)
    assert f"{f}:6:20: storage.commit_interval: expected a number, got str 'fast'" in problems
    assert any(p.startswith(f"{f}:7:3: storage.commit_interval: duplicate key") for p in problems)
    assert any("integrations.virtual.devices[0].id: must match" in p for p in problems)
    assert any("integrations.virtual.devices[0].kind: expected one of" in p for p in problems)
    assert any("integrations.nope: unknown integration" in p for p in problems)
    assert len(problems) == 8


def test_env_tag_reads_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UONE_TEST_TZ", "Europe/Berlin")
    path = tmp_path / "c.yaml"
    path.write_text("location:\n  time_zone: !env UONE_TEST_TZ\n")
    assert load_config(path).config.location.time_zone == "Europe/Berlin"
    monkeypatch.delenv("UONE_TEST_TZ")
    problems = _problems(tmp_path, "location:\n  time_zone: !env UONE_TEST_TZ\n")
    assert problems == [f"{path}:2:14: location.time_zone: environment variable UONE_TEST_TZ "
                        "is not set"]


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "api:\n  port: [1, 2\n")
    assert len(problems) == 1 and "YAML syntax" in problems[0]
    assert problems[0].startswith(str(tmp_path / "c.yaml") + ":")


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    cfg = load_config(path).config
    assert cfg.api.host == "127.0.0.1" and cfg.integrations == {}


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, input=stdin)


def test_cli_exit_codes_and_help(tmp_path: Path) -> None:
    ok = _cli("check-config", str(ROOT / "config.example.yaml"))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("api: {port: -1}\n")
    res = _cli("check-config", str(bad))
    assert res.returncode == 2 and f"{bad}:1:13: api.port: must be >= 0" in res.stderr
    assert _cli("run").returncode == 2  # missing -c
    assert _cli("frobnicate").returncode == 2
    for sub in ("run", "check-config", "config-schema", "version"):
        res = _cli(sub, "--help")
        assert res.returncode == 0 and "usage: uone-hub" in res.stdout, sub
    ver = _cli("version")
    assert ver.returncode == 0 and ver.stdout.strip()
    schema = json.loads(_cli("config-schema").stdout)
    assert schema["properties"]["api"]["properties"]["port"]["maximum"] == 65535
    assert "virtual" in schema["properties"]["integrations"]["properties"]


def test_run_with_bad_config_exits_2_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"data_dir: {tmp_path / 'data'}\nstorage: {{commit_interval: -5}}\n")
    res = _cli("run", "-c", str(bad))
    assert res.returncode == 2 and "storage.commit_interval" in res.stderr
    assert not (tmp_path / "data").exists()
