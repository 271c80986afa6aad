"""Sensors and climate from matter.js devices, and multi-admin (a commissioning window for a
second ecosystem, removal from the hub's fabric)."""

from __future__ import annotations

from integrations.matter import check_code
from tests.matter.conftest import added, commission, wait_until


def state(hub, device_id: str, name: str):
    return hub.states.value(device_id, name)


async def test_contact_sensor_follows_the_device(hub, make_device, api_client) -> None:
    sensor = make_device("contact")
    async with added(api_client, sensor) as device_id:
        device = await (await api_client.get(f"/api/devices/{device_id}")).json()
        assert "contact" in device["attributes"] and device["commands"] == []
        await sensor.set({"booleanState": {"stateValue": True}})
        await wait_until(lambda: state(hub, device_id, "contact") is True)
        await sensor.set({"booleanState": {"stateValue": False}})
        await wait_until(lambda: state(hub, device_id, "contact") is False)


async def test_thermostat_setpoint_and_temperature(hub, make_device, api_client) -> None:
    thermostat = make_device("thermostat")
    async with added(api_client, thermostat) as device_id:
        assert state(hub, device_id, "current_temperature") == 20.0
        assert state(hub, device_id, "heating_setpoint") == 21.0
        assert state(hub, device_id, "hvac_mode") == "heat"
        meta = (await (await api_client.get(f"/api/devices/{device_id}")).json())
        assert meta["attribute_meta"]["current_temperature"]["unit"] == "°C"

        resp = await api_client.post(f"/api/devices/{device_id}/commands", json={
            "command": "set_heating_setpoint", "params": {"temperature": 22.5}})
        assert resp.status == 200, await resp.text()
        await wait_until(lambda: state(hub, device_id, "heating_setpoint") == 22.5)

        await thermostat.set({"thermostat": {"localTemperature": 1875}})  # the room cools
        await wait_until(lambda: state(hub, device_id, "current_temperature") == 18.75)

        resp = await api_client.post(f"/api/devices/{device_id}/commands", json={
            "command": "set_hvac_mode", "params": {"mode": "sideways"}})
        assert resp.status == 400 and "params.mode" in await resp.text()


async def test_commissioning_window_and_removal(hub, make_device, api_client) -> None:
    light = make_device("onoff")
    await light.start()
    try:
        job = await commission(api_client, light.manual_code)
        device_id = job["device_id"]
        resp = await api_client.post(
            f"/api/matter/devices/{device_id}/commissioning-window", json={"timeout": 180})
        assert resp.status == 200, await resp.text()
        codes = await resp.json()
        assert check_code(codes["manual_code"]) == codes["manual_code"].replace("-", "")
        assert codes["manual_code"] != light.manual_code  # a fresh passcode for the window
        assert codes["timeout"] == 180
        matter = hub.integrations.instance("matter")
        node_id = int(device_id.removeprefix("matter-"))
        # AdministratorCommissioning.WindowStatus on the device: open (enhanced window)
        await wait_until(lambda: (matter.client.node(node_id).value(0, 60, 0) or 0) != 0)

        resp = await api_client.post("/api/matter/devices/virtual-nope/commissioning-window",
                                     json={})
        assert resp.status == 404

        resp = await api_client.delete(f"/api/devices/{device_id}")
        assert resp.status in (200, 204), await resp.text()
        await wait_until(lambda: matter.client.node(node_id) is None)
        assert hub.devices.find(device_id) is None
    finally:
        await light.stop()
