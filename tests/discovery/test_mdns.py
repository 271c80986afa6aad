"""mDNS between a real zeroconf "device" in its own namespace and the hub, across a veth.

Add (with decoded TXT), update (TXT change), remove (goodbye) as seen through the API and
on the bus; and the hub's own `_uone-hub._tcp` advertisement as the device sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.discovery.models import (
    DeviceDiscovered,
    DiscoveryChanged,
    DiscoveryEvent,
    DiscoveryLost,
)
from hub.hub import Hub
from tests.discovery import netns
from tests.discovery.util import discovered, wait_for

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"mDNS namespace tests: {netns.unavailable()}")

DID = "uone-0011223344556677"
TXT = {"did": DID, "mac": "24:0A:C4:12:34:56", "model": "plug-eu-1", "fw": "1.4.2"}


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    async with netns.veth_lan() as lan:
        yield lan


@pytest.fixture
def hub_config(lan: netns.Lan) -> dict[str, Any]:
    return {
        "api": {"host": "0.0.0.0"},
        "discovery": {"mdns": {"enabled": True, "interfaces": [lan.hub_if], "advertise": True,
                               "hub_name": "Test Hub", "interface_check": 0.2}},
        "integrations": {"virtual": {"devices": []}, "uone": {}},
    }


async def test_device_added_updated_removed_over_a_veth(api_client, hub: Hub,
                                                        lan: netns.Lan) -> None:
    events: list[DiscoveryEvent] = []
    for etype in (DeviceDiscovered, DiscoveryChanged, DiscoveryLost):
        hub.bus.subscribe(etype, events.append)
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        reply = await device.send(op="register", name="Kitchen plug", type="_uone._tcp.local.",
                                  port=8080, txt=TXT)
        assert reply["ok"]

        async def found() -> dict[str, Any] | None:
            body = await (await api_client.get("/api/discovered?source=mdns")).json()
            return body["discovered"][0] if body["discovered"] else None

        item = await wait_for(found, within=10)
        assert item["integration"] == "uone" and item["name"] == "Kitchen plug"
        assert item["addresses"] == [lan.dev_ip] and item["port"] == 8080
        assert (item["did"], item["mac"], item["model"], item["fw"]) == (
            DID, "24:0a:c4:12:34:56", "plug-eu-1", "1.4.2")
        assert item["txt"]["did"] == DID and item["service_type"] == "_uone._tcp.local."
        assert item["present"] is True and item["state"] == "new"

        await device.send(op="update", txt={**TXT, "fw": "1.5.0"})

        async def updated() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and got["fw"] == "1.5.0"

        await wait_for(updated, within=10)
        await device.send(op="unregister")

        async def gone() -> bool:
            got = await discovered(api_client, item["id"])
            return got is not None and got["present"] is False

        await wait_for(gone, within=10)
    kinds = [e.kind for e in events if e.id == item["id"]]
    assert kinds[0] == "discovery_new" and "discovery_changed" in kinds
    assert kinds[-1] == "discovery_lost"
    health = await (await api_client.get("/api/health")).json()
    assert health["discovery"]["mdns"]["state"] == "running"
    assert health["discovery"]["mdns"]["interfaces"] == [lan.hub_if]
    assert hub.discovery.stats.mdns_removed >= 1


async def test_hub_advertises_itself_with_port_version_and_fingerprint(
    hub: Hub, lan: netns.Lan,
) -> None:
    hub.discovery.api_ready(8443, "https", "AB:CD:EF:01")
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        reply = await device.send(op="browse", type="_uone-hub._tcp.local.", timeout=8)
    assert reply["services"], "the device did not see the hub"
    svc = reply["services"][0]
    assert svc["name"] == "Test Hub._uone-hub._tcp.local."
    assert svc["port"] == 8443 and svc["addresses"] == [lan.hub_ip]
    assert svc["txt"] == {"version": hub.version, "scheme": "https", "fp": "abcdef01"}


async def test_malformed_txt_is_counted_not_listed(api_client, hub: Hub,
                                                   lan: netns.Lan) -> None:
    async with netns.mdns_device(lan.dev_ns, lan.dev_ip) as device:
        await device.send(op="register", name="Broken", type="_uone._tcp.local.", port=1,
                          txt={"did": "not-a-did", "mac": "zz"})

        async def counted() -> bool:
            return hub.discovery.stats.malformed >= 1

        await wait_for(counted, within=10)
    body = await (await api_client.get("/api/discovered")).json()
    assert body["discovered"] == []
