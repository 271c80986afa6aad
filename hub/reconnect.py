"""Keeping a connection up: one reconnect policy for the core and every integration.

The policy is apart from the connection (aioesphomeapi's `ReconnectLogic` is the model): the
caller gives a `session()` coroutine that connects and serves until the connection ends, and
`ReconnectLoop` runs it again after a capped exponential backoff with one jitter rule, waits
longer after an authentication refusal, and lets a sign of life (an mDNS announcement, a BLE
advertisement) cut a wait short. Every wait is on the injected clock, so tests move time
instead of sleeping. A loss is logged once and the recovery once, however many attempts lie
between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hub.clock import Clock

__all__ = ["BackoffPolicy", "ReconnectLoop", "ReconnectState"]

_LOG = logging.getLogger(__name__)


class ReconnectState(enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"  # session() is running but has not called connected() yet
    CONNECTED = "connected"
    WAITING = "waiting"  # backing off before the next attempt


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait after the n-th failure in a row: capped exponential with jitter."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.25  # fraction, one rule for everyone: delay * uniform(1 - jitter, 1)
    auth_failure_delay: float = 300.0  # at least this long after an auth refusal

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff: need 0 < initial ({self.initial}) <= maximum "
                             f"({self.maximum})")
        if self.factor < 1:
            raise ValueError(f"backoff: factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff: jitter must be in [0, 1), got {self.jitter}")
        if self.auth_failure_delay < 0:
            raise ValueError(f"backoff: auth_failure_delay must be >= 0, got "
                             f"{self.auth_failure_delay}")

    def delay(self, failures: int, rand: float, *, auth: bool = False) -> float:
        """Seconds to wait after `failures` consecutive failures (1 for the first);
        `rand` is uniform in [0, 1). Jitter only shortens, so `maximum` is a true cap."""
        exponent = max(0, failures - 1)
        base = self.maximum
        if exponent < 1024:  # beyond that the power overflows; the cap was hit long before
            base = min(self.maximum, self.initial * self.factor ** exponent)
        wait = base * (1.0 - self.jitter * rand)
        if auth:
            wait = max(wait, self.auth_failure_delay)
        return wait


class ReconnectLoop:
    """Runs `session()` until stopped, backing off between attempts.

    `session()` connects and serves until the connection ends; returning or raising both
    mean the connection is lost. It calls `loop.connected()` once the connection is up: that
    resets the failure count (after `healthy_after` seconds up, if given, so a connection
    that drops at once still backs off) and logs the recovery once.

    The loop decides when to log (the first failure or loss: one warning; the recovery: one
    info line; the rest at debug); `describe(kind, error)` may say it in the owner's words,
    kind being "failed" (no connection yet), "lost" (it was up) or "up".
    """

    def __init__(
        self,
        name: str,
        session: Callable[[], Awaitable[None]],
        *,
        clock: Clock,
        policy: BackoffPolicy = BackoffPolicy(),  # frozen: sharing the default is safe
        is_auth_error: Callable[[BaseException], bool] = lambda e: False,
        on_state: Callable[[ReconnectState], None] | None = None,
        log: logging.Logger | None = None,
        rand: Callable[[], float] = random.random,
        healthy_after: float = 0.0,
        log_traceback: bool = False,
        describe: Callable[[str, BaseException | None], str] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._session = session
        self._clock = clock
        self._is_auth_error = is_auth_error
        self._on_state = on_state
        self._log = log or _LOG
        self._rand = rand
        self._healthy_after = healthy_after
        self._log_traceback = log_traceback  # for sessions whose failures are bugs
        self._describe = describe or self._default_message
        self._state = ReconnectState.STOPPED
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self._loss_logged = False
        self._connected_at: float | None = None
        self._wake: asyncio.Future[None] | None = None
        self._wake_allowed = False
        self.attempts = 0  # sessions started
        self.connects = 0  # sessions that reached connected()
        self.last_error: str | None = None

    @property
    def state(self) -> ReconnectState:
        return self._state

    @property
    def failures(self) -> int:
        """Failures in a row since the last good connection."""
        return self._failures

    def start(self) -> None:
        """Spawn the loop's task (on the running event loop)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"reconnect-{self.name}")

    async def stop(self) -> None:
        """Cancel the session or the wait, wait for it to end; the state is then STOPPED."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(ReconnectState.STOPPED)

    def connected(self) -> None:
        """Called by the session once the connection is up."""
        self.connects += 1
        self._connected_at = self._clock.monotonic()
        if self._healthy_after <= 0:
            self._failures = 0
        if self._loss_logged:
            self._log.info("%s", self._describe("up", None))
            self._loss_logged = False
        self.last_error = None
        self._set_state(ReconnectState.CONNECTED)

    def wake(self) -> None:
        """Cut the current wait short (the peer announced itself). Ignored while connecting
        or connected, and during the longer wait after an authentication refusal."""
        if self._wake is not None and self._wake_allowed and not self._wake.done():
            self._wake.set_result(None)

    # -- internals -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._connected_at = None
            self._set_state(ReconnectState.CONNECTING)
            self.attempts += 1
            error: BaseException | None = None
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            if self._stopping:  # some libraries turn a cancellation into their own error
                raise asyncio.CancelledError
            self._lost(error)
            auth = error is not None and self._is_auth_error(error)
            delay = self.policy.delay(self._failures, self._rand(), auth=auth)
            self._set_state(ReconnectState.WAITING)
            await self._wait(delay, wakeable=not auth)

    def _lost(self, error: BaseException | None) -> None:
        up_since = self._connected_at
        if up_since is not None and self._healthy_after > 0 and (
                self._clock.monotonic() - up_since >= self._healthy_after):
            self._failures = 0  # it stood long enough: start the backoff over
        self._failures += 1
        self.last_error = _reason(error)
        kind = "lost" if up_since is not None else "failed"
        if not self._loss_logged:
            self._log.warning("%s", self._describe(kind, error),
                              exc_info=error if self._log_traceback else None)
            self._loss_logged = True
        else:
            self._log.debug("%s: %s again (%s), failure %d", self.name, kind, self.last_error,
                            self._failures)

    def _default_message(self, kind: str, error: BaseException | None) -> str:
        if kind == "up":
            return f"{self.name}: up again"
        return f"{self.name}: {kind} ({_reason(error)}); retrying with backoff"

    async def _wait(self, seconds: float, *, wakeable: bool) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleep = asyncio.ensure_future(self._clock.sleep(seconds))
        self._wake, self._wake_allowed = wake, wakeable
        try:
            await asyncio.wait((sleep, wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._wake = None
            sleep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sleep

    def _set_state(self, state: ReconnectState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                self._log.exception("%s: state callback failed", self.name)


def _reason(error: BaseException | None) -> str:
    return "connection closed" if error is None else f"{type(error).__name__}: {error}"
