"""An ESPHome Bluetooth proxy as a remote BLE source of the hub's one pipeline.

The proxy streams raw advertisements (address as an integer, RSSI, the advertising data
bytes) in batches over the native API; each is parsed with bluetooth-data-tools (the parser
habluetooth and bleak-esphome use) and fed to the hub's pipeline under the proxy's name, where
matching, deduplication across sources and the best-signal choice happen once for all
sources. Free connection slots are reported to health.

Why not bleak-esphome's scanner: it is a habluetooth `BaseHaRemoteScanner`, which delivers
to habluetooth's process-wide `BluetoothManager` (its own adapters, its own dedupe and
history): that would be a second BLE pipeline beside the hub's, not a source of it.
"""

from __future__ import annotations

from typing import Any

from bluetooth_data_tools import int_to_bluetooth_address, parse_advertisement_data_bytes

from hub.facade import IntegrationContext

MAX_BATCH = 512  # a proxy sends up to 16 per message; more is junk or a flood


class ProxySource:
    """Feeds one proxy's advertisement batches into the pipeline (via the BleSource)."""

    def __init__(self, ctx: IntegrationContext, source: Any) -> None:
        self.ctx = ctx
        self.source = source  # hub.discovery.sources.BleSource
        self.batches = 0

    def on_raw_advertisements(self, response: Any) -> None:
        """aioesphomeapi callback: a BluetoothLERawAdvertisementsResponse."""
        self.batches += 1
        advertisements = response.advertisements
        if len(advertisements) > MAX_BATCH:
            self.ctx.report_malformed("BLE proxy batch", f"{len(advertisements)} entries")
            advertisements = advertisements[:MAX_BATCH]
        feed = self.source.advertisement
        for adv in advertisements:
            try:
                name, uuids, service_data, manufacturer_data, tx_power = (
                    parse_advertisement_data_bytes(adv.data))
                address = int_to_bluetooth_address(adv.address)
            except Exception as exc:  # a proxy's junk must not take the connection down
                self.ctx.report_malformed("proxied advertisement", type(exc).__name__)
                continue
            rssi = adv.rssi if -127 <= adv.rssi <= 20 else -127
            feed(address, name or None, rssi, tuple(u.lower() for u in uuids),
                 dict(service_data), dict(manufacturer_data), tx_power)

    def on_connections_free(self, free: int, limit: int, allocated: list[int]) -> None:
        self.source.set_slots(free, limit)
