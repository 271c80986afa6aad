"""Shared by the dashboard's MQTT tests: a mosquitto of the test's own, and a control's value
set as a user's drag would set it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import mosquitto


@contextlib.contextmanager
def broker_for(tmp_path: Path) -> Iterator[mosquitto.Mosquitto]:
    """Debian's mosquitto for one test (skipped, saying why, where it is not installed)."""
    reason = mosquitto.available()
    if reason:
        pytest.skip(reason)
    broker = mosquitto.Mosquitto(tmp_path / "broker", mosquitto.make_pki(tmp_path / "pki"),
                                 {"x": "y"})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def set_value(page: Any, selector: str, value: str) -> None:
    await page.locator(selector).evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('change')); }", value)
