"""BTHome replay protection across restarts (issue 18.3).

bthome-ble keeps the last encryption counter only in its parser object: after a restart an
advertisement with an older counter (a replay) was accepted again. The last accepted counter
is now durable per sensor; a sensor whose counter really restarted (battery change) is shown
to the owner, and only an admin's confirmation (audited) lets its new counter in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.auth.principal import Role
from hub.config import LoadedConfig
from hub.hub import Hub
from tests.discovery.conftest import ENCRYPTED_MAC, KEY
from tests.discovery.test_bthome import send

DEVICE = "bthome.5448e68f80a5"
CONFIG = {"integrations": {"virtual": {"devices": []},
                           "bthome": {"bind_keys": {ENCRYPTED_MAC: KEY.hex()}}}}


@pytest.fixture
async def hub_config(config_factory: Callable[..., LoadedConfig]) -> dict[str, Any]:
    """A first run of the same hub: the sensor adopted, counters 10 and 11 accepted."""
    async with Hub(config_factory(CONFIG)) as first:
        send(first, ENCRYPTED_MAC, 10, temperature=20.0)
        await first.discovery.adopt("ble-5448e68f80a5")
        send(first, ENCRYPTED_MAC, 11, temperature=21.0)
        assert first.states.value(DEVICE, "temperature") == 21.0
    return CONFIG


async def test_an_older_counter_is_refused_after_a_restart(hub: Hub, api_client,
                                                            client_for) -> None:
    assert hub.integrations.instance("bthome").counters == {ENCRYPTED_MAC: 11}
    send(hub, ENCRYPTED_MAC, 5, temperature=-5.0)  # a replay, after the restart
    assert hub.states.value(DEVICE, "temperature") == 21.0  # before the fix: -5.0
    await hub.db.flush()
    history = await hub.states.history(DEVICE)
    assert -5.0 not in [h["value"] for h in history]
    # the owner sees why: on the device and on the discovered item
    device = await (await api_client.get(f"/api/devices/{DEVICE}")).json()
    [question] = device["confirmations"]
    assert question["kind"] == "counter_reset"
    assert question["details"] == {"last_accepted": 11, "seen": 5}
    listed = await (await api_client.get("/api/discovered")).json()
    item = next(d for d in listed["discovered"] if d["id"] == "ble-5448e68f80a5")
    assert item["data"]["counter"] == {"state": "went_back", "last_accepted": 11, "seen": 5}
    # a member may not confirm; nothing changes
    member = await client_for(Role.MEMBER)
    resp = await member.post(f"/api/devices/{DEVICE}/confirmations/counter_reset")
    assert resp.status == 403
    send(hub, ENCRYPTED_MAC, 6, temperature=-6.0)
    assert hub.states.value(DEVICE, "temperature") == 21.0
    # the owner confirms the battery change: audited, the new counter is accepted from now
    resp = await api_client.post(f"/api/devices/{DEVICE}/confirmations/counter_reset")
    assert resp.status == 200, await resp.text()
    [entry] = await hub.audit.entries(action="device.confirm")
    assert entry.target == DEVICE and entry.details["kind"] == "counter_reset"
    assert entry.actor == api_client.user.id
    send(hub, ENCRYPTED_MAC, 7, temperature=22.5)
    assert hub.states.value(DEVICE, "temperature") == 22.5
    assert "confirmations" not in await (await api_client.get(f"/api/devices/{DEVICE}")).json()
    resp = await api_client.post(f"/api/devices/{DEVICE}/confirmations/counter_reset")
    assert resp.status == 404  # nothing open any more
    await hub.db.flush()
    row = await hub.db.fetchone("SELECT value FROM integration_values WHERE key = ?",
                                (f"counter:{ENCRYPTED_MAC}",))
    assert row is not None and row["value"] == "7"
    # and replays of the counters before 7 are refused again
    send(hub, ENCRYPTED_MAC, 6, temperature=-6.0)
    assert hub.states.value(DEVICE, "temperature") == 22.5


async def test_forged_old_counters_do_not_ask_the_owner(hub: Hub) -> None:
    """An advertisement with an old counter that does not decrypt (no key) is just dropped."""
    send(hub, ENCRYPTED_MAC, 3, key=b"\x01" * 16, temperature=-3.0)
    assert hub.integrations.confirmations.of(DEVICE) == []
    assert hub.states.value(DEVICE, "temperature") == 21.0


async def test_erasing_the_sensor_forgets_its_counter_and_key(hub: Hub, api_client) -> None:
    resp = await api_client.post("/api/privacy/erase",
                                 json={"target": "device", "device_id": DEVICE})
    assert resp.status == 200, await resp.text()
    await hub.db.flush()
    assert await hub.db.fetchall("SELECT * FROM integration_values") == []
    assert await hub.vault.entries("device_key") == []
    assert ENCRYPTED_MAC not in hub.integrations.instance("bthome").counters


async def test_a_confirmed_reset_keeps_the_confirmed_counter_as_the_floor(
        hub: Hub, api_client) -> None:
    """Confirming a battery change accepts the counter the owner was shown, not any counter:
    an advertisement older than the confirmed one is still a replay."""
    send(hub, ENCRYPTED_MAC, 5, temperature=-5.0)  # went back: 5 < 11, asked
    resp = await api_client.post(f"/api/devices/{DEVICE}/confirmations/counter_reset")
    assert resp.status == 200, await resp.text()
    assert hub.integrations.instance("bthome").counters == {ENCRYPTED_MAC: 5}
    await hub.db.flush()
    row = await hub.db.fetchone("SELECT value FROM integration_values WHERE key = ?",
                                (f"counter:{ENCRYPTED_MAC}",))
    assert row is not None and row["value"] == "5"  # before the fix: forgotten (no row)
    send(hub, ENCRYPTED_MAC, 3, temperature=-3.0)  # older than the confirmed 5: a replay
    assert hub.states.value(DEVICE, "temperature") == 21.0  # before the fix: -3.0
    send(hub, ENCRYPTED_MAC, 6, temperature=22.0)  # the sensor going on from 5
    assert hub.states.value(DEVICE, "temperature") == 22.0


async def test_the_confirmed_floor_survives_a_restart(
        hub: Hub, config_factory: Callable[..., LoadedConfig],
        hub_config: dict[str, Any]) -> None:
    send(hub, ENCRYPTED_MAC, 5, temperature=-5.0)
    await hub.integrations.confirmations.confirm(DEVICE, "counter_reset", None)
    await hub.stop()  # confirmed, then restarted before the sensor spoke again
    async with Hub(config_factory(hub_config)) as again:
        assert again.integrations.instance("bthome").counters == {ENCRYPTED_MAC: 5}
        send(again, ENCRYPTED_MAC, 4, temperature=-4.0)  # before the fix: accepted
        assert again.states.value(DEVICE, "temperature") == 21.0
        send(again, ENCRYPTED_MAC, 7, temperature=23.0)
        assert again.states.value(DEVICE, "temperature") == 23.0
