"""`uone-hub automations check`: shape errors with file:line, device checks from the DB."""

from __future__ import annotations

from hub.cli import main
from tests.conftest import write_config

BUTTON = {"type": "event", "device": "virtual.button", "event": "press"}
TOGGLE = {"type": "command", "device": "virtual.lamp", "command": "toggle"}


def test_check_reports_shape_errors_with_file_line(tmp_path, capsys):
    cfg = write_config(tmp_path, {"automations": [
        {"id": "ok", "triggers": [BUTTON], "actions": [TOGGLE]},
        {"id": "bad", "triggers": [BUTTON], "actions": [{"type": "delay", "seconds": "x"}]},
    ]})
    assert main(["automations", "check", "-c", str(cfg)]) == 2
    out = capsys.readouterr()
    assert f"{cfg}:" in out.err and "automation 'bad': actions[0].seconds" in out.err
    assert "2 automations, 1 with problems; checked shape only" in out.out


async def test_check_uses_devices_from_the_database(make_hub, tmp_path, capsys):
    autos = [{"id": "ok", "triggers": [BUTTON], "actions": [TOGGLE]},
             {"id": "ghost", "triggers": [BUTTON],
              "actions": [{"type": "command", "device": "virtual.ghost", "command": "x"}]}]
    async with make_hub(autos) as hub:
        await hub.automations.create({"id": "from_api", "triggers": [BUTTON],
                                      "actions": [TOGGLE]})
    cfg = tmp_path / "config.yaml"
    assert main(["automations", "check", "-c", str(cfg)]) == 2
    out = capsys.readouterr()
    assert "automation 'ghost': actions[0].device: unknown device 'virtual.ghost'" in out.err
    assert "3 automations, 1 with problems; checked shape, devices" in out.out
