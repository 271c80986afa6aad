"""Device commands: one policy for every channel that sends them.

The local HTTP route, the websocket and cloud remote commands all call
`DeviceCommands.authorize_and_send`: the least role, the principal's device and area grants,
the privacy restriction (a restricted device is not synced, so it does not exist for a
remote client), then the device's own validation of the command and its parameters and the
hand-over to its integration (`IntegrationHost.command`). Automations, which act as the
system on devices their definitions were checked against, use that last step directly.
"""

from __future__ import annotations

from typing import Any, Protocol

from hub.auth.principal import Principal, Role
from hub.devices import Device, DeviceRegistry
from hub.errors import NotFound, PermissionDenied, ValidationError

COMMAND_ROLE = Role.GUEST  # guests too, on the devices they were granted
COMMAND_FIELDS = frozenset({"command", "params"})
MAX_COMMAND_NAME = 100



class CommandSink(Protocol):
    """Validates a command against the device and hands it to its integration
    (`IntegrationHost`)."""

    async def command(self, device_id: str, command: str, params: object) -> Any: ...


def command_fields(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`command` and `params` of a command request from any channel (errors name the field)."""
    if "command" not in body:
        raise ValidationError("command", "required")
    command = body["command"]
    if not isinstance(command, str):
        raise ValidationError("command", "expected a string")
    if len(command) > MAX_COMMAND_NAME:
        raise ValidationError("command", f"at most {MAX_COMMAND_NAME} characters")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ValidationError("params", "expected an object")
    return command, params


class DeviceCommands:
    """Who may command which device; given the registry and where validated commands go."""

    def __init__(self, devices: DeviceRegistry, integrations: CommandSink) -> None:
        self._devices = devices
        self._integrations = integrations

    def visible(self, who: Principal, device_id: str, *, remote: bool = False) -> Device:
        """The device, if `who` may see it; else NotFound (no existence leak). Over the cloud
        (`remote`), restricted devices do not exist either."""
        device = self._devices.find(device_id)
        if (device is None or not who.can_see_device(device.id, device.area)
                or (remote and device.restricted)):
            raise NotFound(f"no device {device_id!r}")
        return device

    async def authorize_and_send(self, who: Principal, device_id: str, command: str,
                                 params: dict[str, Any], *, remote: bool = False) -> Any:
        """Run `command` on a device for `who`, or raise PermissionDenied / NotFound /
        ValidationError / DeviceUnavailable."""
        if who.role < COMMAND_ROLE:
            raise PermissionDenied("commands need at least the guest role")
        device = self.visible(who, device_id, remote=remote)
        return await self._integrations.command(device.id, command, params)
