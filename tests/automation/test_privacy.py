"""Privacy scope: automations that read outside a device's scope are rejected, and at run time
out-of-scope data never reaches automations (also after the owner narrows the scope)."""

from __future__ import annotations

import dataclasses

import pytest

from hub.devices import PrivacyScope
from hub.errors import ValidationError
from tests.automation.conftest import command, traces

TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}
MOTION = {"type": "state", "device": "virtual.motion", "attribute": "on", "to": True}


async def test_rejected_at_validation_when_outside_scope(make_hub):
    async with make_hub([]) as hub:
        await hub.devices.update("virtual.motion", scope=PrivacyScope(attributes=frozenset()))
        await hub.devices.update("virtual.button", scope=PrivacyScope(events=frozenset()))
        with pytest.raises(ValidationError) as err:
            await hub.automations.create({"id": "spy", "triggers": [MOTION],
                                          "actions": [TOGGLE]})
        assert err.value.field == "triggers[0].attribute"
        assert "outside the device's privacy scope" in str(err.value)
        with pytest.raises(ValidationError, match="does not share event 'press'"):
            await hub.automations.create({"id": "spy2", "triggers": [
                {"type": "event", "device": "virtual.button", "event": "press"}],
                "actions": [TOGGLE]})
        cond = {"type": "state", "device": "virtual.motion", "attribute": "on", "state": True}
        with pytest.raises(ValidationError, match="privacy scope") as err:
            await hub.automations.create({"id": "spy3", "triggers": [{"type": "hub_start"}],
                                          "conditions": [cond], "actions": [TOGGLE]})
        assert err.value.field == "conditions[0].attribute"


async def test_scope_change_invalidates_and_stops_data(make_hub):
    cond = {"type": "numeric", "device": "virtual.temp", "attribute": "value", "above": 0}
    autos = [{"id": "watch", "triggers": [MOTION], "actions": [TOGGLE]},
             {"id": "press", "triggers": [{"type": "event", "device": "virtual.button",
                                            "event": "press"}],
              "conditions": [cond], "actions": [TOGGLE]}]
    async with make_hub(autos) as hub:
        await command(hub, "virtual.motion", "set", value=True)
        assert len(traces(hub, "watch")) == 1
        # the owner narrows the scope (what PATCH /api/devices/{id} does)
        await hub.devices.update("virtual.motion", scope=PrivacyScope(attributes=frozenset()))
        entry = hub.automations.get("watch")
        assert not entry.valid
        assert "outside the device's privacy scope" in entry.error_text()
        await command(hub, "virtual.motion", "set", value=False)
        await command(hub, "virtual.motion", "set", value=True)
        assert len(traces(hub, "watch")) == 1  # no data reached it
        await hub.devices.update("virtual.temp", restricted=True)
        assert "restricted" in hub.automations.get("press").error_text()
        await command(hub, "virtual.button", "press")
        assert traces(hub, "press") == []
        # widening again makes it valid and running
        await hub.devices.update("virtual.motion", scope=PrivacyScope())
        assert hub.automations.get("watch").valid
        await command(hub, "virtual.motion", "set", value=False)
        await command(hub, "virtual.motion", "set", value=True)
        assert len(traces(hub, "watch")) == 2


async def test_runtime_filter_even_before_revalidation(make_hub):
    """Defence in depth: the fast path checks scope itself, whatever the index holds."""
    async with make_hub([{"id": "watch", "triggers": [MOTION], "actions": [TOGGLE]}]) as hub:
        device = hub.devices.get("virtual.motion")
        # change the registry's copy without the change event, as a racing writer might
        hub.devices._devices[device.id] = dataclasses.replace(
            device, scope=PrivacyScope(attributes=frozenset({"battery"})))
        await command(hub, "virtual.motion", "set", value=True)
        assert traces(hub, "watch") == []
        hub.devices._devices[device.id] = device
        cond_auto = {"id": "c", "triggers": [{"type": "event", "device": "virtual.button",
                                               "event": "press"}],
                     "conditions": [{"type": "state", "device": "virtual.motion",
                                     "attribute": "on", "state": True}], "actions": [TOGGLE]}
        await hub.automations.create(cond_auto)
        hub.devices._devices[device.id] = dataclasses.replace(device, restricted=True)
        await command(hub, "virtual.button", "press")
        t = traces(hub, "c")[0]
        assert t["state"] == "conditions_failed"
        assert "value" not in t["conditions"][0]  # the value was never read
        assert t["conditions"][0]["error"] == "outside the device's privacy scope"

