"""Improv Wi-Fi over BLE: find devices that wait for Wi-Fi, and in which state.

The state comes from the Improv service data (state, capabilities), parsed with
py-improv-ble-client. Improv sends the Wi-Fi password in clear over BLE, protected only by
the device's "press the button" authorization: provisioning must say so to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.facade import BleAdvertisement, Device, DiscoveryInfo, IntegrationContext

SERVICE_UUID = "00467768-6228-2272-4663-277478268000"
SERVICE_DATA_UUID = "00004677-0000-1000-8000-00805f9b34fb"
_STATES = {1: "authorization_required", 2: "authorized", 3: "provisioning",
           4: "provisioned", 0xFF: "disconnected"}
_CAPABILITIES = {1: "identify", 2: "device_info", 4: "scan_wifi", 8: "hostname"}


def create() -> ImprovIntegration:
    return ImprovIntegration()


def parse_service_data(data: bytes) -> dict[str, Any]:
    """State and capabilities from Improv service data; ValueError if malformed."""
    from improv_ble_client import ImprovServiceData
    from improv_ble_client.errors import InvalidCommand

    try:
        parsed = ImprovServiceData.from_bytes(bytes(data))
    except InvalidCommand as exc:
        raise ValueError(str(exc)) from None
    caps = int(parsed.capabilities)
    state = _STATES[int(parsed.state)]
    return {
        "state": state,
        "capabilities": [name for bit, name in _CAPABILITIES.items() if caps & bit],
        "waiting_for_wifi": state in ("authorization_required", "authorized"),
    }


@dataclass
class ImprovIntegration:
    ctx: IntegrationContext | None = None

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        ctx.on_advertisement(self._on_advertisement)
        # py-improv-ble-client (~80 ms of imports, a few MiB) is loaded only when an Improv
        # advertisement is first heard: most of the time no device is waiting for Wi-Fi.

    async def unload(self, ctx: IntegrationContext) -> None:
        return None

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        raise NotImplementedError("improv devices are provisioned, not commanded")

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        return None  # it keeps no connection and no secret of a device

    def _on_advertisement(self, adv: BleAdvertisement) -> DiscoveryInfo | None:
        assert self.ctx is not None
        raw = adv.service_data.get(SERVICE_DATA_UUID)
        if raw is None:
            if SERVICE_UUID not in adv.service_uuids:
                return None
            data: dict[str, Any] = {"state": None, "capabilities": [],
                                    "waiting_for_wifi": None}
        else:
            try:
                data = parse_service_data(raw)
            except ValueError as exc:
                self.ctx.report_malformed("Improv service data", f"from {adv.address}: {exc}")
                return None
        return DiscoveryInfo(name=adv.name or f"Improv {adv.address[-5:]}", mac=adv.address,
                             data=data)

