"""The fake BlueZ proven against real bleak: scanning, then connect/read/write/notify."""

from __future__ import annotations

import asyncio

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from tests.doubles.bluez import FakeBlueZ

IMPROV_SERVICE = "00467768-6228-2272-4663-277478268000"
STATE_CHAR = "00467768-6228-2272-4663-277478268001"
RPC_CHAR = "00467768-6228-2272-4663-277478268003"
RESULT_CHAR = "00467768-6228-2272-4663-277478268004"
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"


async def test_bleak_scan_sees_name_rssi_service_and_manufacturer_data(
    fake_bluez: FakeBlueZ,
) -> None:
    seen: asyncio.Queue[tuple[BLEDevice, AdvertisementData]] = asyncio.Queue()
    async with BleakScanner(lambda d, a: seen.put_nowait((d, a))):
        await fake_bluez.add_le_device(
            "A4:C1:38:00:00:01", "Sensor", rssi=-42,
            manufacturer_data={0x004C: b"\x01\x02"},
            service_data={BTHOME: b"\x40\x02\xc4\x09"},
            service_uuids=[IMPROV_SERVICE])
        device, adv = await asyncio.wait_for(seen.get(), 5)
        while not adv.service_data:  # the first report may precede the advert update
            device, adv = await asyncio.wait_for(seen.get(), 5)
    assert device.address == "A4:C1:38:00:00:01"
    assert adv.local_name == "Sensor"
    assert adv.rssi == -42
    assert adv.manufacturer_data == {0x004C: b"\x01\x02"}
    assert adv.service_data == {BTHOME: b"\x40\x02\xc4\x09"}
    assert adv.service_uuids == [IMPROV_SERVICE]


async def test_periodic_advertise_repeats_and_updates_reach_bleak(fake_bluez: FakeBlueZ) -> None:
    path = await fake_bluez.add_le_device("A4:C1:38:00:00:02", "", rssi=-70,
                                          service_data={BTHOME: b"\x40\x01\x50"})
    reports: list[AdvertisementData] = []
    async with BleakScanner(lambda d, a: reports.append(a)):
        await asyncio.sleep(0.35)
        assert len(reports) >= 2, "Advertise() every 100 ms should repeat the advert"
        await fake_bluez.set_advertisement(path, rssi=-55, service_data={BTHOME: b"\x40\x01\x51"})
        await asyncio.sleep(0.15)
    assert reports[-1].rssi == -55 and reports[-1].service_data[BTHOME] == b"\x40\x01\x51"
    assert reports[-1].local_name is None


async def test_bleak_client_connects_reads_writes_and_gets_notifications(
    fake_bluez: FakeBlueZ,
) -> None:
    device = await fake_bluez.add_le_device("A4:C1:38:00:00:03", "Improv-Dev",
                                            service_uuids=[IMPROV_SERVICE])
    service = await fake_bluez.add_gatt_service(device, IMPROV_SERVICE)
    state = await fake_bluez.add_gatt_characteristic(service, STATE_CHAR, ["read", "notify"],
                                                     b"\x02")
    rpc = await fake_bluez.add_gatt_characteristic(service, RPC_CHAR, ["write"])
    result = await fake_bluez.add_gatt_characteristic(service, RESULT_CHAR, ["read", "notify"])
    writes = await fake_bluez.method_calls(rpc)

    found = await BleakScanner.find_device_by_address("A4:C1:38:00:00:03", timeout=5)
    assert found is not None
    notes: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    async with BleakClient(found) as client:
        assert client.is_connected
        assert {s.uuid for s in client.services} == {IMPROV_SERVICE}
        assert await client.read_gatt_char(STATE_CHAR) == b"\x02"
        await client.start_notify(STATE_CHAR, lambda c, d: notes.put_nowait((c.uuid, bytes(d))))
        await client.start_notify(RESULT_CHAR, lambda c, d: notes.put_nowait((c.uuid, bytes(d))))
        await client.write_gatt_char(RPC_CHAR, b"\x01\x02ab", response=True)
        name, args = await asyncio.wait_for(writes.get(), 5)
        assert name == "WriteValue" and args[0] == b"\x01\x02ab"
        assert await fake_bluez.value(rpc) == b"\x01\x02ab"
        # the test plays the peripheral: answer the RPC with notifications
        await fake_bluez.notify(state, b"\x03")
        await fake_bluez.notify(result, b"\x01\x00")
        got = [await asyncio.wait_for(notes.get(), 5) for _ in range(2)]
        assert got == [(STATE_CHAR, b"\x03"), (RESULT_CHAR, b"\x01\x00")]
    assert not client.is_connected


async def test_adapter_removal_and_return_are_visible(fake_bluez: FakeBlueZ) -> None:
    await fake_bluez.add_le_device("A4:C1:38:00:00:04", "X")
    await fake_bluez.remove_adapter()
    assert await fake_bluez.advertise() == 0  # no adapter: nothing is heard
    assert await fake_bluez.add_adapter() == "/org/bluez/hci0"
    assert await fake_bluez.advertise() == 1
