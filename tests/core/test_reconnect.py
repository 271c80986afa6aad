"""The one reconnect loop: backoff, jitter, auth waits, wake-up, logging once, on a manual clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.clock import ManualClock
from hub.reconnect import BackoffPolicy, ReconnectLoop, ReconnectState


class AuthRefused(Exception):
    pass


class Peer:
    """A scripted peer: each attempt takes the next outcome ("fail", "auth", "up")."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = list(outcomes)
        self.attempts: list[float] = []
        self.loop: ReconnectLoop | None = None
        self.drop = asyncio.Event()

    async def session(self) -> None:
        assert self.loop is not None
        self.attempts.append(self.loop._clock.time())
        outcome = self.outcomes.pop(0) if self.outcomes else "fail"
        if outcome == "fail":
            raise ConnectionRefusedError("refused")
        if outcome == "auth":
            raise AuthRefused("bad password")
        self.loop.connected()
        self.drop.clear()
        await self.drop.wait()


def make(peer: Peer, clock: ManualClock, **kw: object) -> ReconnectLoop:
    kw.setdefault("rand", lambda: 0.0)
    loop = ReconnectLoop("peer", peer.session, clock=clock,
                         is_auth_error=lambda e: isinstance(e, AuthRefused), **kw)  # type: ignore[arg-type]
    peer.loop = loop
    return loop


def test_policy_is_capped_exponential_with_one_jitter_rule() -> None:
    policy = BackoffPolicy(initial=1.0, maximum=60.0, factor=2.0, jitter=0.25)
    assert [policy.delay(n, 0.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    # jitter only shortens: delay * uniform(1 - j, 1)
    assert policy.delay(3, 0.999999) == pytest.approx(4 * 0.75, rel=1e-5)
    assert policy.delay(3, 0.5) == pytest.approx(4 * 0.875)
    assert policy.delay(10_000, 0.0) == 60.0  # no overflow on a long outage
    assert policy.delay(1, 0.99, auth=True) >= 300.0
    assert BackoffPolicy(auth_failure_delay=30).delay(1, 0.0, auth=True) == 30.0


@pytest.mark.parametrize("bad", [dict(initial=0), dict(initial=5, maximum=1), dict(jitter=1.0),
                                 dict(factor=0.5), dict(auth_failure_delay=-1)])
def test_policy_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        BackoffPolicy(**bad)


async def test_backs_off_then_resets_once_connected() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["fail", "fail", "fail", "up", "fail", "fail"])
    states: list[ReconnectState] = []
    loop = make(peer, clock, policy=BackoffPolicy(initial=1, maximum=4), on_state=states.append)
    loop.start()
    await clock.advance(0)
    assert peer.attempts == [0.0]
    assert loop.state is ReconnectState.WAITING and loop.failures == 1
    await clock.advance(1 + 2 + 4)  # waits of 1, 2 and 4 (the cap) seconds
    assert peer.attempts == [0.0, 1.0, 3.0, 7.0]
    assert loop.state is ReconnectState.CONNECTED and loop.failures == 0
    await clock.advance(100)
    assert len(peer.attempts) == 4  # nothing happens while connected
    peer.drop.set()
    await clock.advance(0)
    assert loop.state is ReconnectState.WAITING and loop.failures == 1
    await clock.advance(1)  # the backoff started over
    assert peer.attempts[-1] == 108.0
    assert states[:4] == [ReconnectState.CONNECTING, ReconnectState.WAITING,
                          ReconnectState.CONNECTING, ReconnectState.WAITING]
    assert ReconnectState.CONNECTED in states
    await loop.stop()
    assert loop.state is ReconnectState.STOPPED
    assert states[-1] is ReconnectState.STOPPED
    await clock.advance(100)
    assert peer.attempts[-1] == 108.0  # stopped means stopped
    assert clock.pending() == 0


async def test_jitter_uses_the_injected_random() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer([])
    loop = make(peer, clock, policy=BackoffPolicy(initial=8, maximum=8, jitter=0.5),
                rand=lambda: 0.5)
    loop.start()
    await clock.advance(5.99)
    assert len(peer.attempts) == 1
    await clock.advance(0.01)  # 8 * (1 - 0.5 * 0.5) = 6
    assert len(peer.attempts) == 2
    await loop.stop()


async def test_auth_refusal_waits_longer_and_ignores_wake() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["auth", "up"])
    loop = make(peer, clock, policy=BackoffPolicy(initial=1, maximum=60, auth_failure_delay=300))
    loop.start()
    await clock.advance(0)
    loop.wake()  # an announcement does not make us retry a refused password early
    await clock.advance(299)
    assert len(peer.attempts) == 1
    await clock.advance(1)
    assert len(peer.attempts) == 2 and loop.state is ReconnectState.CONNECTED
    await loop.stop()


async def test_wake_cuts_the_wait_short_only_while_waiting() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["fail", "fail", "up"])
    loop = make(peer, clock, policy=BackoffPolicy(initial=50, maximum=50))
    loop.start()
    await clock.advance(10)
    assert len(peer.attempts) == 1
    loop.wake()
    await clock.advance(0)
    assert peer.attempts == [0.0, 10.0]  # retried at once, without waiting out the 50 s
    assert loop.failures == 2  # the backoff goes on
    loop.wake()
    await clock.advance(0)
    assert peer.attempts == [0.0, 10.0, 10.0]
    assert loop.state is ReconnectState.CONNECTED
    loop.wake()  # connected: nothing to cut short
    await clock.advance(0)
    assert len(peer.attempts) == 3
    await loop.stop()
    loop.wake()  # stopped: harmless


async def test_loss_and_recovery_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["up", "fail", "fail", "fail", "fail", "up"])
    log = logging.getLogger("test.reconnect")
    loop = make(peer, clock, log=log)
    caplog.set_level(logging.DEBUG, logger="test.reconnect")
    loop.start()
    await clock.advance(0)
    peer.drop.set()
    await clock.advance(1000)
    assert loop.state is ReconnectState.CONNECTED and len(peer.attempts) == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "peer: lost (connection closed)" in warnings[0].getMessage()
    assert len(infos) == 1 and "up again" in infos[0].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
    assert loop.attempts == 6 and loop.connects == 2
    await loop.stop()


async def test_first_failure_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["fail"])
    loop = make(peer, clock, log=logging.getLogger("test.reconnect"))
    caplog.set_level(logging.WARNING, logger="test.reconnect")
    loop.start()
    await clock.advance(0)
    assert loop.last_error == "ConnectionRefusedError: refused"
    assert [r.getMessage() for r in caplog.records] == [
        "peer: failed (ConnectionRefusedError: refused); retrying with backoff"]
    await loop.stop()


async def test_healthy_after_keeps_backing_off_a_flapping_peer() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["up", "up", "up"])
    loop = make(peer, clock, policy=BackoffPolicy(initial=1, maximum=60), healthy_after=30)
    loop.start()
    await clock.advance(0)
    peer.drop.set()  # drops at once: 1 s
    await clock.advance(1)
    peer.drop.set()  # again at once: 2 s
    await clock.advance(0)
    assert loop.failures == 2
    await clock.advance(2)
    assert len(peer.attempts) == 3
    await clock.advance(30)  # this time it stands 30 s
    peer.drop.set()
    await clock.advance(0)
    assert loop.failures == 1
    await loop.stop()


async def test_stop_during_session_wins_over_a_library_that_swallows_cancel() -> None:
    clock = ManualClock(start=0.0)
    entered = asyncio.Event()

    async def session() -> None:
        loop.connected()
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise OSError("the library turned the cancellation into its own error") from None

    loop = ReconnectLoop("swallow", session, clock=clock)
    loop.start()
    await entered.wait()
    await loop.stop()
    assert loop.state is ReconnectState.STOPPED
    assert loop.attempts == 1


async def test_start_twice_runs_one_loop() -> None:
    clock = ManualClock(start=0.0)
    peer = Peer(["up"])
    loop = make(peer, clock)
    loop.start()
    loop.start()
    await clock.advance(0)
    assert len(peer.attempts) == 1
    await loop.stop()
    await loop.stop()  # idempotent
