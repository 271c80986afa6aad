"""Noticing a device that went away without a goodbye (a power cut), from its SRV record.

zeroconf's browser reports a service removed when its PTR record goes: on a goodbye packet,
or when the record expires, and zeroconf keeps PTR records for at least 1,125 s whatever
their TTL. A dead plug would then look present for 19 minutes. RFC 6762 §5.2 has the cure:
a querier still interested in a record asks again at 80, 85, 90 and 95 % of its TTL. The
hub does that for the SRV record of every service it has resolved: a live device answers
and the record is renewed, a dead one does not and the record expires (the device's host
TTL, 120 s by default, plus at most zeroconf's 10 s cache sweep): then it is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from zeroconf import (
    DNSOutgoing,
    DNSQuestion,
    RecordUpdate,
    RecordUpdateListener,
    Zeroconf,
    current_time_millis,
)
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_SRV

REQUERY_AT = (80, 85, 90, 95)  # percent of the TTL (RFC 6762 §5.2)


class SrvLiveness(RecordUpdateListener):
    """Re-asks for the SRV records of known services; calls `lost(type, name)` when one
    expires. Runs on the event loop (zeroconf calls listeners there)."""

    def __init__(self, zc: Zeroconf, lost: Callable[[str, str], None]) -> None:
        self._zc = zc
        self._lost = lost
        self._known: dict[str, tuple[str, str]] = {}  # lower-case name -> (type, name)
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def track(self, service_type: str, name: str) -> None:
        """Watch a service that has just resolved (its SRV record is in the cache)."""
        key = name.lower()
        self._known[key] = (service_type, name)
        records = self._zc.cache.get_all_by_details(name, _TYPE_SRV, _CLASS_IN)
        if records:
            self._schedule(key, max(records, key=lambda r: r.created))

    def forget(self, name: str) -> None:
        key = name.lower()
        self._known.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._known.clear()

    # zeroconf's listener interface

    def async_update_records(self, zc: Zeroconf, now: float,
                             records: list[RecordUpdate]) -> None:
        for update in records:
            record = update.new
            if record.type != _TYPE_SRV or record.key not in self._known:
                continue
            if record.is_expired(now):
                service_type, name = self._known[record.key]
                self.forget(name)
                self._lost(service_type, name)
            else:
                self._schedule(record.key, record)  # renewed: start over from its new TTL

    def async_update_records_complete(self) -> None:
        pass

    # internals

    def _schedule(self, key: str, record: Any, step: int = 0) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if step >= len(REQUERY_AT):
            return  # asked four times: expiry decides
        loop = asyncio.get_running_loop()
        delay = (record.get_expiration_time(REQUERY_AT[step]) - _now_ms()) / 1000.0
        self._timers[key] = loop.call_later(max(0.0, delay), self._ask, key, record, step)

    def _ask(self, key: str, record: Any, step: int) -> None:
        self._timers.pop(key, None)
        if key not in self._known:
            return
        out = DNSOutgoing(_FLAGS_QR_QUERY)
        out.add_question(DNSQuestion(record.name, _TYPE_SRV, _CLASS_IN))
        self._zc.async_send(out)
        self._schedule(key, record, step + 1)


def _now_ms() -> float:
    return current_time_millis()
