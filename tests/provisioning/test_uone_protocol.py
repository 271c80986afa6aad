"""Unit tests of the BLE framing and the sealed Wi-Fi credentials (PROTOCOL.md part B §4)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.provisioning.uone_ble import (
    MAX_MESSAGE,
    ProtocolError,
    Reassembler,
    fragments,
    seal_wifi,
)


def test_fragments_roundtrip_and_fit_mtu_23() -> None:
    body = {"chain": ["x" * 1500], "did": "uone-0000000000000001"}
    frags = fragments(0x81, body)
    assert all(len(f) <= 20 for f in frags)
    assert frags[-1][0] & 0x80 and not any(f[0] & 0x80 for f in frags[:-1])
    r = Reassembler()
    out = [r.feed(f) for f in frags]
    assert out[:-1] == [None] * (len(frags) - 1)
    assert out[-1] == (0x81, body)


@pytest.mark.parametrize(("values", "words"), [
    ([b""], "bad fragment"),
    ([b"\x01abc"], "out of order"),
    ([b"\x80\x81not json"], "JSON body"),
    ([b"\x80\x81[1,2]"], "not an object"),
    ([b"\x80"], "empty message"),
    ([b"\x00" + b"a" * 511] * 17, "over 8192"),
    ([b"\x00" + b"a" * 600], "bad fragment"),
])
def test_garbage_is_a_protocol_error(values: list[bytes], words: str) -> None:
    r = Reassembler()
    with pytest.raises(ProtocolError, match=words):
        for i, v in enumerate(values):
            r.feed(bytes([(i & 0x7F) | (v[0] & 0x80)]) + v[1:] if len(values) > 1 else v)
    # it recovers: the next good message parses
    assert r.feed(fragments(0x83, {"state": "joined"})[0]) == (0x83, {"state": "joined"})
    assert MAX_MESSAGE == 8192


def test_sealed_credentials_open_only_with_the_certified_key() -> None:
    device = ec.generate_private_key(ec.SECP256R1())
    nonce, did, hub_id = os.urandom(32), "uone-0000000000000001", "hub-1"
    creds = {"ssid": "Home", "password": "correct-horse-battery", "security": "wpa2-psk"}
    sealed = seal_wifi(device.public_key(), nonce, hub_id, did, creds)
    raw = json.dumps(sealed)
    assert "correct-horse-battery" not in raw and "Home" not in raw

    def open_with(key: ec.EllipticCurvePrivateKey, salt: bytes) -> dict:
        epk = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), base64.b64decode(sealed["epk"]))
        k = HKDF(hashes.SHA256(), 32, salt=salt,
                 info=b"uone-wifi-v1\0" + hub_id.encode() + b"\0" + did.encode()
                 ).derive(key.exchange(ec.ECDH(), epk))
        return json.loads(AESGCM(k).decrypt(base64.b64decode(sealed["iv"]),
                                             base64.b64decode(sealed["ct"]),
                                             b"uone-wifi-v1\0" + did.encode()))

    assert open_with(device, nonce) == creds
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        open_with(ec.generate_private_key(ec.SECP256R1()), nonce)  # another device
    with pytest.raises(InvalidTag):
        open_with(device, os.urandom(32))  # replayed into another session
    # every sealing uses a fresh ephemeral key
    assert seal_wifi(device.public_key(), nonce, hub_id, did, creds)["epk"] != sealed["epk"]
