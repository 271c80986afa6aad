"""BTHome specifics: wrong or missing bind keys, keys never shown, replayed counters."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hub.hub import Hub
from tests.discovery import bthome_adv as adv
from tests.discovery.conftest import ENCRYPTED_MAC, KEY

WRONG_MAC = "54:48:E6:8F:80:B0"
NO_KEY_MAC = "54:48:E6:8F:80:B1"


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"integrations": {"virtual": {"devices": []}, "bthome": {"bind_keys": {
        ENCRYPTED_MAC: KEY.hex(), WRONG_MAC: "00" * 16}}}}


def send(hub: Hub, mac: str, counter: int, key: bytes = KEY, **values: Any) -> None:
    data = adv.encrypted(adv.objects(packet_id=counter, **values), mac, key, counter)
    hub.discovery.handle_advertisement(mac, None, -60, (), {adv.BTHOME_UUID: data}, {})


async def test_wrong_and_missing_keys_are_shown_and_give_no_readings(
    api_client, hub: Hub, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    send(hub, WRONG_MAC, 1, temperature=30.0)
    send(hub, NO_KEY_MAC, 1, temperature=31.0)
    body = await (await api_client.get("/api/discovered")).json()
    by_id = {d["id"]: d for d in body["discovered"]}
    wrong, missing = by_id["ble-5448e68f80b0"], by_id["ble-5448e68f80b1"]
    assert wrong["data"]["encrypted"] and wrong["data"]["bind_key"] == "not verified"
    assert missing["data"]["bind_key"] == "missing"
    assert wrong["data"]["sensors"] == [] and missing["data"]["sensors"] == []
    resp = await api_client.post("/api/discovered/ble-5448e68f80b0/adopt")
    assert resp.status == 201
    send(hub, WRONG_MAC, 2, temperature=30.5)
    assert hub.states.get("bthome.5448e68f80b0") == {}
    # the keys appear nowhere: not in API answers, not in the logs
    text = await (await api_client.get("/api/discovered")).text()
    text += await (await api_client.get("/api/health")).text()
    for key in (KEY.hex(), "00" * 16):
        assert key not in text
        assert all(key not in r.getMessage() for r in caplog.records)


async def test_replayed_encrypted_advertisement_is_not_applied(hub: Hub) -> None:
    send(hub, ENCRYPTED_MAC, 10, temperature=20.0)
    await hub.discovery.adopt("ble-5448e68f80a5")
    send(hub, ENCRYPTED_MAC, 11, temperature=21.0)
    assert hub.states.value("bthome.5448e68f80a5", "temperature") == 21.0
    send(hub, ENCRYPTED_MAC, 5, temperature=-5.0)  # an old counter: a replay
    assert hub.states.value("bthome.5448e68f80a5", "temperature") == 21.0


async def test_bad_bind_keys_are_reported_without_echoing_them(
    config_factory, caplog: pytest.LogCaptureFixture, tmp_path,
) -> None:
    from hub.errors import ConfigError

    secretish = "zz" + "1" * 30
    caplog.set_level(logging.DEBUG)
    async with Hub(config_factory({"integrations": {"virtual": {"devices": []},
                                   "bthome": {"bind_keys": {WRONG_MAC: secretish}}}})) as hub:
        assert hub.integrations.loaded("bthome")
    assert any("not 32 hex digits" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as err:
        config_factory({"integrations": {"bthome": {"bind_keys": {WRONG_MAC: "abc123"}}}})
    assert "abc123" not in str(err.value)
    assert all(secretish not in r.getMessage() for r in caplog.records)


async def test_bind_keys_move_from_the_config_into_the_vault(config_factory, tmp_path) -> None:
    from tests.discovery.conftest import ble_config

    cfg = ble_config()
    cfg["discovery"]["ble"]["enabled"] = False
    async with Hub(config_factory(cfg)) as hub:
        names = [e.name for e in await hub.vault.entries("device_key")]
        assert names == [f"bthome:bind_key:{ENCRYPTED_MAC}"]
        assert hub.integrations.instance("bthome").keys[ENCRYPTED_MAC] == KEY
        await hub.db.checkpoint()
    data = tmp_path / "data"
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("hub.db"))
    assert KEY.hex().encode() not in stored and KEY not in stored  # encrypted at rest
    # the owner removes the key from the file: the hub still has it, from the vault
    cfg["integrations"]["bthome"] = {}
    async with Hub(config_factory(cfg)) as hub:
        assert hub.integrations.instance("bthome").keys[ENCRYPTED_MAC] == KEY
