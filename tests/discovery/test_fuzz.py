"""Random and hostile input thrown at every parser: counted, never a crash, never a
half-written device (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.discovery.matcher import MatcherIndex, normalize_uuid
from hub.discovery.mdns import decode_txt
from hub.discovery.models import BleAdvertisement, MdnsService
from hub.hub import Hub
from hub.manifests import read_manifests
from integrations.improv import parse_service_data
from integrations.uone.advert import MAGIC, Malformed, parse_ble, parse_txt
from tests.discovery import bthome_adv as adv

BTHOME = adv.BTHOME_UUID
IMPROV_SD = "00004677-0000-1000-8000-00805f9b34fb"
IMPROV_SVC = "00467768-6228-2272-4663-277478268000"
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

uuids = st.sampled_from([BTHOME, IMPROV_SD, IMPROV_SVC, "0000180f-0000-1000-8000-00805f9b34fb"])
blobs = st.binary(max_size=40)
advertisements = st.builds(
    lambda addr, name, rssi, svc, sd, md: (addr, name, rssi, tuple(svc), sd, md),
    st.sampled_from([f"A4:C1:38:00:01:{i:02X}" for i in range(8)]),
    st.none() | st.text(max_size=30),
    st.integers(-127, 20),
    st.lists(uuids, max_size=3),
    st.dictionaries(uuids, blobs, max_size=3),
    st.dictionaries(st.sampled_from([0xFFFF, 0x004C, 0x0001]),
                    st.one_of(blobs, blobs.map(lambda b: MAGIC + b)), max_size=2),
)


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return {"integrations": {"virtual": {"devices": []}, "bthome": {}, "uone": {},
                             "improv": {}}}


@FUZZ
@given(data=blobs)
def test_uone_ble_parser_returns_none_parses_or_says_malformed(data: bytes) -> None:
    for payload in (data, MAGIC + data):
        try:
            parsed = parse_ble(payload)
        except Malformed:
            continue
        if parsed is not None:
            assert parsed.did.startswith("uone-") and len(parsed.did) == 21


@FUZZ
@given(txt=st.dictionaries(st.sampled_from(["did", "mac", "model", "fw", "proto", "x"]),
                           st.text(max_size=80), max_size=6))
def test_uone_txt_parser_never_crashes(txt: dict[str, str]) -> None:
    try:
        parsed = parse_txt(txt)
    except Malformed:
        return
    assert parsed.did == txt["did"]


@FUZZ
@given(props=st.dictionaries(st.binary(max_size=20), st.none() | st.binary(max_size=60),
                             max_size=80))
def test_txt_decoding_never_crashes_and_keeps_only_text(props: dict[bytes, Any]) -> None:
    txt, bad = decode_txt(props)
    assert bad >= 0 and len(txt) <= len(props)
    assert all(isinstance(k, str) and k == k.lower() for k in txt)


@FUZZ
@given(data=blobs)
def test_improv_parser_parses_or_raises_value_error(data: bytes) -> None:
    try:
        out = parse_service_data(data)
    except ValueError:
        return
    assert out["state"] in ("authorization_required", "authorized", "provisioning",
                            "provisioned", "disconnected")


@FUZZ
@given(raw=advertisements)
def test_matcher_index_never_crashes(raw: tuple[Any, ...]) -> None:
    index = MatcherIndex(read_manifests().values())
    addr, name, rssi, svc, sd, md = raw
    matched = index.match(BleAdvertisement(addr, name, rssi, svc, sd, md))
    assert set(matched) <= set(read_manifests())
    if BTHOME in sd:
        assert "bthome" in matched


def test_uuid_normalisation() -> None:
    assert normalize_uuid("FCD2") == BTHOME
    assert normalize_uuid("0xfcd2") == BTHOME
    assert normalize_uuid(IMPROV_SVC.upper()) == IMPROV_SVC


async def test_random_advertisements_through_the_hub_never_crash(hub: Hub) -> None:
    """Every integration's listener gets junk; the hub counts, lists only valid ones."""
    examples: list[tuple[Any, ...]] = []

    @FUZZ
    @given(raw=advertisements)
    def collect(raw: tuple[Any, ...]) -> None:
        examples.append(raw)

    collect()
    # hostile BTHome specifically: truncated, unknown object ids, bad encryption flag
    examples += [
        ("A4:C1:38:00:02:01", None, -50, (), {BTHOME: b"\x40"}, {}),
        ("A4:C1:38:00:02:02", None, -50, (), {BTHOME: b"\x40\x02\x01"}, {}),  # truncated
        ("A4:C1:38:00:02:03", None, -50, (), {BTHOME: b"\x40\xfe\x01\x02"}, {}),  # unknown id
        ("A4:C1:38:00:02:04", None, -50, (), {BTHOME: b"\x41\x00\x01"}, {}),  # enc, no key
        ("A4:C1:38:00:02:05", None, -50, (), {BTHOME: b"\x20\x01\x02"}, {}),  # v1 on v2 uuid
        ("A4:C1:38:00:02:06", None, -50, (), {BTHOME: b""}, {}),
    ]
    for raw in examples:
        hub.discovery.handle_advertisement(*raw)
    await asyncio.sleep(0)
    stats = hub.discovery.stats
    assert stats.advertisements == len(examples)
    assert stats.listener_errors == 0  # listeners handle their own junk
    assert stats.malformed >= 4
    for item in hub.discovery.registry:
        assert item.integration in ("bthome", "uone", "improv")
        assert item.addresses and item.name
        if item.integration == "uone":
            assert item.did is not None and item.did.startswith("uone-")
    assert hub.integrations.loaded("bthome") and hub.integrations.loaded("uone")


async def test_random_mdns_services_never_crash(hub: Hub) -> None:
    services: list[tuple[MdnsService, bool]] = []

    @FUZZ
    @given(txt=st.dictionaries(st.sampled_from(["did", "mac", "model", "fw", "proto"]),
                               st.text(max_size=40), max_size=5),
           addresses=st.lists(st.sampled_from(["10.0.0.2", "10.0.0.3"]), max_size=2),
           port=st.none() | st.integers(0, 65535), removed=st.booleans())
    def collect(txt: dict[str, str], addresses: list[str], port: int | None,
                removed: bool) -> None:
        name = f"D{len(services) % 20}._uone._tcp.local."
        services.append((MdnsService("_uone._tcp.local.", name, None, tuple(addresses), port,
                                     txt), removed))

    collect()
    for svc, removed in services:
        hub.discovery.handle_mdns(svc, removed=removed)
    assert hub.discovery.stats.listener_errors == 0
    for item in hub.discovery.registry:
        assert item.did is not None and item.did.startswith("uone-")
