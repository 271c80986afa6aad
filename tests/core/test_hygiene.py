"""The checks tests/hygiene.py applies to every test find what they promise and say where.

Each test here provokes one problem, asserts the check's message names it, then cleans up, so
the test itself ends clean (the check runs on it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from blockbuster import BlockingError

from hub.hub import Hub
from hub.yamlsource import load_file
from tests import hygiene
from tests.hygiene import LoopRecord

HERE = "tests/core/test_hygiene.py:"


async def test_a_blocking_call_the_loop_runs_for_the_hub_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n")
    loop = asyncio.get_running_loop()
    raised: list[BaseException] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: raised.append(ctx["exception"]))
    try:
        loop.call_soon(functools.partial(load_file, path, strict=True))  # hub code, on the loop
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    found = list(hygiene._blocked)
    hygiene._blocked.clear()
    assert [type(e) for e in raised] == [BlockingError]
    assert len(found) == 1
    assert found[0].startswith("io.") and ".read, called from:" in found[0]
    assert "hub/yamlsource.py:" in found[0]  # the hub's frame that made the call


async def test_the_hub_may_block_in_a_thread_and_a_test_while_it_prepares_data(
        tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n")
    assert (await asyncio.to_thread(load_file, path)).value == {"a": 1}
    assert load_file(path).value == {"a": 1}  # the test's own call, before any hub runs
    assert hygiene._blocked == []


async def test_a_lingering_task_is_named_with_where_it_waits_and_was_made(
        loop_hygiene: LoopRecord) -> None:
    before = set(asyncio.all_tasks())
    task = asyncio.create_task(asyncio.sleep(3600), name="forgotten")
    await asyncio.sleep(0)
    try:
        [message] = hygiene._lingering_tasks(before, loop_hygiene.created)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "name='forgotten'" in message and "coro=<sleep() running at" in message
    assert f"created at: {HERE}" in message
    assert hygiene._lingering_tasks(before, loop_hygiene.created) == []


async def test_a_timer_left_scheduled_is_named_with_its_callback_and_origin() -> None:
    loop = asyncio.get_running_loop()
    handle = loop.call_later(3600, print, "never")
    try:
        [message] = [m for m in hygiene._lingering_timers(loop) if "print" in m]
    finally:
        handle.cancel()
    assert f"created at: {HERE}" in message
    assert not [m for m in hygiene._lingering_timers(loop) if "print" in m]


async def test_a_task_exception_nobody_read_is_reported_with_its_traceback(
        loop_hygiene: LoopRecord) -> None:
    async def fail() -> None:
        raise ValueError("lost")

    task = asyncio.create_task(fail())
    await asyncio.sleep(0)
    assert task.done()
    [message] = hygiene._unretrieved(loop_hygiene.created)  # reads it: the test ends clean
    assert "Task exception was never retrieved" in message
    assert "ValueError: lost" in message and f"created at: {HERE}" in message
    assert hygiene._unretrieved(loop_hygiene.created) == []


async def test_an_exception_in_a_loop_callback_is_recorded(loop_hygiene: LoopRecord) -> None:
    def boom() -> None:
        raise RuntimeError("in a callback")

    asyncio.get_running_loop().call_soon(boom)
    await asyncio.sleep(0)
    [ctx] = loop_hygiene.errors
    loop_hygiene.errors.clear()
    message = hygiene._format_loop_error(ctx, loop_hygiene.created)
    assert "RuntimeError: in a callback" in message and "boom" in message


async def test_a_hub_left_running_is_reported_and_a_stopped_one_has_nothing_loaded(
        config_factory, loop_hygiene: LoopRecord) -> None:
    hub = Hub(config_factory())
    await hub.start()
    try:
        assert loop_hygiene.hubs == [hub]
        assert hub.integrations.active() == ["virtual"]
        [message] = hygiene._hub_problems(loop_hygiene.hubs)
        assert "is still running" in message
    finally:
        await hub.stop()
    assert hub.integrations.active() == []
    assert hygiene._hub_problems(loop_hygiene.hubs) == []


def test_a_sync_test_running_its_own_loop_is_checked_for_blocking_calls(
        tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: None)  # the error is expected here
        loop.call_soon(functools.partial(load_file, path, strict=True))
        await asyncio.sleep(0)

    asyncio.run(main())
    found = list(hygiene._blocked)
    hygiene._blocked.clear()
    assert len(found) == 1 and "hub/yamlsource.py:" in found[0]
