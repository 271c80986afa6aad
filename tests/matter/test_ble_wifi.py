"""BLE commissioning hands the device the home's Wi-Fi from the vault. There is no Bluetooth
adapter here, so the closest real path: the real server takes the credentials
(`set_wifi_credentials`, seen in its own server info), then refuses BLE commissioning for
lack of Bluetooth, and the job names that. The password is in no answer or log."""

from __future__ import annotations

import json
import logging

import aiohttp

from tests.matter.conftest import commission

PASSWORD = "correct-horse-battery-9"


async def _server_info(url: str) -> dict:
    """What the server says to a new client first (its state, from a connection of our own)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        return dict(await ws.receive_json())


async def test_ble_commissioning_gives_the_vault_wifi_then_names_the_missing_bluetooth(
        hub, server, api_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await hub.provisioning.wifi.put("HomeNet", PASSWORD, "wpa2-psk")
    assert (await _server_info(server.url))["wifi_credentials_set"] is False

    resp = await api_client.post("/api/matter/commission",
                                 json={"code": "34970112332", "ssid": "NotThere"})
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "ssid"

    job = await commission(api_client, "34970112332", ssid="HomeNet")
    assert job["state"] == "failed"
    assert job["error"]["code"] == "ble_unavailable"
    assert "Bluetooth" in job["error"]["message"]
    steps = [h["state"] for h in job["history"]]
    assert steps[:3] == ["pending", "wifi", "commissioning"]
    assert "HomeNet" in job["history"][1]["message"]

    info = await _server_info(server.url)
    assert info["wifi_credentials_set"] is True and info["bluetooth_enabled"] is False
    health = await (await api_client.get("/api/health")).json()
    assert health["integration_details"]["matter"]["server_bluetooth_enabled"] is False

    # the secret went to the server only: not in the job, the hub's log, the server's log
    assert PASSWORD not in json.dumps(job)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in server.log.read_text(errors="replace")
