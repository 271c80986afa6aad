"""Privacy applies to Matter devices as to every device: the owner's scope keeps an attribute
from automations, a restriction refuses the device's commands from outside the home (the
cloud), the export holds the device and its history, and erasing it in the privacy centre
also takes the node off the hub's Matter fabric."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from hub.auth.principal import Principal, Role
from hub.errors import NotFound
from tests.matter.conftest import added, wait_until

OWNER = Principal("o", "o", Role.OWNER)


def exported(data: bytes) -> dict[str, list]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name.removesuffix(".json"): json.loads(zf.read(name))["items"]
                for name in zf.namelist() if name.endswith(".json")
                and not name.startswith("schemas/")}


async def test_scope_restriction_export_and_erasure(hub, make_device, api_client) -> None:
    light = make_device("onoff")
    async with added(api_client, light) as device_id:
        node_id = int(device_id.removeprefix("matter-"))
        matter = hub.integrations.instance("matter")
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "turn_on"})
        assert resp.status == 200, await resp.text()
        await wait_until(lambda: hub.states.value(device_id, "on") is True)

        # scope: `on` hidden from automations; one that reads it is refused, naming it
        resp = await api_client.patch(f"/api/devices/{device_id}",
                                      json={"scope": {"attributes": [], "events": None}})
        assert resp.status == 200, await resp.text()
        watch = {"id": "watch", "triggers": [{"type": "state", "device": device_id,
                                              "attribute": "on"}],
                 "actions": [{"type": "command", "device": device_id, "command": "toggle"}]}
        resp = await api_client.post("/api/automations", json=watch)
        assert resp.status == 400, await resp.text()
        error = (await resp.json())["error"]
        assert "privacy scope" in json.dumps(error) and "triggers[0].attribute" in json.dumps(
            error)

        # restriction: the device does not exist for a command from outside (the cloud);
        # on the LAN the owner still controls it (restriction limits processing)
        resp = await api_client.put(f"/api/privacy/restrictions/devices/{device_id}",
                                    json={"restricted": True})
        assert resp.status == 200, await resp.text()
        with pytest.raises(NotFound):
            await hub.commands.authorize_and_send(OWNER, device_id, "turn_off", {},
                                                  remote=True)
        assert hub.states.value(device_id, "on") is True  # nothing was sent
        resp = await api_client.put(f"/api/privacy/restrictions/devices/{device_id}",
                                    json={"restricted": False})
        assert resp.status == 200

        # export: the device and its history
        await light.set({"onOff": {"onOff": False}})
        await wait_until(lambda: hub.states.value(device_id, "on") is False)
        await hub.db.flush()
        resp = await api_client.post("/api/privacy/export")
        assert resp.status == 200
        doc = exported(await resp.read())
        [device] = [d for d in doc["devices"] if d["id"] == device_id]
        assert device["integration"] == "matter" and device["model"] == "Test onoff"
        history = [h["value"] for h in doc["state_history"]
                   if h["device_id"] == device_id and h["attribute"] == "on"]
        assert history[-3:] == [False, True, False]

        # erasure: the device, its state and history go, and the node leaves the fabric
        resp = await api_client.post("/api/privacy/erase",
                                     json={"target": "device", "device_id": device_id})
        assert resp.status in (200, 202, 204), await resp.text()
        await wait_until(lambda: hub.devices.find(device_id) is None)
        await wait_until(lambda: node_id not in [n.node_id for n in matter.client.nodes()])
        assert "pending_removals" not in matter.health()
        assert matter.attestations.get(node_id) is None
        await hub.db.flush()
        assert await hub.states.history(device_id) == []
        # the device itself was told to leave: it is no longer commissioned
        await light.stop()
        await light.start()
        assert light.codes["commissioned"] is False
