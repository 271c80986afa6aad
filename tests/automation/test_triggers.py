"""Every trigger type, driven through the real bus, the virtual integration and a manual clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunset

from hub.automation.sun import NoLocation, home_location
from tests.automation.conftest import START, command, settle, traces


def lamp_on(trigger: dict, **extra) -> dict:
    return {"id": "auto", "triggers": [trigger],
            "actions": [{"type": "command", "device": "virtual.lamp", "command": "toggle"}],
            **extra}


def runs(hub, automation_id: str = "auto") -> int:
    return len(traces(hub, automation_id))


async def test_state_trigger_from_to(make_hub):
    t = {"type": "state", "device": "virtual.motion", "attribute": "on", "from": False,
         "to": True}
    async with make_hub([lamp_on(t)]) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        assert hub.states.value("virtual.lamp", "on") is True
        await command(hub, "virtual.motion", "set", value=False)  # true -> false: no match
        assert runs(hub) == 1
        trace = traces(hub, "auto")[0]
        assert trace["trigger"]["from"] is False and trace["trigger"]["to"] is True
        assert trace["trigger"]["device"] == "virtual.motion"
        assert trace["state"] == "done"


async def test_state_trigger_for_duration(make_hub, clock):
    t = {"type": "state", "device": "virtual.motion", "attribute": "on", "to": True, "for": 30}
    async with make_hub([lamp_on(t)]) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        await clock.advance(20)
        await command(hub, "virtual.motion", "set", value=False)  # broken before 30 s
        await clock.advance(60)
        assert runs(hub) == 0
        await command(hub, "virtual.motion", "set", value=True)
        await clock.advance(29)
        assert runs(hub) == 0
        await clock.advance(2)
        assert runs(hub) == 1
        assert traces(hub, "auto")[0]["trigger"]["for"] == 30


async def test_numeric_above_below_with_for(make_hub, clock):
    t = {"type": "numeric", "device": "virtual.temp", "attribute": "value", "above": 25,
         "below": 40, "for": "00:01:00"}
    async with make_hub([lamp_on(t)]) as hub:
        await command(hub, "virtual.temp", "set", value=26)
        await clock.advance(30)
        await command(hub, "virtual.temp", "set", value=27)  # still inside: timer keeps going
        await clock.advance(31)
        assert runs(hub) == 1
        await command(hub, "virtual.temp", "set", value=28)  # no new crossing
        await clock.advance(120)
        assert runs(hub) == 1
        await command(hub, "virtual.temp", "set", value=45)  # above `below`: leaves the range
        await command(hub, "virtual.temp", "set", value=30)
        await clock.advance(59)
        assert runs(hub) == 1
        await clock.advance(2)
        assert runs(hub) == 2


async def test_numeric_below_immediate(make_hub):
    t = {"type": "numeric", "device": "virtual.temp", "attribute": "value", "below": 10}
    async with make_hub([lamp_on(t)]) as hub:
        await command(hub, "virtual.temp", "set", value=12)
        assert runs(hub) == 0
        await command(hub, "virtual.temp", "set", value=9.5)
        assert runs(hub) == 1
        assert traces(hub, "auto")[0]["trigger"]["to"] == 9.5


async def test_device_event_trigger(make_hub):
    t = {"type": "event", "device": "virtual.button", "event": "press"}
    async with make_hub([lamp_on(t)]) as hub:
        await command(hub, "virtual.button", "press")
        await command(hub, "virtual.button", "press")
        assert runs(hub) == 2
        assert traces(hub, "auto")[0]["trigger"]["event"] == "press"


async def test_availability_trigger(make_hub):
    t = {"type": "availability", "device": "virtual.temp", "to": "unavailable"}
    async with make_hub([lamp_on(t)]) as hub:
        hub.states.set_available("virtual.temp", False)
        await settle()
        assert runs(hub) == 1
        hub.states.set_available("virtual.temp", True)
        await settle()
        assert runs(hub) == 1
        assert traces(hub, "auto")[0]["trigger"]["available"] is False


async def test_hub_start_trigger(make_hub):
    async with make_hub([lamp_on({"type": "hub_start"})]) as hub:
        assert runs(hub) == 1
        assert traces(hub, "auto")[0]["trigger"]["type"] == "hub_start"


async def test_time_of_day_in_configured_zone(make_hub, clock):
    # START is 12:00 UTC = 13:00 in Berlin (CET); 13:30 Berlin is 30 minutes later
    extra = {"location": {"time_zone": "Europe/Berlin"}}
    async with make_hub([lamp_on({"type": "time", "at": "13:30"})], extra) as hub:
        await clock.advance(29 * 60)
        assert runs(hub) == 0
        await clock.advance(61)
        assert runs(hub) == 1
        await clock.advance(86400)
        assert runs(hub) == 2
        trace = traces(hub, "auto")[0]
        assert trace["trigger"]["scheduled"] == START + 30 * 60 + 86400
        assert trace["late"] is False


async def test_cron_schedule(make_hub, clock):
    async with make_hub([lamp_on({"type": "cron", "cron": "*/15 * * * *"})]) as hub:
        await clock.advance(3600)
        assert runs(hub) == 4
        stamps = sorted(t["trigger"]["scheduled"] for t in traces(hub, "auto"))
        assert stamps == [START + 900 * i for i in range(1, 5)]


async def test_sun_trigger_with_offset(make_hub, clock):
    tz = ZoneInfo("Europe/Berlin")
    loc = {"time_zone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.405}
    t = {"type": "sun", "event": "sunset", "offset": "-00:10:00"}
    async with make_hub([lamp_on(t)], {"location": loc}) as hub:
        assert "'location' consent" in hub.automations.get("auto").error_text()
        await hub.privacy.set_consent("location", True, None)  # coordinates from config
        assert hub.automations.get("auto").valid
        day = datetime.fromtimestamp(START, tz).date()
        expected = sunset(Observer(52.52, 13.405, 0.0), day, tzinfo=tz).timestamp() - 600
        assert expected > START
        await clock.set_time(expected - 1)
        assert runs(hub) == 0
        await clock.advance(2)
        assert runs(hub) == 1
        assert abs(traces(hub, "auto")[0]["trigger"]["scheduled"] - expected) < 1e-6
        tomorrow = sunset(Observer(52.52, 13.405, 0.0), day + timedelta(days=1),
                          tzinfo=tz).timestamp() - 600
        await clock.set_time(tomorrow + 1)
        assert runs(hub) == 2


async def test_sun_without_location_is_reported(make_hub, clock):
    t = {"type": "sun", "event": "sunrise"}
    async with make_hub([lamp_on(t)]) as hub:
        entry = hub.automations.get("auto")
        assert not entry.valid
        assert "cannot run: no location" in entry.error_text()
        await hub.privacy.set_consent("location", True, None)
        assert "no coordinates" in entry.error_text()  # consent alone gives no coordinates
        try:
            home_location(hub.privacy, hub.config.location)
        except NoLocation as exc:
            assert "cannot run: no location" in str(exc)
        else:
            raise AssertionError("expected NoLocation")
        await hub.privacy.set_location(52.52, 13.405)
        assert hub.automations.get("auto").valid
        assert hub.automations.get("auto").listeners[0].next is not None


async def test_withdrawing_location_consent_stops_sun_automations(make_hub, clock):
    loc = {"time_zone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.405}
    autos = [lamp_on({"type": "sun", "event": "sunset"})]
    async with make_hub(autos, {"location": loc}) as hub:
        await hub.privacy.set_consent("location", True, None)
        assert hub.automations.get("auto").valid
        await hub.privacy.set_consent("location", False, None)
        entry = hub.automations.get("auto")
        assert not entry.valid and "'location' consent" in entry.error_text()
        assert entry.listeners == []
        await clock.advance(2 * 86400)
        assert runs(hub) == 0


async def test_event_costs_work_only_for_matching_automations(make_hub, monkeypatch):
    from hub.automation.listeners import Listener

    autos = [lamp_on({"type": "state", "device": "virtual.motion", "attribute": "on"})]
    autos += [
        {"id": f"temp{i}", "triggers": [{"type": "numeric", "device": "virtual.temp",
                                          "attribute": "value", "above": 100 + i}],
         "actions": [{"type": "notify", "message": "hot"}]}
        for i in range(50)
    ]
    async with make_hub(autos) as hub:
        engine = hub.automations
        assert set(engine._state_idx) == {"virtual.motion", "virtual.temp"}
        assert len(engine._state_idx["virtual.motion"]["on"]) == 1
        assert len(engine._state_idx["virtual.temp"]["value"]) == 50
        seen: list[str | None] = []
        original = Listener.on_state

        def counting(self, ev):
            seen.append(self.trigger.device)
            return original(self, ev)

        monkeypatch.setattr(Listener, "on_state", counting)
        await command(hub, "virtual.motion", "set", value=True)
        assert runs(hub) == 1
        assert seen == ["virtual.motion"]  # the 50 temperature triggers did no work
