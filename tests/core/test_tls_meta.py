"""tls-cert.json: what the self-signed certificate names, bound to its bytes, so an ordinary
start checks it without cryptography; any mismatch falls back to reading the certificate."""

from __future__ import annotations

import json
from pathlib import Path

from hub import tls


def test_the_meta_file_says_what_the_certificate_says(tmp_path: Path) -> None:
    cert, _key = tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])
    meta = json.loads((tmp_path / tls.META_FILE).read_text())
    assert meta["dns"] == ["localhost", "pi", "pi.local"]
    assert meta["ips"] == sorted(["10.1.2.3", "127.0.0.1", "::1"])
    pin = meta["pin"]
    (tmp_path / tls.META_FILE).unlink()
    assert tls.spki_pin(cert) == pin  # computed from the certificate with cryptography
    before = cert.read_bytes()
    tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])  # (re-creates the file)
    assert cert.read_bytes() == before and json.loads(
        (tmp_path / tls.META_FILE).read_text())["pin"] == pin


def test_an_unchanged_start_reads_nothing_but_the_meta(tmp_path: Path) -> None:
    cert, key = tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])
    before = cert.read_bytes()
    assert tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"]) == (cert, key)
    assert cert.read_bytes() == before


def test_new_addresses_reissue_under_the_same_key(tmp_path: Path) -> None:
    cert, key = tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])
    pin, key_bytes = tls.spki_pin(cert), key.read_bytes()
    tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.4"])
    meta = json.loads((tmp_path / tls.META_FILE).read_text())
    assert "10.1.2.4" in meta["ips"] and "10.1.2.3" not in meta["ips"]
    assert key.read_bytes() == key_bytes and meta["pin"] == pin == tls.spki_pin(cert)


def test_a_meta_file_about_other_bytes_is_not_believed(tmp_path: Path) -> None:
    cert, key = tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])
    meta_path = tmp_path / tls.META_FILE
    lying = json.loads(meta_path.read_text())
    lying["ips"].append("10.9.9.9")  # claims an address the certificate does not name
    meta_path.write_text(json.dumps(lying))
    # the certificate changes under it (a restore, a copy): its hash no longer matches, so
    # the certificate itself is read, found wrong for this host and re-issued
    other = tmp_path / "other"
    other_cert, _ = tls.ensure_self_signed(other, "elsewhere", [])
    cert.write_bytes(other_cert.read_bytes())
    tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"])
    meta = json.loads(meta_path.read_text())
    assert meta["dns"] == ["localhost", "pi", "pi.local"] and "10.9.9.9" not in meta["ips"]
    assert tls.spki_pin(cert) == meta["pin"]
    for garbage in ("", "{", "[]", json.dumps({"cert_sha256": 1})):
        meta_path.write_text(garbage)
        assert tls.ensure_self_signed(tmp_path, "pi", ["10.1.2.3"]) == (cert, key)
        assert json.loads(meta_path.read_text())["dns"] == ["localhost", "pi", "pi.local"]
