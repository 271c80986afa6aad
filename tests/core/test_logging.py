"""Logs are journald-friendly and never carry a credential."""

from __future__ import annotations

import logging

import pytest

from hub.logsetup import scrub, setup_logging


@pytest.mark.parametrize("line", [
    "login with password=hunter2-long",
    "config {'password': 'hunter2-long'}",
    "sent Authorization: Bearer hunter2-long",
    "bind_key: hunter2-long",
    "token=hunter2-long and more",
])
def test_scrub_removes_secrets(line: str) -> None:
    out = scrub(line)
    assert "hunter2-long" not in out and "***" in out


def test_journald_prefix_and_scrubbing(capfd: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    setup_logging("info")
    try:
        logging.getLogger("hub.test").warning("wifi psk=supersecret1 saved")
        logging.getLogger("hub.test").debug("not shown at info")
        err = capfd.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert err.startswith("<4>hub.test: wifi psk=***")
    assert "supersecret1" not in err and "not shown" not in err
