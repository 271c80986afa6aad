"""Sunrise and sunset from the home's location (astral), and time-of-day in its time zone.

The location is read through `home_location()` only, so that privacy consent can gate it in
one place; without it sun triggers and conditions report "cannot run: no location".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # astral loads with the first sun automation, not at start-up
    from astral import Observer

    from hub.config import LocationConfig


class NoLocation(Exception):
    """The hub has no usable location, so sun events cannot be computed."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("cannot run: no location (" + (
            reason or "set location.latitude and location.longitude in the config") + ")")


class ConsentedLocation(Protocol):
    """The privacy center's side of the home's location (`hub.privacy`)."""

    def location(self) -> Any: ...

    def allowed(self, purpose: str) -> bool: ...


def home_location(privacy: ConsentedLocation | None, config: LocationConfig) -> Observer:
    """The observer for sun computations; raises NoLocation when there is none.

    With the privacy center, the coordinates exist only while the owner gives `location`
    consent; without it (the CLI's offline check: `privacy=None`) the config's are used.
    """
    if privacy is not None:
        loc = privacy.location()
        if loc is None:
            if not privacy.allowed("location"):
                raise NoLocation("the owner has not given 'location' consent")
            raise NoLocation("no coordinates: set them in the privacy center or in "
                             "location.latitude/longitude")
        from astral import Observer

        return Observer(latitude=loc.latitude, longitude=loc.longitude,
                        elevation=loc.elevation)
    loc_cfg = config
    if loc_cfg.latitude is None or loc_cfg.longitude is None:
        raise NoLocation()
    from astral import Observer

    return Observer(latitude=loc_cfg.latitude, longitude=loc_cfg.longitude,
                    elevation=loc_cfg.elevation)


def sun_event(observer: Observer, day: date, event: str, tz: ZoneInfo) -> float | None:
    """Epoch seconds of sunrise/sunset on local `day`, or None (polar day or night)."""
    from astral.sun import sunrise, sunset

    fn = sunrise if event == "sunrise" else sunset
    try:
        return fn(observer, day, tzinfo=tz).timestamp()
    except ValueError:
        return None


def next_sun(observer: Observer, event: str, offset: float, after: float, tz: ZoneInfo
             ) -> float | None:
    """First sun event (plus offset) strictly after `after`, searching up to a year ahead."""
    day = datetime.fromtimestamp(after, tz).date() - timedelta(days=1)
    for _ in range(370):
        ts = sun_event(observer, day, event, tz)
        if ts is not None and ts + offset > after:
            return ts + offset
        day += timedelta(days=1)
    return None


def next_time_of_day(at: dtime, after: float, tz: ZoneInfo) -> float:
    """Next local wall time `at` strictly after `after`.

    DST: a skipped time (spring forward) fires at the same offset past the gap (02:30 ->
    03:30); a repeated time (fall back) fires once, at its first occurrence.
    """
    day = datetime.fromtimestamp(after, tz).date()
    for _ in range(3):
        ts = datetime.combine(day, at, tz).timestamp()  # fold=0: first occurrence
        if ts > after:
            return ts
        day += timedelta(days=1)
    raise AssertionError("unreachable")
