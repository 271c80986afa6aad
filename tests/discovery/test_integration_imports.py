"""Integrations import only `hub.facade` from the core and never each other; the façade's
exports are pinned."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import hub.facade

ROOT = Path(__file__).resolve().parents[2] / "integrations"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def test_integrations_import_only_the_facade_and_themselves() -> None:
    problems = []
    checked = 0
    for path in sorted(ROOT.glob("*/**/*.py")):
        own = path.relative_to(ROOT).parts[0]
        for name in _imports(path):
            checked += 1
            top = name.split(".")[0]
            if top == "hub" and name != "hub.facade":
                problems.append(f"{path}: imports {name} (only hub.facade is allowed)")
            if top == "integrations" and name.split(".")[:2] != ["integrations", own]:
                problems.append(f"{path}: imports {name} (integrations never import others)")
    assert checked > 10
    assert not problems, "\n".join(problems)


def test_facade_exports_are_pinned() -> None:
    assert hub.facade.__all__ == [
        "Attestation", "AttributeMeta", "AvailabilityChanged", "BackoffPolicy",
        "BleAdvertisement", "BleMatcher",
        "CommandSpec", "Device",
        "DeviceEvent", "DeviceUnavailable", "DiscoveredDevice", "DiscoveryInfo", "EgressDenied",
        "Event",
        "Evidence", "HubError", "Integration", "IntegrationContext", "LanProbe", "MdnsService",
        "PrivacyScope", "PrivatePart", "ReconnectLoop", "ReconnectState", "StateChanged",
        "TransportChoice",
        "ValidationError",
        "choose_transport", "mqtt_client_class", "normalize_mac", "probe_lan", "watching_srp",
    ]
    for name in hub.facade.__all__:
        assert hasattr(hub.facade, name)


def test_consent_reaches_integrations_as_one_narrow_callback() -> None:
    """An integration hears of consent only through its context, for a purpose it names, as
    allowed or not: never the privacy center, the ledger or its event type."""
    assert "ConsentChanged" not in hub.facade.__all__
    context = hub.facade.IntegrationContext
    assert [n for n in dir(context) if "consent" in n.lower()] == ["on_consent_changed"]
    assert list(inspect.signature(context.on_consent_changed).parameters) == [
        "self", "purpose", "callback"]
