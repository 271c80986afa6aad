"""The Matter server is not running when the hub starts: the hub runs on (the integration
stays loaded, other devices work), health says why, and the Matter devices come back when
the server appears."""

from __future__ import annotations

from pathlib import Path

from hub.auth.principal import Principal, Role
from hub.config import load_config
from hub.hub import Hub
from tests.conftest import DEFAULT_VIRTUAL, write_config
from tests.doubles import matter
from tests.matter.conftest import detail, matter_section, wait_until

OWNER = Principal("o", "o", Role.OWNER)


async def test_server_absent_at_start_then_appearing(matter_parts, lan, paa_dir: Path,
                                                     make_device, tmp_path: Path) -> None:
    server = matter.MatterServer(matter_parts[0], tmp_path / "server", paa_dir)
    cfg = load_config(write_config(tmp_path, {"integrations": {
        "matter": matter_section(server.url, server_log=str(server.log)),
        "virtual": {"devices": DEFAULT_VIRTUAL}}}))
    light = make_device("onoff")
    async with matter.running(light):
        async with matter.running(server), Hub(cfg) as hub:  # an earlier run: one node
            await wait_until(lambda: detail(hub).get("server") == "connected", 30)
            device = await hub.integrations.instance("matter").commission(
                light.manual_code, lambda *_: None)

        async with Hub(cfg) as hub:  # the server is not running
            await wait_until(lambda: "Cannot connect" in detail(hub).get("problem", ""), 30)
            assert hub.integrations.status()["matter"]["state"] == "loaded"
            health = await hub.health()
            assert health["status"] == "degraded"
            [problem] = [p for p in health["problems"] if p.startswith("integration matter")]
            assert f"Matter server {server.url} not reachable" in problem
            assert "is uone-matter.service running?" in problem
            assert hub.states.available(device.id) is False
            # the rest of the hub runs on
            assert await hub.commands.authorize_and_send(OWNER, "virtual.lamp", "turn_on",
                                                         {}) == {"on": True}

            async with matter.running(server):  # it appears
                await wait_until(lambda: detail(hub).get("server") == "connected", 60)
                await wait_until(lambda: hub.states.available(device.id) is True, 60)
                health = await hub.health()
                assert health["status"] == "ok", health
                assert hub.states.value(device.id, "on") is False
                await hub.commands.authorize_and_send(OWNER, device.id, "turn_on", {})
                await wait_until(lambda: hub.states.value(device.id, "on") is True, 30)
