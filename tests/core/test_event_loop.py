"""`hub run --loop`: uvloop when installed, asyncio's loop on request or without it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from hub.cli import loop_factory


def test_asyncio_on_request() -> None:
    assert loop_factory("asyncio") is None  # asyncio.Runner's default loop


def test_uvloop_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop not installed here")
    factory = loop_factory("auto")
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_without_uvloop_the_hub_runs_on_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("auto") is None
    with pytest.raises(SystemExit, match="not installed"):
        loop_factory("uvloop")
