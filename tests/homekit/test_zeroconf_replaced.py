"""When the hub's zeroconf cannot re-bind to changed interfaces, mDNS closes it and opens a
new one; the HomeKit controller (aiohomekit's Controller) and the bridge (HAP-python's
advertiser) move to the new one instead of staying on the closed one."""

from __future__ import annotations

from typing import Any

import pytest

from hub.hub import Hub
from tests.conftest import free_port
from tests.discovery import netns
from tests.discovery.util import wait_for
from tests.homekit.conftest import PIN, accessory, phone
from tests.homekit.test_bridge import pair_phone, running
from tests.homekit.test_controller import find, pair

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"HomeKit namespace tests: {netns.unavailable()}")


@pytest.fixture
def hub_config(lan: netns.Lan) -> dict[str, Any]:
    return {
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if],
                               "interface_check": 0.2}},
        "homekit_bridge": {"enabled": True, "port": free_port(), "devices": ["virtual.lamp"]},
        "integrations": {"virtual": {"devices": [
            {"id": "lamp", "kind": "switch", "name": "Lamp"}]}, "homekit_controller": {}},
    }


async def test_controller_and_bridge_follow_a_replaced_zeroconf(
        api_client: Any, hub: Hub, lan: netns.Lan, monkeypatch: pytest.MonkeyPatch) -> None:
    await running(api_client)
    mdns = hub.discovery.mdns
    old = mdns.zc

    async def cannot_rebind(addresses: Any) -> None:
        raise OSError("cannot re-bind (test)")

    monkeypatch.setattr(old, "async_update_interfaces", cannot_rebind)
    second = lan.hub_ip.rsplit(".", 1)[0] + ".3"
    await netns.run("ip", "addr", "add", f"{second}/24", "dev", lan.hub_if)

    async def replaced() -> bool:
        return mdns.zc is not None and mdns.zc is not old

    await wait_for(replaced, within=10)
    # the controller: aiohomekit finds and pairs a new accessory through the new zeroconf
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51834) as light:
        item = await find(api_client, light.hap_id)
        resp = await pair(api_client, item, PIN)
        assert resp.status == 201, await resp.text()
    # the bridge: announced on the new zeroconf, a phone finds it and pairs
    await running(api_client)
    async with phone(lan.hub_ip) as ctl:
        pairing, _ = await pair_phone(api_client, ctl)
        accessories = await pairing.list_accessories_and_characteristics()
        assert [a["aid"] for a in accessories] == [1, 2]
        await pairing.close()


async def test_bridge_follows_a_new_address_on_the_same_zeroconf(
        api_client: Any, hub: Hub, lan: netns.Lan) -> None:
    """A second address on the interface (or a DHCP renewal): mDNS re-binds the same zeroconf,
    and the bridge's HAP server listens on, and advertises, the new address too."""
    import asyncio

    status = await running(api_client)
    mdns = hub.discovery.mdns
    old = mdns.zc
    second = lan.hub_ip.rsplit(".", 1)[0] + ".4"
    await netns.run("ip", "addr", "add", f"{second}/24", "dev", lan.hub_if)

    async def advertised() -> bool:
        driver = hub.homekit._driver
        info = driver.mdns_service_info if driver is not None else None
        return info is not None and second in info.parsed_addresses()

    await wait_for(advertised, within=10)
    assert mdns.zc is old  # re-bound, not replaced
    assert (await running(api_client))["accessory_id"] == status["accessory_id"]
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(second, hub.config.homekit_bridge.port), 5)
    writer.close()
    await writer.wait_closed()
