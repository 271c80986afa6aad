"""Hygiene checks applied to every test (autouse, loaded by tests/conftest.py).

Every test:
- fails on a blocking call made on a running event loop from the hub's code (`hub/`,
  `integrations/`), found by blockbuster, even where the hub catches the error it raises;
every async test also:
- fails on a task or a timer of its loop still pending after the test and its fixtures ended;
- fails on an exception the loop reported to its exception handler (a task's exception nobody
  retrieved, a failing callback, an error in a protocol);
- fails when a Hub it started is still running, or still has an integration loaded, at the end.

The failure messages name the culprit: the blocking function and the hub frames that called it,
each lingering task with the line where it waits and where it was created, each timer's
callback, each loop error with its traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import os
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from blockbuster import BlockBuster, BlockingError

from hub.hub import Hub

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("hub", "integrations")  # blocking calls fail when one of these is on the stack

# Blocking calls allowed on the loop, each for one function of one file. Only what a library
# does unavoidably belongs here; the hub's own blocking work goes to asyncio.to_thread instead.
ALLOWED_BLOCKING: list[tuple[str, str, set[str], str]] = []

# Tasks a library keeps for the whole life of an event loop by design: they end when the loop
# closes, not when the test does. (module file suffix, coroutine qualname, why)
LOOP_LIFETIME_TASKS: list[tuple[str, str, str]] = [
    ("bleak/backends/bluezdbus/manager.py", "BlueZManager._monitor_bus_disconnect",
     "bleak keeps one BlueZ manager per event loop (get_global_bluez_manager); its D-Bus "
     "watcher lives as long as the loop or the bus"),
]


def _closed_websocket_heartbeat(callback: Any) -> bool:
    """aiohttp 3.14 re-arms a server websocket's heartbeat when data (the client's close
    reply) arrives after `close()` (`_flush_heartbeat_reset` does not check `_closed`): a
    timer of a closed websocket that the hub cannot cancel."""
    owner = getattr(callback, "__self__", None)
    return (isinstance(owner, web.WebSocketResponse) and owner.closed
            and getattr(callback, "__name__", "") == "_send_heartbeat")


def _zeroconf_outgoing_queue(callback: Any) -> bool:
    """python-zeroconf's MulticastOutgoingQueue aggregates answers with `loop.call_at(...,
    self.async_ready)` and keeps no handle, so closing AsyncZeroconf cannot cancel it: a
    timer of at most ~0.5 s that the hub cannot reach (seen once in CI, under load)."""
    owner = getattr(callback, "__self__", None)
    return (type(owner).__name__ == "MulticastOutgoingQueue"
            and type(owner).__module__.startswith("zeroconf.")
            and getattr(callback, "__name__", "") == "async_ready")


# Timers a library leaves behind that the hub cannot reach: a predicate on the callback.
LIBRARY_TIMERS: list[Callable[[Any], bool]] = [_closed_websocket_heartbeat,
                                               _zeroconf_outgoing_queue]


@pytest.fixture(scope="session", autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """blockbuster's wrappers, on for the whole session (building them per test costs more
    than most tests); each test checks what they recorded."""
    bb = BlockBuster(list(SCANNED))
    for function, filename, names, _why in ALLOWED_BLOCKING:
        bb.functions[function].can_block_in(filename, names)
    for function in bb.functions.values():
        function.can_block_predicate = _or_test_setup(function.can_block_predicate)
    for name in ("io.TextIOWrapper.write", "io.BufferedWriter.write"):
        write = bb.functions[name]
        write.can_block_predicate = _or_named(write.can_block_predicate, _devnull)
    for name in ("io.TextIOWrapper.read", "io.BufferedReader.read"):
        read = bb.functions[name]
        read.can_block_predicate = _or_named(read.can_block_predicate, _procfs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BlockingError, "__init__", _recording_init(BlockingError.__init__))
        bb.activate()
        try:
            yield bb
        finally:
            bb.deactivate()


@pytest.fixture(autouse=True)
def hygiene(request: pytest.FixtureRequest) -> None:
    """The checks above. They report from a finalizer of the test itself, which runs after
    every fixture (and the event loop) is gone, in one message."""
    problems: list[str] = []
    request.node.stash[_PROBLEMS] = problems
    _blocked.clear()
    request.node.addfinalizer(functools.partial(_report, problems))
    if pytest_asyncio.is_async_test(request.node):
        request.getfixturevalue("loop_hygiene")


@pytest_asyncio.fixture
async def loop_hygiene(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[LoopRecord]:
    """Lingering tasks and timers, loop errors, hubs left running or with integrations loaded.

    Set up before the test's other fixtures, so it checks after all of them have ended."""
    loop = asyncio.get_running_loop()
    record = LoopRecord()
    previous_handler = loop.get_exception_handler()
    previous_factory = loop.get_task_factory()
    loop.set_exception_handler(lambda _loop, ctx: record.errors.append(ctx))
    loop.set_task_factory(functools.partial(_recording_task_factory, record.created))
    monkeypatch.setattr(loop, "call_at", _recording_call_at(loop.call_at))
    monkeypatch.setattr(Hub, "start", _recording_start(Hub.start, record.hubs))
    before = set(asyncio.all_tasks())
    try:
        yield record
        await asyncio.sleep(0)  # tasks already cancelled finish their cancellation
        request.node.stash[_PROBLEMS].extend(
            _hub_problems(record.hubs) + _lingering_tasks(before, record.created)
            + _lingering_timers(loop) + _unretrieved(record.created)
            + [_format_loop_error(ctx, record.created) for ctx in record.errors])
    finally:
        loop.set_exception_handler(previous_handler)
        loop.set_task_factory(previous_factory)


@dataclasses.dataclass
class LoopRecord:
    """What one test's loop saw: its tasks with where each was made, the errors reported to
    the loop's handler, and the hubs it started."""

    created: dict[asyncio.Task[Any], list[str]] = dataclasses.field(default_factory=dict)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    hubs: list[Hub] = dataclasses.field(default_factory=list)


_PROBLEMS = pytest.StashKey[list[str]]()


def _report(problems: list[str]) -> None:
    if _blocked:
        problems[:0] = ["  blocking call on the event loop: " + b for b in _blocked]
        _blocked.clear()
    if problems:
        pytest.fail("test hygiene (tests/hygiene.py):\n" + "\n".join(problems), pytrace=False)


# -- blocking calls ---------------------------------------------------------------------------

_blocked: list[str] = []  # what the current test's blocking calls were, with their callers


def _or_test_setup(predicate: Callable[..., bool]) -> Callable[..., bool]:
    """A test may block its own loop while it prepares data with the hub's synchronous
    functions (`load_config`, `migrate`...): allowed when the outermost hub frame is a plain
    function called by the test. The hub's coroutines, and whatever the loop runs for the hub
    (tasks, callbacks), may never block."""
    def can_block(*args: Any, **kwargs: Any) -> bool:
        return predicate(*args, **kwargs) or _called_by_a_test(sys._getframe(1))

    return can_block


def _called_by_a_test(frame: FrameType | None) -> bool:
    outermost: FrameType | None = None
    while frame is not None:
        if frame.f_code.co_filename.startswith(_SCANNED_PREFIXES):
            outermost = frame
        frame = frame.f_back
    if outermost is None or outermost.f_code.co_flags & _ASYNC_CODE:
        return False
    caller = outermost.f_back  # the test, maybe through a library (socket -> audit hook)
    while caller is not None and _is_library(caller.f_code.co_filename):
        caller = caller.f_back
    return caller is not None and caller.f_code.co_filename.startswith(_TESTS_PREFIX)


def _is_library(filename: str) -> bool:
    """Not the project's code, and not the event loop calling back."""
    return not (_in_project(filename) or filename.startswith(_ASYNCIO))


def _or_named(predicate: Callable[..., bool], allowed: Callable[[str], bool]
              ) -> Callable[..., bool]:
    def can_block(file: Any, *args: Any, **kwargs: Any) -> bool:
        name = getattr(file, "name", None)
        return (isinstance(name, str) and allowed(name)) or predicate(file, *args, **kwargs)

    return can_block


def _devnull(name: str) -> bool:
    """pytest's log-file handler writes every record to /dev/null when no log_file is set."""
    return name == os.devnull


def _procfs(name: str) -> bool:
    """/proc files are the kernel's memory, read without waiting on a device (the storage
    writer reads its thread's write counter after each commit)."""
    return name.startswith("/proc/")


def _recording_init(original: Callable[..., None]) -> Callable[..., None]:
    """BlockingError.__init__ that also records the call, since the hub may catch the error."""
    def init(self: BlockingError, func: str) -> None:
        original(self, func)
        caller = sys._getframe(2)  # 0: here, 1: blockbuster's wrapper, 2: who called `func`
        frames = [_frame(caller), *_project_frames(caller)]
        _blocked.append(f"{func}, called from:\n"
                        + "\n".join(f"    {f}" for f in dict.fromkeys(frames)))

    return init


# -- tasks, timers, loop errors, hubs ---------------------------------------------------------

def _recording_task_factory(created: dict[asyncio.Task[Any], list[str]],
                            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                            **kwargs: Any) -> asyncio.Task[Any]:
    """Every task of the test, with where it was made; held until the test ends, so that an
    exception nobody retrieved is found then, not when a garbage collection meets it."""
    task = asyncio.Task(coro, loop=loop, **kwargs)
    created[task] = _project_frames(sys._getframe(1), limit=3)
    return task


def _recording_call_at(call_at: Callable[..., asyncio.TimerHandle]
                       ) -> Callable[..., asyncio.TimerHandle]:
    """loop.call_at (call_later goes through it) noting where each timer was made, in the
    slot asyncio's debug mode uses: the timer's repr then says "created at"."""
    def recording(when: float, callback: Callable[..., Any], *args: Any,
                  **kwargs: Any) -> asyncio.TimerHandle:
        handle = call_at(when, callback, *args, **kwargs)
        caller = sys._getframe(1)
        frames = _project_frame_list(caller, limit=3)
        if frames:
            if frames[0] is not caller:
                frames.insert(0, caller)  # call_later drops its own, last, frame from the list
            handle._source_traceback = traceback.StackSummary.from_list(  # type: ignore[attr-defined]
                [(f.f_code.co_filename, f.f_lineno, f.f_code.co_name, None)
                 for f in reversed(frames)])
        return handle

    return recording


def _lingering_tasks(before: set[asyncio.Task[Any]],
                     created: dict[asyncio.Task[Any], list[str]]) -> list[str]:
    current = asyncio.current_task()
    out = []
    for task in asyncio.all_tasks() - before:
        if task is current or task.done() or _loop_lifetime(task):
            continue
        out.append(f"  task still pending: {task!r}\n    created at: {_where(task, created)}")
    return out


def _unretrieved(created: dict[asyncio.Task[Any], list[str]]) -> list[str]:
    """Tasks that failed with nobody reading their exception (asyncio would log it only when
    the task is collected). `_log_traceback` is asyncio's own flag for that."""
    out = []
    for task in created:
        if task.done() and not task.cancelled() and getattr(task, "_log_traceback", False):
            out.append(_format_loop_error({"message": "Task exception was never retrieved",
                                           "task": task, "exception": task.exception()},
                                          created))
    return out


def _where(task: asyncio.Task[Any], created: dict[asyncio.Task[Any], list[str]]) -> str:
    return "; ".join(created.get(task, [])) or "outside the hub and the tests"


def _loop_lifetime(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None)
    if code is None:
        return False
    return any(code.co_filename.endswith(suffix) and code.co_qualname == qualname
               for suffix, qualname, _why in LOOP_LIFETIME_TASKS)


def _lingering_timers(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Timers not cancelled. asyncio keeps them in `_scheduled`, each with its `_callback`
    (private: there is no public view)."""
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is None:
        return [f"  cannot list timers of {type(loop).__name__}: asyncio changed, fix "
                "tests/hygiene.py"]
    return [f"  timer still scheduled: {handle!r}\n    created at: {_timer_site(handle)}"
            for handle in scheduled if not handle.cancelled()
            and not any(known(handle._callback) for known in LIBRARY_TIMERS)]


def _timer_site(handle: asyncio.TimerHandle) -> str:
    frames = getattr(handle, "_source_traceback", None) or []
    return "; ".join(f"{f.filename.removeprefix(_PREFIX)}:{f.lineno} in {f.name}"
                     for f in reversed(frames)) or "outside the hub and the tests"


def _format_loop_error(ctx: dict[str, Any], created: dict[asyncio.Task[Any], list[str]]
                       ) -> str:
    lines = [f"  unhandled loop error: {ctx.get('message', '')}"]
    for key in ("task", "future", "handle", "protocol", "transport"):
        if key in ctx:
            lines.append(f"    {key}: {ctx[key]!r}")
            if isinstance(ctx[key], asyncio.Task):
                lines.append(f"    created at: {_where(ctx[key], created)}")
    exc = ctx.get("exception")
    if exc is not None:
        lines.extend("    " + line for line in "".join(
            traceback.format_exception(exc)).rstrip().splitlines())
    return "\n".join(lines)


def _recording_start(original: Any, hubs: list[Hub]) -> Any:
    async def start(self: Hub) -> None:
        hubs.append(self)
        await original(self)

    return start


def _hub_problems(hubs: list[Hub]) -> list[str]:
    out = []
    for hub in hubs:
        if hub.running:
            out.append(f"  a hub this test started ({hub.state_dir}) is still running: "
                       "stop it (`async with Hub(...)`)")
        elif active := hub.integrations.active():
            out.append(f"  integration(s) {active} still loaded after their hub stopped")
    return out


# -- frames -----------------------------------------------------------------------------------

def _project_frames(frame: FrameType | None, limit: int = 6) -> list[str]:
    """The innermost frames from this repository (hub, integrations, tests), as file:line."""
    return [_frame(f) for f in _project_frame_list(frame, limit)]


def _project_frame_list(frame: FrameType | None, limit: int) -> list[FrameType]:
    out = []
    while frame is not None and len(out) < limit:
        if _in_project(frame.f_code.co_filename):
            out.append(frame)
        frame = frame.f_back
    return out


def _in_project(filename: str) -> bool:
    return filename.startswith(_PREFIX) and not filename.startswith(_EXCLUDED)


def _frame(frame: FrameType) -> str:
    name = frame.f_code.co_filename
    return f"{name.removeprefix(_PREFIX)}:{frame.f_lineno} in {frame.f_code.co_name}"


_PREFIX = f"{ROOT}/"
_SCANNED_PREFIXES = tuple(f"{ROOT}/{name}/" for name in SCANNED)
_TESTS_PREFIX = f"{ROOT}/tests/"
_ASYNCIO = asyncio.events.__file__.removesuffix("events.py")
_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
_EXCLUDED = (f"{ROOT}/.venv/", __file__)
