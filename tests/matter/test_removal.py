"""A Matter device deleted while the server is down stays deleted: the hub keeps the removal
(durably, across a restart of the hub too) and sends it when the server is back, and never
registers the node again meanwhile, although the server still reports it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hub.auth.principal import Principal, Role
from hub.bus import DeviceRegistryChanged
from hub.config import load_config
from hub.hub import Hub
from tests.conftest import write_config
from tests.matter.conftest import commission, detail, matter_section, wait_until


def matter_of(hub: Hub):
    return hub.integrations.instance("matter")


def registrations(hub: Hub) -> tuple[list[str], Callable[[], None]]:
    """The ids of the Matter devices the hub registers from now on (and the undo)."""
    seen: list[str] = []

    def on(event: DeviceRegistryChanged) -> None:
        if event.action != "removed" and event.device_id.startswith("matter-"):
            seen.append(event.device_id)

    return seen, hub.bus.subscribe(DeviceRegistryChanged, on)


async def gone_from_the_server(hub: Hub, node_id: int) -> None:
    """The server no longer holds the node (its node list, as the hub's client has it)."""
    matter = matter_of(hub)
    await wait_until(lambda: detail(hub).get("server") == "connected", 60)
    await wait_until(lambda: matter.client is not None
                     and node_id not in [n.node_id for n in matter.client.nodes()], 60)
    await wait_until(lambda: "pending_removals" not in detail(hub))


async def test_deleted_while_the_server_is_down(hub, server, make_device, api_client) -> None:
    light = make_device("onoff")
    await light.start()
    try:
        job = await commission(api_client, light.manual_code)
        assert job["state"] == "succeeded", job
        device_id = job["device_id"]
        node_id = int(device_id.removeprefix("matter-"))

        await server.stop()
        await wait_until(lambda: detail(hub).get("server") != "connected")
        resp = await api_client.delete(f"/api/devices/{device_id}")
        assert resp.status == 204, await resp.text()
        health = await (await api_client.get("/api/health")).json()
        assert health["integration_details"]["matter"]["pending_removals"] == [node_id]

        seen, unsubscribe = registrations(hub)
        try:
            await server.start()  # same storage: the server still holds the node
            await gone_from_the_server(hub, node_id)
        finally:
            unsubscribe()
        assert seen == [] and hub.devices.find(device_id) is None
        assert hub.devices.by_integration("matter") == []
    finally:
        await light.stop()


async def test_the_removal_survives_a_restart_of_the_hub(server, make_device,
                                                         tmp_path: Path) -> None:
    """Erased while the server is down, the hub restarted before the server is back."""
    light = make_device("onoff")
    cfg = load_config(write_config(tmp_path, {"integrations": {"matter": matter_section(
        server.url, server_log=str(server.log))}}))
    await light.start()
    try:
        async with Hub(cfg) as hub:
            await wait_until(lambda: detail(hub).get("server") == "connected", 30)
            device = await matter_of(hub).commission(light.manual_code, lambda *_: None)
            node_id = int(device.id.removeprefix("matter-"))
            await server.stop()
            await wait_until(lambda: detail(hub).get("server") != "connected")
            await hub.privacy.erase_device(device.id, Principal("o", "o", Role.OWNER))
            assert hub.devices.find(device.id) is None

        async with Hub(cfg) as hub:  # the server is still down
            assert detail(hub)["pending_removals"] == [node_id]
            seen, unsubscribe = registrations(hub)
            try:
                await server.start()
                await gone_from_the_server(hub, node_id)
            finally:
                unsubscribe()
            assert seen == [] and hub.devices.find(device.id) is None
    finally:
        await light.stop()



async def test_deleted_while_matter_was_not_loaded(server, make_device, tmp_path: Path) -> None:
    """Erased while the hub ran without the Matter integration (forget_device never ran): when
    Matter is loaded again the node leaves the fabric and is never registered again."""
    light = make_device("onoff")
    with_matter = load_config(write_config(tmp_path, {"integrations": {"matter": matter_section(
        server.url, server_log=str(server.log))}}))
    await light.start()
    try:
        async with Hub(with_matter) as hub:
            await wait_until(lambda: detail(hub).get("server") == "connected", 30)
            device = await matter_of(hub).commission(light.manual_code, lambda *_: None)
            node_id = int(device.id.removeprefix("matter-"))

        without = load_config(write_config(tmp_path, {"integrations": {}}))
        async with Hub(without) as hub:
            assert hub.integrations.instance("matter") is None
            assert hub.devices.find(device.id) is not None
            await hub.privacy.erase_device(device.id, Principal("o", "o", Role.OWNER))
            assert hub.devices.find(device.id) is None

        async with Hub(with_matter) as hub:
            seen, unsubscribe = registrations(hub)
            try:
                await gone_from_the_server(hub, node_id)
            finally:
                unsubscribe()
            assert seen == [] and hub.devices.find(device.id) is None
            assert hub.devices.by_integration("matter") == []
    finally:
        await light.stop()
