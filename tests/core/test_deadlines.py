"""Deadlines: asyncio.timeout's semantics for many same-length limits on one timer."""

from __future__ import annotations

import asyncio

import pytest

from hub.deadlines import Deadlines


async def guarded(deadlines: Deadlines, aw) -> str:
    try:
        async with deadlines.limit():
            return await aw
    except TimeoutError:
        return "timed out"


async def answer(after: float, value: str = "ok") -> str:
    await asyncio.sleep(after)
    return value


async def test_each_guarded_await_gets_its_own_deadline() -> None:
    d = Deadlines(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = asyncio.create_task(guarded(d, answer(10)))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(guarded(d, answer(10)))  # set later: expires later
    quick = asyncio.create_task(guarded(d, answer(0, "quick")))
    assert await quick == "quick"
    assert await first == "timed out"
    t_first = loop.time() - t0
    assert not second.done()  # one timer, re-armed for the next deadline
    assert await second == "timed out"
    t_second = loop.time() - t0
    assert t_first >= 0.045 and t_second >= 0.065  # neither expired before its own limit
    assert first.cancelling() == 0 and second.cancelling() == 0  # the cancellation was taken back
    d.close()


async def test_other_cancellations_go_through() -> None:
    d = Deadlines(5.0)
    task = asyncio.create_task(guarded(d, answer(10)))
    await asyncio.sleep(0)
    task.cancel()  # e.g. a run restarted: not a timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await guarded(d, answer(0, "after")) == "after"  # nothing left expired
    d.close()


async def test_cancelled_at_the_deadline_by_someone_else_stays_cancelled() -> None:
    import time

    d = Deadlines(0.02)
    task = asyncio.create_task(guarded(d, answer(10)))
    await asyncio.sleep(0)  # armed
    time.sleep(0.05)  # noqa: ASYNC251 -- the deadline passes while the loop is busy
    task.cancel()  # another cancellation, before the timer's: both reach the task together
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    d.close()


async def test_arm_outside_a_task_is_an_error() -> None:
    d = Deadlines(1.0)
    errors: list[BaseException] = []

    def outside() -> None:
        try:
            d.arm()
        except RuntimeError as exc:
            errors.append(exc)

    asyncio.get_running_loop().call_soon(outside)
    await asyncio.sleep(0.01)
    assert len(errors) == 1
