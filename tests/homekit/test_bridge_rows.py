"""The bridge's list of shown devices never goes stale: a device deleted or erased leaves it
(also while the bridge is off), and rows left over from before a start are dropped, so a
new device that gets the same (predictable) id is not shown in Apple Home unasked.

The bridge stays off here: no mDNS, no namespace needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.config import LoadedConfig
from hub.hub import Hub

CONFIG: dict[str, Any] = {
    "homekit_bridge": {"enabled": False, "devices": ["virtual.lamp"]},
    "integrations": {"virtual": {"devices": [
        {"id": "lamp", "kind": "switch", "name": "Lamp"},
        {"id": "fan", "kind": "switch", "name": "Fan"},
        {"id": "heater", "kind": "switch", "name": "Heater"},
    ]}},
}


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return CONFIG


async def rows(hub: Hub) -> dict[str, str]:
    return {r["device_id"]: r["source"]
            for r in await hub.db.fetchall("SELECT * FROM homekit_bridge")}


async def shown(api_client: Any) -> list[str]:
    body = await (await api_client.get("/api/homekit/bridge")).json()
    return [d["device_id"] for d in body["devices"]]


async def test_deleted_and_erased_devices_leave_the_bridge_while_it_is_off(
        api_client: Any, hub: Hub) -> None:
    assert hub.homekit.state == "off"
    for device_id in ("virtual.fan", "virtual.heater"):  # picked while the bridge is off
        resp = await api_client.put(f"/api/homekit/bridge/devices/{device_id}")
        assert resp.status == 200, await resp.text()
    assert await rows(hub) == {"virtual.lamp": "config", "virtual.fan": "api",
                               "virtual.heater": "api"}

    resp = await api_client.delete("/api/devices/virtual.fan")
    assert resp.status == 204
    assert "virtual.fan" not in await rows(hub)
    assert "virtual.fan" not in await shown(api_client)

    resp = await api_client.post("/api/privacy/erase",
                                 json={"target": "device", "device_id": "virtual.heater"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["deleted"]["homekit_bridge"] == 1
    assert await rows(hub) == {"virtual.lamp": "config"}
    assert await shown(api_client) == ["virtual.lamp"]


async def test_rows_left_from_before_the_start_are_dropped(
        config_factory: Callable[..., LoadedConfig]) -> None:
    config = config_factory(CONFIG)
    async with Hub(config) as hub:
        await hub.homekit.expose("virtual.fan")
        # what an older hub (or a deletion while this one was down) left behind
        await hub.db.write("INSERT INTO homekit_bridge(device_id, aid, source, added_at) "
                           "VALUES('virtual.gone', 40, 'api', 0)")
        await hub.db.write("INSERT INTO homekit_bridge(device_id, aid, source, added_at) "
                           "VALUES('virtual.heater', 41, 'config', 0)")  # config: dropped
    async with Hub(config) as hub:
        assert await rows(hub) == {"virtual.lamp": "config", "virtual.fan": "api"}
        assert [d["device_id"] for d in hub.homekit.exposed()] == ["virtual.lamp",
                                                                   "virtual.fan"]
