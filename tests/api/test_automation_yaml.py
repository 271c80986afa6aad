"""Automations created and replaced with YAML bodies (the dashboard's YAML view): saved like
JSON ones; every error a 400 naming line:column, and the field when there is one."""

from __future__ import annotations

from hub.auth.principal import Role
from hub.hub import Hub

YAML = "application/yaml"
PORCH = """\
id: porch
name: Porch light
triggers:
  - type: state
    device: virtual.motion
    attribute: "on"
    to: true
actions:
  - type: command
    device: virtual.lamp
    command: turn_on
"""


async def _send(client, method: str, path: str, text: str):
    return await client.request(method, path, data=text.encode(),
                                headers={"Content-Type": YAML})


async def test_create_and_replace_with_yaml(api_client, hub: Hub) -> None:
    resp = await _send(api_client, "POST", "/api/automations", PORCH)
    assert resp.status == 201, await resp.text()
    saved = (await (await api_client.get("/api/automations/porch")).json())["definition"]
    assert saved["triggers"] == [{"type": "state", "device": "virtual.motion",
                                  "attribute": "on", "to": True}]
    resp = await _send(api_client, "PUT", "/api/automations/porch",
                       PORCH.replace("Porch light", "Porch light at night"))
    assert resp.status == 200, await resp.text()
    assert hub.automations.get("porch").to_json()["name"] == "Porch light at night"


async def test_a_refused_field_is_named_with_its_line(api_client, hub: Hub) -> None:
    resp = await _send(api_client, "POST", "/api/automations",
                       PORCH.replace("device: virtual.lamp", "device: virtual.nope"))
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["field"].startswith("actions[0]"), err
    assert (err["line"], err["column"]) == (10, 13), err
    assert err["message"].startswith("line 10:13: "), err
    assert (await api_client.get("/api/automations/porch")).status == 404  # nothing saved


async def test_bad_yaml_is_a_400_naming_line_and_column(api_client) -> None:
    cases = [
        ("id: a\ntriggers: [\n", "YAML syntax", 3),
        ("id: a\nid: b\n", "duplicate key 'id'", 2),
        ("base: &b {type: delay}\nactions: [*b, *b]\n", "aliases", 1),  # (the anchored one)
        ("id: a\nwhen: 2024-01-01\n", "not tag:yaml.org,2002:timestamp", 2),
        ("- just\n- a list\n", "expected a mapping", 1),
        ("id: !!binary aGVsbG8=\n", "only plain YAML", 1),
        ("on: true\n", "keys must be strings", 1),
        ("", "got nothing", 1),
        ("x: .nan\n", "finite", 1),
    ]
    for text, words, line in cases:
        resp = await _send(api_client, "POST", "/api/automations", text)
        assert resp.status == 400, (text, await resp.text())
        err = (await resp.json())["error"]
        assert words in err["message"] and err["line"] == line, (text, err)
    resp = await api_client.post("/api/automations", data=b"\xff\xfe",
                                 headers={"Content-Type": YAML})
    assert resp.status == 400 and "UTF-8" in (await resp.json())["error"]["message"]


async def test_yaml_needs_the_same_role(client_for) -> None:
    member = await client_for(Role.MEMBER)
    resp = await _send(member, "POST", "/api/automations", PORCH)
    assert resp.status == 403
    anonymous = await client_for(None)
    resp = await _send(anonymous, "POST", "/api/automations", PORCH)
    assert resp.status == 401
