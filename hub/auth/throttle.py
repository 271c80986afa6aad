"""Sign-in throttling that slows guessing without letting a stranger lock the owner out.

Two counters, both keyed by the client address:
- per (username, address): after `max_failures` failures that pair waits, doubling per
  further failure. The owner's phone is another address, so it keeps working.
- per address (any username): a higher ceiling against one host spraying many usernames.
A success resets its pair. Memory is bounded: the oldest entries are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

from hub.clock import Clock
from hub.errors import TooManyRequests

MAX_ENTRIES = 10_000
K = TypeVar("K")


@dataclass(slots=True)
class _Counter:
    failures: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    def __init__(self, clock: Clock, *, max_failures: int = 5, base: float = 30.0,
                 ceiling: float = 3600.0, address_max_failures: int = 20) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.base = base
        self.ceiling = ceiling
        self.address_max_failures = address_max_failures
        self._pairs: OrderedDict[tuple[str, str], _Counter] = OrderedDict()
        self._addresses: OrderedDict[str, _Counter] = OrderedDict()

    def check(self, username: str, address: str) -> None:
        """Raise TooManyRequests (with Retry-After) if this attempt must wait."""
        now = self.clock.monotonic()
        for counter in (self._pairs.get((username.lower(), address)),
                        self._addresses.get(address)):
            if counter is not None and counter.blocked_until > now:
                raise TooManyRequests("too many failed sign-ins; try again later",
                                      counter.blocked_until - now)

    def failed(self, username: str, address: str) -> None:
        now = self.clock.monotonic()
        pair = _touch(self._pairs, (username.lower(), address))
        pair.failures += 1
        if pair.failures >= self.max_failures:
            pair.blocked_until = now + self._delay(pair.failures - self.max_failures)
        addr = _touch(self._addresses, address)
        addr.failures += 1
        if addr.failures >= self.address_max_failures:
            addr.blocked_until = now + self._delay(addr.failures - self.address_max_failures)

    def succeeded(self, username: str, address: str) -> None:
        self._pairs.pop((username.lower(), address), None)

    def _delay(self, extra: int) -> float:
        return min(self.ceiling, self.base * (2 ** min(extra, 30)))


def _touch(table: OrderedDict[K, _Counter], key: K) -> _Counter:
    counter = table.get(key)
    if counter is None:
        counter = table[key] = _Counter()
        while len(table) > MAX_ENTRIES:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
    return counter
