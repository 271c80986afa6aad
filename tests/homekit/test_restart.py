"""Both pairings survive a hub restart: they live in the vault, not in files. The paired
accessory is reconnected from the stored keys; the paired phone still reaches the bridge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.config import LoadedConfig
from hub.hub import Hub
from tests.conftest import free_port
from tests.discovery import netns
from tests.discovery.util import wait_for
from tests.homekit.conftest import PIN, accessory, phone

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"HomeKit namespace tests: {netns.unavailable()}")


async def test_pairings_survive_a_restart(config_factory: Callable[..., LoadedConfig],
                                          lan: netns.Lan) -> None:
    config = config_factory({
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if],
                               "interface_check": 0.2}},
        "homekit_bridge": {"enabled": True, "port": free_port(), "devices": ["virtual.lamp"]},
        "integrations": {"virtual": {"devices": [{"id": "lamp", "kind": "switch"}]},
                         "homekit_controller": {}},
    })
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51831) as light, \
            phone(lan.hub_ip) as ctl:
        device_id = "homekit." + light.hap_id.replace(":", "")
        async with Hub(config) as hub:
            controller = hub.integrations.instance("homekit_controller")

            async def listed() -> Any:
                return next((d for d in hub.discovery.registry
                             if d.data.get("hap_id") == light.hap_id), None)

            item = await wait_for(listed, within=20, every=0.1)
            await wait_for(lambda: _true(controller.ready.is_set()), within=10)
            await hub.discovery.adopt(item.id, credentials={"setup_code": PIN})
            await wait_for(lambda: _true(hub.homekit.state == "running"), within=20)
            status = hub.homekit.status()
            discovery = await ctl.async_find(status["accessory_id"], timeout=20)
            finish = await discovery.async_start_pairing("phone")
            pairing = await finish(status["setup_code"])
            await wait_for(lambda: _saved(hub), within=10)
            await pairing.close()
        async with Hub(config) as hub:
            # the accessory: reconnected with the stored keys, commands work
            await wait_for(lambda: _true(hub.states.available(device_id)), within=30,
                           every=0.1)
            await hub.integrations.command(device_id, "set_brightness", {"brightness": 12})
            assert ["Brightness", 12] in (await light.send(op="writes"))["writes"]
            # the phone: same bridge identity, same setup code, its pairing still valid
            await wait_for(lambda: _true(hub.homekit.state == "running"), within=20)
            assert hub.homekit.status()["accessory_id"] == status["accessory_id"]
            assert hub.homekit.status()["setup_code"] == status["setup_code"]
            again = ctl.load_pairing("phone-again", dict(pairing.pairing_data))
            accessories = await again.list_accessories_and_characteristics()
            assert [a["aid"] for a in accessories] == [1, 2]
            await again.close()


async def _true(value: bool) -> bool:
    return value


async def _saved(hub: Hub) -> bool:
    return bool((await hub.vault.get("homekit", "bridge"))["paired"])
