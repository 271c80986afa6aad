"""Time of day and cron schedules across DST changes and in different time zones."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

from hub.automation.cron import next_cron, parse_cron
from hub.automation.sun import next_time_of_day
from hub.clock import ManualClock
from tests.automation.conftest import traces

BERLIN = ZoneInfo("Europe/Berlin")
TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}


def local(ts: float, tz: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %Z")


def test_time_of_day_across_spring_forward():
    # 2026-03-29: clocks go 02:00 CET -> 03:00 CEST in Berlin
    before = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN).timestamp()
    first = next_time_of_day(datetime.strptime("07:00", "%H:%M").time(), before, BERLIN)
    second = next_time_of_day(datetime.strptime("07:00", "%H:%M").time(), first, BERLIN)
    assert local(first) == "2026-03-29 07:00 CEST"
    assert second - first == 86400  # a 23-hour day does not shift local 07:00
    assert local(second) == "2026-03-30 07:00 CEST"
    # a time that does not exist that night fires once, just after the gap
    gap = next_time_of_day(datetime.strptime("02:30", "%H:%M").time(), before, BERLIN)
    assert local(gap) == "2026-03-29 03:30 CEST"


def test_time_of_day_across_fall_back_fires_once():
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice
    before = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN).timestamp()
    at = datetime.strptime("02:30", "%H:%M").time()
    first = next_time_of_day(at, before, BERLIN)
    second = next_time_of_day(at, first, BERLIN)
    assert local(first) == "2026-10-25 02:30 CEST"
    assert local(second) == "2026-10-26 02:30 CET"


def test_cron_across_dst():
    spec = parse_cron("30 2 * * *")
    before = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN).timestamp()
    nxt = next_cron(spec, before, BERLIN)
    assert local(nxt) == "2026-03-30 02:30 CEST"  # skipped on the night it does not exist
    fall = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN).timestamp()
    a = next_cron(spec, fall, BERLIN)
    b = next_cron(spec, a, BERLIN)
    assert local(a) == "2026-10-25 02:30 CEST" and local(b) == "2026-10-26 02:30 CET"
    hourly = parse_cron("0 * * * *")
    t = datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN).timestamp()
    fires = []
    for _ in range(3):
        t = next_cron(hourly, t, BERLIN)
        fires.append(t)
    # 02:00 CEST, then 03:00 CET: the repeated 02:00 (CET) hour does not fire a second time
    assert [local(f) for f in fires] == ["2026-10-25 02:00 CEST", "2026-10-25 03:00 CET",
                                         "2026-10-25 04:00 CET"]
    assert [b - a for a, b in itertools.pairwise(fires)] == [7200, 3600]


async def test_hub_runs_time_trigger_over_dst_in_its_zone(make_hub):
    start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN).timestamp()
    clock = ManualClock(start)
    autos = [{"id": "wake", "triggers": [{"type": "time", "at": "07:00"}], "actions": [TOGGLE]}]
    async with make_hub(autos, {"location": {"time_zone": "Europe/Berlin"}},
                        use_clock=clock) as hub:
        await clock.advance(3 * 86400)
        fired = sorted(t["trigger"]["scheduled"] for t in traces(hub, "wake"))
        assert [local(f) for f in fired] == ["2026-03-29 07:00 CEST", "2026-03-30 07:00 CEST",
                                             "2026-03-31 07:00 CEST"]


async def test_time_zone_setting_changes_when(make_hub, tmp_path):
    import shutil

    start = datetime(2026, 6, 1, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    autos = [{"id": "wake", "triggers": [{"type": "time", "at": "07:00"}], "actions": [TOGGLE]}]
    for zone, hours in (("UTC", 7), ("America/New_York", 11), ("Asia/Tokyo", 22)):
        clock = ManualClock(start)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)  # a fresh hub per zone
        async with make_hub(autos, {"location": {"time_zone": zone}}, use_clock=clock) as hub:
            await clock.advance(86400)
            fired = [t["trigger"]["scheduled"] for t in traces(hub, "wake")]
            assert fired == [start + hours * 3600], zone


async def test_wall_clock_step_reschedules_time_triggers(make_hub, clock):
    """A Pi without an RTC boots with a stale clock and NTP steps it: time triggers follow."""
    from tests.automation.conftest import START

    autos = [{"id": "half", "triggers": [{"type": "time", "at": "12:30"}], "actions": [TOGGLE]}]
    async with make_hub(autos) as hub:
        clock.step_wall(20 * 60)  # now 12:20 on the wall; loop timers did not move
        await clock.advance(9 * 60)  # 12:29
        assert traces(hub, "half") == []
        await clock.advance(2 * 60)  # 12:31
        fired = traces(hub, "half")
        assert len(fired) == 1 and fired[0]["trigger"]["scheduled"] == START + 30 * 60
        await clock.advance(30 * 60)  # the stale 12:50 timer does not fire again
        assert len(traces(hub, "half")) == 1
