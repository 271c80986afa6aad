"""Cron-like schedules (`minute hour day month weekday`), evaluated in the home's time zone.

Wall-clock semantics across DST: a time that does not exist (spring forward) is skipped, and
a time that happens twice (fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
            "@annually": "0 0 1 1 *"}


@dataclass(frozen=True, slots=True)
class CronSpec:
    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday (Python's weekday())
    day_star: bool
    weekday_star: bool

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = d.weekday() in self.weekdays
        if self.day_star or self.weekday_star:  # cron: both restricted -> either matches
            return dom and dow
        return dom or dow


def parse_cron(expr: str) -> CronSpec:
    """Parse a 5-field cron expression (names, ranges, steps, lists and @aliases)."""
    text = _ALIASES.get(expr.strip().lower(), expr)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has 5 fields (minute hour day month weekday), "
                         f"got {len(fields)} in {expr!r}")
    sets = [_field(f, i) for i, f in enumerate(fields)]
    weekdays = frozenset((d - 1) % 7 for d in sets[4])  # cron 0/7 = Sunday -> Python 6
    return CronSpec(expr, tuple(sorted(sets[0])), tuple(sorted(sets[1])), frozenset(sets[2]),
                    frozenset(sets[3]), weekdays, fields[2] == "*", fields[4] == "*")


def next_cron(spec: CronSpec, after: float, tz: ZoneInfo) -> float | None:
    """The first fire time strictly after `after` (epoch seconds), or None within 5 years."""
    start = datetime.fromtimestamp(after, tz)
    day = start.date()
    for _ in range(366 * 5):
        if spec.day_matches(day):
            for h in spec.hours:
                for m in spec.minutes:
                    local = datetime.combine(day, dtime(h, m), tz)
                    ts = local.timestamp()
                    if ts <= after or not _exists(local, tz):
                        continue
                    return ts
        day += timedelta(days=1)
    return None


def occurrences(spec: CronSpec, since: float, until: float, tz: ZoneInfo) -> list[float]:
    out: list[float] = []
    t = since
    while True:
        nxt = next_cron(spec, t, tz)
        if nxt is None or nxt > until:
            return out
        out.append(nxt)
        t = nxt


def _exists(local: datetime, tz: ZoneInfo) -> bool:
    """False for wall times skipped by a DST change."""
    back = datetime.fromtimestamp(local.timestamp(), tz)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def _field(text: str, index: int) -> set[int]:
    lo, hi = _RANGES[index]
    out: set[int] = set()
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r} in the {_NAMES[index]} field")
            step = int(step_text)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = _value(x, index), _value(y, index)
        else:
            a = _value(part, index)
            b = hi if step > 1 else a
        if a > b:
            raise ValueError(f"empty range {part!r} in the {_NAMES[index]} field")
        out.update(range(a, b + 1, step))
    return out


def _value(text: str, index: int) -> int:
    lo, hi = _RANGES[index]
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    if text in names:
        return names[text]
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"{text!r} is not a valid {_NAMES[index]} ({lo}-{hi})")
    return int(text)
