"""Unit tests of the Matter integration's own logic: pairing codes, the attestation mapping,
the cluster mapping (no server needed)."""

from __future__ import annotations

import datetime
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hub.errors import ValidationError
from integrations.matter import check_code, clusters
from integrations.matter.attestation import VENDOR_ID_OID, check_chain
from integrations.matter.client import NodeView

NOW = time.time()


@pytest.mark.parametrize("code, expected", [
    ("34970112332", "34970112332"), ("3497-011-2332", "34970112332"),
    (" 3497 011 2332 ", "34970112332"), ("MT:Y.K90AFN00KA0648G00", "MT:Y.K90AFN00KA0648G00"),
])
def test_codes_accepted(code: str, expected: str) -> None:
    assert check_code(code) == expected


@pytest.mark.parametrize("code, why", [
    ("34970112331", "check digit"), ("1234", "11- or 21-digit"), ("MT:", "QR payload"),
    ("3497O112332", "11- or 21-digit"), (34970112332, "expected a string"),
])
def test_codes_refused_naming_the_field(code, why: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_code(code)
    assert err.value.field == "code" and why in str(err.value)


def _name(cn: str, vid: int | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if vid is not None:
        attrs.append(x509.NameAttribute(x509.ObjectIdentifier(VENDOR_ID_OID), f"{vid:04X}"))
    return x509.Name(attrs)


def _chain(vid: int, paa_cn: str = "Acme PAA", days: int = 365, tamper: bool = False
           ) -> tuple[bytes, bytes]:
    paa_key, pai_key, dac_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    start = datetime.datetime.fromtimestamp(NOW - 86400, datetime.UTC)

    def make(subject, issuer, key, signer, ca):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(signer, hashes.SHA256()))

    pai = make(_name("Acme PAI", vid), _name(paa_cn, None), pai_key, paa_key, True)
    dac = make(_name("Acme DAC", vid), pai.subject, dac_key, paa_key if tamper else pai_key,
               False)
    return dac.public_bytes(Encoding.DER), pai.public_bytes(Encoding.DER)


def test_production_chain_is_verified() -> None:
    result = check_chain(*_chain(0x130A), NOW)
    assert result.outcome == "verified" and "0x130a" in (result.reason or "")
    assert result.public_key is not None and result.not_after is not None


def test_development_chain_is_unverified() -> None:
    assert check_chain(*_chain(0xFFF1), NOW).code == "development_device"
    assert check_chain(*_chain(0x130A, paa_cn="Matter Test PAA"), NOW).outcome == \
        "unverified"


def test_broken_expired_or_junk_chain_fails() -> None:
    assert check_chain(*_chain(0x130A, tamper=True), NOW).code == "chain_broken"
    assert check_chain(*_chain(0x130A, days=1), NOW + 3 * 86400).code == "expired"
    assert check_chain(b"junk", b"junk", NOW).code == "malformed"


def _node(attributes: dict[str, object]) -> NodeView:
    return NodeView(7, True, attributes)


def test_cluster_mapping_of_a_two_channel_dimmer_and_a_sensor() -> None:
    node = _node({"1/6/0": True, "1/8/0": 127, "2/6/0": False, "2/8/0": 254,
                  "3/1026/0": 2150, "3/1029/0": 4812, "3/69/0": False, "0/40/3": "X"})
    model = clusters.model(node)
    assert {"on", "on_2", "brightness", "brightness_2", "temperature", "humidity",
            "contact"} <= set(model.attributes)
    assert model.meta["temperature"].unit == "°C"
    state = clusters.state(node)
    assert state["on"] is True and state["on_2"] is False
    assert state["brightness"] == 50 and state["brightness_2"] == 100
    assert state["temperature"] == 21.5 and state["humidity"] == 48.12
    endpoint, action = clusters.action(model, "set_brightness", {"brightness": 100,
                                                                 "endpoint": 2})
    assert endpoint == 2 and action.command == "MoveToLevelWithOnOff"
    assert action.payload["level"] == 254
    assert clusters.action(model, "turn_on", {})[0] == 1


def test_cover_lock_and_thermostat_actions() -> None:
    node = _node({"1/258/14": 2500, "1/257/0": 1, "1/513/0": 1990, "1/513/18": 2000,
                  "1/513/28": 4})
    model = clusters.model(node)
    state = clusters.state(node)
    assert state["position"] == 75 and state["locked"] is True
    assert state["hvac_mode"] == "heat" and state["current_temperature"] == 19.9
    _, act = clusters.action(model, "set_position", {"position": 100})
    assert act.payload == {"liftPercent100thsValue": 0}
    _, act = clusters.action(model, "unlock", {})
    assert act.command == "UnlockDoor" and act.timed_ms
    _, act = clusters.action(model, "set_heating_setpoint", {"temperature": 21.5})
    assert (act.attribute, act.value) == (18, 2150)
    with pytest.raises(ValidationError):
        clusters.action(model, "set_hvac_mode", {"mode": "sideways"})


def _types(node, event_id, data):
    return [(t, d.get("presses")) for t, d in clusters.events(node, 1, clusters.SWITCH,
                                                                event_id, data)]


def test_switch_events_become_gestures_by_the_switch_features() -> None:
    multi = _node({"1/59/1": 0, "1/59/65532": 0x1E})  # momentary, release, long, multi
    assert _types(multi, 1, {"newPosition": 1}) == [("button", None)]
    assert _types(multi, 3, {"previousPosition": 1}) == [("button", None)]  # not yet known
    assert _types(multi, 6, {"previousPosition": 1, "totalNumberOfPressesCounted": 1}) == [
        ("button", 1), ("press", 1)]
    assert _types(multi, 6, {"previousPosition": 1, "totalNumberOfPressesCounted": 2}) == [
        ("button", 2), ("multi_press", 2)]
    assert _types(multi, 2, {"newPosition": 1}) == [("button", None), ("long_press", None)]
    plain = _node({"1/59/1": 0, "1/59/65532": 0x02})  # momentary only: the press is all
    assert _types(plain, 1, {"newPosition": 1}) == [("button", None), ("press", None)]
    release = _node({"1/59/1": 0, "1/59/65532": 0x06})
    assert _types(release, 1, {"newPosition": 1}) == [("button", None)]
    assert _types(release, 3, {"previousPosition": 1}) == [("button", None), ("press", None)]
    assert clusters.events(plain, 1, clusters.ON_OFF, 0, {}) == []
    model = clusters.model(multi)
    assert set(model.events) == {"button", "press", "long_press", "multi_press"}


def test_colour_commands_follow_the_light_features() -> None:
    ct_only = _node({"1/6/0": True, "1/768/7": 250, "1/768/8": 2})
    model = clusters.model(ct_only)
    names = {c.name for c in model.commands}
    assert "set_color_temp" in names and not names & {"set_xy", "set_hue_saturation"}
    assert "hue" not in model.attributes and "color_temp_mireds" in model.attributes
    full = _node({"1/768/0": 127, "1/768/1": 254, "1/768/3": 19661, "1/768/4": 39322,
                  "1/768/7": 250, "1/768/8": 1})
    state = clusters.state(full)
    assert state["color_mode"] == "xy" and state["color_x"] == 0.3 and state["hue"] == 180
    _, act = clusters.action(clusters.model(full), "set_xy", {"x": 0.3, "y": 0.6})
    assert act.command == "MoveToColor"
    assert (act.payload["colorX"], act.payload["colorY"]) == (19661, 39322)
    assert act.payload["optionsMask"] == act.payload["optionsOverride"] == 1  # even if off
