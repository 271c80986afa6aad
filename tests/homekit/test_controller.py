"""The hub's HomeKit controller (aiohomekit) against HAP-python accessories in a device
namespace across a veth: discover, pair with the setup code, read, write, events, unpair;
a wrong code, an accessory that dies mid-pairing, malformed values from an accessory."""

from __future__ import annotations

from typing import Any

import pytest

from hub.bus import DeviceEvent
from hub.hub import Hub
from tests.discovery import netns
from tests.discovery.util import wait_for
from tests.homekit.conftest import PIN, accessory

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"HomeKit namespace tests: {netns.unavailable()}")


async def find(api_client: Any, hap_id: str) -> dict[str, Any]:
    async def listed() -> dict[str, Any] | None:
        body = await (await api_client.get("/api/discovered?source=mdns")).json()
        return next((d for d in body["discovered"]
                     if d["integration"] == "homekit_controller"
                     and d["data"].get("hap_id") == hap_id), None)

    return await wait_for(listed, within=20, every=0.1)


async def pair(api_client: Any, item: dict[str, Any], code: str = PIN) -> Any:
    return await api_client.post(f"/api/discovered/{item['id']}/adopt",
                                 json={"name": "Lamp", "credentials": {"setup_code": code}})


async def state_of(hub: Hub, device_id: str, attr: str, want: Any) -> bool:
    return hub.states.value(device_id, attr) == want


async def test_light_discover_pair_read_write_events_unpair(api_client: Any, hub: Hub,
                                                            lan: netns.Lan) -> None:
    # aiohomekit needs browsers for both HAP types on the zeroconf it is given: the hub's one
    browsing = hub.discovery.health()["mdns"]["browsing"]
    assert {"_hap._tcp.local.", "_hap._udp.local."} <= set(browsing)
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51826) as light:
        item = await find(api_client, light.hap_id)
        assert item["data"]["paired"] is False and item["state"] == "new"
        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        device = (await resp.json())["device"]
        device_id = device["id"]
        assert device_id == "homekit." + light.hap_id.replace(":", "")
        assert {"on", "brightness", "color_temp", "hue", "saturation"} <= set(
            device["attributes"])
        names = {c["name"] for c in device["commands"]}
        assert {"turn_on", "turn_off", "toggle", "set_brightness", "set_color_temp",
                "set_hue_saturation"} <= names
        assert (await light.send(op="paired"))["paired"] is True
        # pairing keys are in the vault, never in the API answer
        assert "iOSDeviceLTSK" not in await resp.text()
        entries = await hub.vault.entries("device_key")
        assert [e.name for e in entries] == [f"homekit_controller:{light.hap_id}"]
        secret = await hub.vault.get("device_key", entries[0].name)
        assert secret["AccessoryPairingID"].lower() == light.hap_id

        # read: the accessory's values are the hub's state
        await wait_for(lambda: state_of(hub, device_id, "on", False), within=10)
        assert hub.states.value(device_id, "brightness") == (
            await light.send(op="get", char="Brightness"))["value"]

        # write: a hub command reaches the accessory, then the hub's state
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "set_brightness",
                                           "params": {"brightness": 42}})
        assert resp.status == 200, await resp.text()
        assert ["Brightness", 42] in (await light.send(op="writes"))["writes"]
        assert hub.states.value(device_id, "brightness") == 42
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "toggle"})
        assert resp.status == 200
        assert (await light.send(op="get", char="On"))["value"] is True

        # out of the characteristic's range: 400 naming the field, nothing sent
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "set_brightness",
                                           "params": {"brightness": 250}})
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "params.brightness"
        assert ["Brightness", 250] not in (await light.send(op="writes"))["writes"]

        # events: a change on the device reaches the hub
        await light.send(op="set", char="Brightness", value=77)
        await wait_for(lambda: state_of(hub, device_id, "brightness", 77), within=10)

        # malformed values from the accessory are refused, state keeps the last good one
        before = hub.discovery.stats.malformed
        await light.send(op="raw", char="Brightness", value=1000)
        await light.send(op="raw", char="Hue", value="purple")
        await light.send(op="set", char="Saturation", value=12)
        await wait_for(lambda: state_of(hub, device_id, "saturation", 12), within=10)
        assert hub.states.value(device_id, "brightness") == 77
        assert hub.discovery.stats.malformed >= before + 2

        # remove the device: the accessory is unpaired, the keys are gone
        resp = await api_client.delete(f"/api/devices/{device_id}")
        assert resp.status == 204
        assert (await light.send(op="paired"))["paired"] is False
        assert await hub.vault.entries("device_key") == []
        # ... so it can be paired again at once
        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        assert (await light.send(op="paired"))["paired"] is True


async def test_wrong_code_then_right_code(api_client: Any, hub: Hub, lan: netns.Lan) -> None:
    async with accessory(lan.dev_ns, lan.dev_ip, "thermostat", 51827) as thermo:
        item = await find(api_client, thermo.hap_id)
        resp = await pair(api_client, item, "123-45-679")
        assert resp.status == 400
        body = await resp.json()
        assert body["error"]["field"] == "credentials.setup_code"
        assert "refused this setup code" in str(body)
        got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
        assert "refused this setup code" in got["data"]["error"]
        assert got["state"] == "new" and await hub.vault.entries("device_key") == []
        # a malformed code never reaches the accessory
        resp = await pair(api_client, item, "12-34")
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "credentials.setup_code"

        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        device_id = (await resp.json())["device"]["id"]
        got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
        assert "error" not in got["data"]
        await wait_for(lambda: state_of(hub, device_id, "temperature", 20.5), within=10)
        assert hub.states.value(device_id, "target_temperature") == 21.0
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "set_hvac_mode",
                                           "params": {"mode": "heat"}})
        assert resp.status == 200, await resp.text()
        assert ["TargetHeatingCoolingState", 1] in (await thermo.send(op="writes"))["writes"]
        resp = await api_client.post(f"/api/devices/{device_id}/commands",
                                     json={"command": "set_hvac_mode",
                                           "params": {"mode": "sauna"}})
        assert resp.status == 400 and (await resp.json())["error"]["field"] == "params.mode"
        await thermo.send(op="set", char="CurrentTemperature", value=18.0)
        await wait_for(lambda: state_of(hub, device_id, "temperature", 18.0), within=10)


async def test_outlet_button_events_and_reconnect(api_client: Any, hub: Hub,
                                                  lan: netns.Lan, tmp_path: Any) -> None:
    statedir = str(tmp_path)
    async with accessory(lan.dev_ns, lan.dev_ip, "outlet", 51828,
                         statedir=statedir) as outlet:
        item = await find(api_client, outlet.hap_id)
        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        device = (await resp.json())["device"]
        device_id = device["id"]
        assert device["events"] == ["button"]
        assert {"on", "in_use"} <= set(device["attributes"])
        await wait_for(lambda: state_of(hub, device_id, "on", False), within=10)
        events: list[DeviceEvent] = []
        hub.bus.subscribe(DeviceEvent, events.append)

        async def pressed() -> list[DeviceEvent]:
            return [e for e in events if e.device_id == device_id]

        await outlet.send(op="press", value=2)
        got = await wait_for(pressed, within=10)
        assert got[0].event_type == "button" and got[0].data == {"press": "long"}
    # the accessory went away: the device becomes unavailable
    await wait_for(lambda: _unavailable(hub, device_id), within=15)
    async with accessory(lan.dev_ns, lan.dev_ip, "outlet", 51828, statedir=statedir) as back:
        assert back.hap_id == outlet.hap_id  # same identity, same pairing
        await wait_for(lambda: _available(hub, device_id), within=60, every=0.2)
        await back.send(op="set", char="On", value=True)
        await wait_for(lambda: state_of(hub, device_id, "on", True), within=10)


async def test_accessory_dropping_mid_pairing(api_client: Any, hub: Hub,
                                              lan: netns.Lan) -> None:
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51829, "drop_on_pair") as light:
        item = await find(api_client, light.hap_id)
        resp = await pair(api_client, item)
        assert resp.status == 503, await resp.text()
        got = await (await api_client.get(f"/api/discovered/{item['id']}")).json()
        assert "dropped" in got["data"]["error"] or "within" in got["data"]["error"]
        assert got["state"] == "new"
        assert await hub.vault.entries("device_key") == []
        assert [d for d in hub.devices if d.integration == "homekit_controller"] == []


# the hub's own SRP secrets (aiohomekit's `a`), one per pair-setup, against the double's
# fixed ones (hap_accessory.py: STOCK_SALT, SHORT_B, STOCK_B)
HUB_A = [0xD5A54DA55FD05036A6058606CAFB7109, 0x4B3C741CCF737FAB8EFDAAC8D6870CC0]
WRONG = "123-45-679"


def _stock_exchange(b: int, a: int, code: str) -> tuple[bool, Any]:
    """Stock HAP-python (the double's stock_srp) against aiohomekit: (accepted, client)."""
    import hashlib

    from aiohomekit.crypto.srp import SrpClient
    from pyhap.hsrp import Server
    from pyhap.params import get_srp_context
    from pyhap.util import long_to_bytes

    from tests.homekit.hap_accessory import STOCK_SALT

    server = Server(get_srp_context(3072, hashlib.sha512, 16), b"Pair-Setup", PIN.encode(),
                    s=STOCK_SALT, b=b)
    salt, big_b = server.get_challenge()
    client = SrpClient("Pair-Setup", code)
    client.a = a
    client.A = pow(client.g, a, client.n)
    client.A_b = client.A.to_bytes(384, "big")
    client.set_salt(bytearray(salt))
    client.set_server_public_key(long_to_bytes(big_b))
    server.set_A(client.get_public_key_bytes())
    return server.verify(client.get_proof_bytes()) is not None, client


def test_srp_values_of_the_double() -> None:
    """What the two tests below rely on, computed here (no namespace, no randomness)."""
    from hub.thirdparty import srp_padding_could_matter
    from tests.homekit.hap_accessory import SHORT_B, STOCK_B

    ok, client = _stock_exchange(SHORT_B, HUB_A[0], PIN)  # right code, B sent short
    assert not ok and len(client.B_b) == 383 and srp_padding_could_matter(client)
    ok, client = _stock_exchange(STOCK_B[0], HUB_A[0], WRONG)  # wrong code, nothing short
    assert not ok and not srp_padding_could_matter(client)
    assert _stock_exchange(STOCK_B[0], HUB_A[1], PIN)[0]
    assert _stock_exchange(STOCK_B[1], HUB_A[1], PIN)[0]


@pytest.fixture
def hub_secrets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """aiohomekit's pair-setup secret `a` taken from HUB_A, in order."""
    from aiohomekit.crypto.srp import SrpClient

    secrets = list(HUB_A)
    monkeypatch.setattr(SrpClient, "generate_private_key", staticmethod(
        lambda: secrets.pop(0)))
    return secrets


async def test_right_code_refused_for_padding_is_tried_again(
        api_client: Any, hub: Hub, lan: netns.Lan, hub_secrets: list[int]) -> None:
    """A stock HAP-python accessory whose B has a leading zero byte: it sends B short and
    refuses the right code; the hub sees that padding could explain it and tries again."""
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51832, "stock_srp",
                         "short_b_first") as light:
        item = await find(api_client, light.hap_id)
        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        assert (await light.send(op="refused"))["refused"] == 1
        assert hub.integrations.instance("homekit_controller").srp_retries == 1
        assert hub_secrets == []


async def test_wrong_code_counts_once_on_a_stock_accessory(
        api_client: Any, hub: Hub, lan: netns.Lan, hub_secrets: list[int]) -> None:
    """A wrong code where padding cannot be the reason is not tried again: one guess
    towards the accessory's lockout (HAP-python locks pair-setup after 5)."""
    async with accessory(lan.dev_ns, lan.dev_ip, "light", 51833, "stock_srp") as light:
        item = await find(api_client, light.hap_id)
        resp = await pair(api_client, item, WRONG)
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "credentials.setup_code"
        assert (await light.send(op="refused"))["refused"] == 1
        assert hub.integrations.instance("homekit_controller").srp_retries == 0
        resp = await pair(api_client, item)
        assert resp.status == 201, await resp.text()
        assert (await light.send(op="refused"))["refused"] == 1


async def _unavailable(hub: Hub, device_id: str) -> bool:
    return not hub.states.available(device_id)


async def _available(hub: Hub, device_id: str) -> bool:
    return hub.states.available(device_id)
