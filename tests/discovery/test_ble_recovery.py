"""BLE that is missing or breaks: one warning, the hub runs, recovery by itself, health."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from hub.hub import Hub
from tests.discovery import bthome_adv as adv
from tests.discovery.conftest import ble_config
from tests.discovery.util import discovered, wait_for
from tests.doubles.bluez import FakeBlueZ

MAC = "A4:C1:38:00:00:09"
BLE_LOG = "hub.discovery.ble"


def _all(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records of the setup phase (the hub starts there) and of the test itself."""
    return [*caplog.get_records("setup"), *caplog.records]


def _records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in _all(caplog)
            if r.name == BLE_LOG and r.levelno == level and text in r.getMessage()]


async def _state(hub: Hub, state: str) -> bool:
    return hub.discovery.ble is not None and hub.discovery.ble.state == state


class TestNoDbus:
    @pytest.fixture
    def hub_config(self, tmp_path, monkeypatch) -> dict[str, Any]:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
        return ble_config()

    async def test_one_warning_ble_off_everything_else_runs(
        self, api_client, hub: Hub, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger=BLE_LOG)
        await wait_for(lambda: _state(hub, "unavailable"))
        await asyncio.sleep(0.8)  # several retries with restart_min 0.1 s
        warnings = [r for r in _all(caplog) if r.name == BLE_LOG
                    and r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "BLE is off" in warnings[0].getMessage()
        assert "D-Bus" in warnings[0].getMessage()
        health = await (await api_client.get("/api/health")).json()
        assert health["discovery"]["ble"]["state"] == "unavailable"
        assert "D-Bus" in health["discovery"]["ble"]["reason"]
        assert (await api_client.get("/api/devices")).status == 200
        assert hub.integrations.loaded("bthome")


class TestAdapter:
    @pytest.fixture
    def hub_config(self, fake_bluez: FakeBlueZ) -> dict[str, Any]:
        return ble_config(unavailable_after=0.6, stall_after=30.0)

    async def test_no_adapter_then_it_appears(self, fake_bluez: FakeBlueZ,
                                              caplog: pytest.LogCaptureFixture,
                                              config_factory, hub_config) -> None:
        caplog.set_level(logging.INFO, logger=BLE_LOG)
        await fake_bluez.remove_adapter()
        async with Hub(config_factory(hub_config)) as hub:
            await wait_for(lambda: _state(hub, "unavailable"))
            assert "no Bluetooth adapter" in hub.discovery.ble.reason
            await fake_bluez.add_adapter()
            await wait_for(lambda: _state(hub, "scanning"), within=5)
        assert len(_records(caplog, logging.WARNING, "BLE is off")) == 1
        assert len(_records(caplog, logging.INFO, "BLE is available")) == 1

    async def test_adapter_lost_at_runtime_comes_back_logging_once_each(
        self, api_client, hub: Hub, fake_bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger=BLE_LOG)
        await wait_for(lambda: _state(hub, "scanning"))
        path = await fake_bluez.add_le_device(MAC, "S", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, temperature=20.0))})
        await wait_for(lambda: discovered(api_client, "ble-a4c138000009"))
        await fake_bluez.remove_adapter()
        await wait_for(lambda: _state(hub, "recovering"))
        await asyncio.sleep(0.6)  # a few failed restarts: not logged again
        health = await (await api_client.get("/api/health")).json()
        assert health["discovery"]["ble"]["state"] == "recovering"
        assert health["discovery"]["ble"]["reason"]
        await fake_bluez.add_adapter()
        await wait_for(lambda: _state(hub, "scanning"), within=5)
        # advertisements flow again after the recovery
        before = hub.discovery.stats.dispatched
        await fake_bluez.set_advertisement(path, service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=2, temperature=20.5))})

        async def dispatched() -> bool:
            return hub.discovery.stats.dispatched > before

        await wait_for(dispatched)
        assert len(_records(caplog, logging.WARNING, "lost")) == 1
        assert len(_records(caplog, logging.INFO, "recovered")) == 1
        assert hub.discovery.ble.losses == 1

    async def test_silent_device_becomes_unavailable_and_comes_back(
        self, api_client, hub: Hub, fake_bluez: FakeBlueZ,
    ) -> None:
        await fake_bluez.add_le_device(MAC, "S", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, humidity=50.0))})
        await wait_for(lambda: discovered(api_client, "ble-a4c138000009"))
        resp = await api_client.post("/api/discovered/ble-a4c138000009/adopt")
        assert resp.status == 201
        device_id = (await resp.json())["device"]["id"]

        async def available(value: bool) -> bool:
            body = await (await api_client.get(f"/api/devices/{device_id}")).json()
            return body["available"] is value

        assert await available(True)
        fake_bluez.advertising = False
        await wait_for(lambda: available(False), within=5)
        item = await discovered(api_client, "ble-a4c138000009")
        assert item is not None and item["present"] is False
        fake_bluez.advertising = True
        await wait_for(lambda: available(True), within=5)


class TestStall:
    @pytest.fixture
    def hub_config(self, fake_bluez: FakeBlueZ) -> dict[str, Any]:
        return ble_config(stall_after=0.5)

    async def test_scanner_that_stops_delivering_is_restarted(
        self, hub: Hub, fake_bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger=BLE_LOG)
        await fake_bluez.add_le_device(MAC, "S", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, battery=3))})

        async def heard() -> bool:
            return hub.discovery.stats.advertisements > 0

        await wait_for(heard)
        fake_bluez.advertising = False
        scanner = hub.discovery.ble

        async def restarted() -> bool:
            return scanner.restarts >= 2

        await wait_for(restarted, within=8)
        fake_bluez.advertising = True

        async def recovered() -> bool:
            return bool(_records(caplog, logging.INFO, "recovered"))

        await wait_for(recovered, within=5)
        assert len(_records(caplog, logging.WARNING, "no advertisements")) == 1
        assert len(_records(caplog, logging.INFO, "recovered")) == 1


class TestConfiguredAdapter:
    @pytest.fixture
    def hub_config(self, fake_bluez: FakeBlueZ) -> dict[str, Any]:
        return ble_config(adapter="hci1")

    async def test_scans_on_the_configured_adapter_only(
        self, api_client, hub: Hub, fake_bluez: FakeBlueZ,
    ) -> None:
        await wait_for(lambda: _state(hub, "unavailable"))
        assert "hci1" in hub.discovery.ble.reason  # hci0 exists but was not asked for
        await fake_bluez.add_le_device("A4:C1:38:00:00:71", "on hci0", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, battery=1))})
        await fake_bluez.add_adapter("hci1")
        await wait_for(lambda: _state(hub, "scanning"), within=5)
        assert hub.discovery.ble.adapter == "hci1"
        fake_bluez.adapter = "hci1"
        await fake_bluez.add_le_device("A4:C1:38:00:00:72", "on hci1", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, battery=2))})
        await wait_for(lambda: discovered(api_client, "ble-a4c138000072"))
        assert await discovered(api_client, "ble-a4c138000071") is None


class TestBluetoothdRestart:
    @pytest.fixture
    def hub_config(self, fake_bluez: FakeBlueZ) -> dict[str, Any]:
        return ble_config()

    async def test_bluetoothd_restart_is_noticed_and_scanning_resumes(
        self, api_client, hub: Hub, fake_bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger=BLE_LOG)
        await wait_for(lambda: _state(hub, "scanning"))
        await fake_bluez.restart_bluez(down_for=0.3)
        await wait_for(lambda: _restarted(hub), within=5)
        await wait_for(lambda: _state(hub, "scanning"), within=5)
        await fake_bluez.add_le_device(MAC, "S", service_data={
            adv.BTHOME_UUID: adv.plain(adv.objects(packet_id=1, temperature=20.0))})
        await wait_for(lambda: discovered(api_client, "ble-a4c138000009"))
        lost = _records(caplog, logging.WARNING, "lost")
        assert len(lost) == 1 and "bluetoothd stopped" in lost[0]
        assert len(_records(caplog, logging.INFO, "recovered")) == 1


async def _restarted(hub: Hub) -> bool:
    return hub.discovery.ble.losses >= 1
