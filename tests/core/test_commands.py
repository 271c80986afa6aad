"""One command policy for every channel (hub/commands.py): role, grants, restriction, validation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub.auth.principal import Principal, Role
from hub.commands import COMMAND_ROLE, command_fields
from hub.errors import NotFound, PermissionDenied, ValidationError
from hub.hub import Hub

ROOT = Path(__file__).resolve().parents[2]


def who(role: Role, devices: tuple[str, ...] = (), areas: tuple[str, ...] = ()) -> Principal:
    return Principal(user_id="u", username="u", role=role, granted_devices=frozenset(devices),
                     granted_areas=frozenset(areas))


async def test_members_command_any_device(hub: Hub) -> None:
    result = await hub.commands.authorize_and_send(who(Role.MEMBER), "virtual.lamp",
                                                   "turn_on", {})
    assert result == {"on": True}
    assert hub.states.value("virtual.lamp", "on") is True


async def test_guests_only_what_they_were_granted(hub: Hub) -> None:
    with pytest.raises(NotFound):  # not PermissionDenied: no existence leak
        await hub.commands.authorize_and_send(who(Role.GUEST), "virtual.lamp", "turn_on", {})
    granted = who(Role.GUEST, devices=("virtual.lamp",))
    assert (await hub.commands.authorize_and_send(granted, "virtual.lamp", "turn_on", {})
            == {"on": True})
    by_area = who(Role.GUEST, areas=("living",))
    assert (await hub.commands.authorize_and_send(by_area, "virtual.lamp", "turn_off", {})
            == {"on": False})


async def test_below_the_least_role_is_refused(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.commands as commands

    monkeypatch.setattr(commands, "COMMAND_ROLE", Role.MEMBER)
    with pytest.raises(PermissionDenied):
        await hub.commands.authorize_and_send(who(Role.GUEST, devices=("virtual.lamp",)),
                                              "virtual.lamp", "turn_on", {})
    assert COMMAND_ROLE is Role.GUEST


async def test_restricted_devices_do_not_exist_remotely(hub: Hub) -> None:
    await hub.devices.update("virtual.lamp", restricted=True)
    with pytest.raises(NotFound):
        await hub.commands.authorize_and_send(who(Role.OWNER), "virtual.lamp", "turn_on", {},
                                              remote=True)
    # on the LAN the owner still controls the device (restriction limits processing)
    assert (await hub.commands.authorize_and_send(who(Role.OWNER), "virtual.lamp",
                                                  "turn_on", {}) == {"on": True})


async def test_the_device_validates_command_and_params(hub: Hub) -> None:
    with pytest.raises(ValidationError):
        await hub.commands.authorize_and_send(who(Role.MEMBER), "virtual.lamp", "explode", {})
    with pytest.raises(NotFound):
        await hub.commands.authorize_and_send(who(Role.MEMBER), "virtual.none", "turn_on", {})


@pytest.mark.parametrize(("body", "field"), [
    ({}, "command"), ({"command": 3}, "command"), ({"command": "x" * 101}, "command"),
    ({"command": "on", "params": []}, "params"),
])
def test_command_fields_name_the_bad_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        command_fields(body)
    assert err.value.field == field


def test_command_fields_default_params() -> None:
    assert command_fields({"command": "toggle"}) == ("toggle", {})


# Channels that take commands from people (the API, the cloud's remote commands, HomeKit
# controllers through the bridge): each must go through hub.commands.authorize_and_send.
CHANNELS = ("hub/api", "hub/cloud", "hub/homekit")


def test_no_channel_sends_around_the_policy() -> None:
    """The API, the cloud and the HomeKit bridge reach integrations only through
    hub.commands."""
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for folder in CHANNELS for path in sorted((ROOT / folder).rglob("*.py"))
                 for line in bypasses(path.read_text())]
    assert not offenders, offenders


def test_the_bypass_scan_finds_what_it_is_meant_to() -> None:
    sample = (
        "async def on_write(self, hub, integrations, device, value):\n"
        "    await hub.integrations.command(device, 'turn_on', {})\n"       # 2: flagged
        "    await self._hub.integrations.command(device, 'x', {})\n"       # 3: flagged
        "    send = integrations.command\n"                                 # 4: flagged
        "    await self._commands.authorize_and_send(P, device, 'x', {})\n"  # 5: the policy
    )
    assert bypasses(sample) == [2, 3, 4]
    assert (ROOT / "hub" / "homekit").is_dir()  # the bridge is scanned where it lives


def bypasses(source: str) -> list[int]:
    """Lines that reach an integration's command around the policy: `<x>.integrations.command`
    or `integrations.command` (the integration host passed in)."""
    return sorted({node.lineno for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Attribute) and node.attr == "command"
                   and _names_integrations(node.value)})


def _names_integrations(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "integrations"
    return isinstance(node, ast.Name) and node.id == "integrations"
