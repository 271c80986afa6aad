"""The unit points OpenSSL at the trust store's hashed directory instead of its bundle file
(less memory per TLS context): a certificate chain must still verify that way, and a chain
whose CA is not in the directory must still be refused."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "uone-hub.service"


def unit_environment() -> dict[str, str]:
    out = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            out[key] = value
    return out


def test_the_unit_uses_the_hashed_directory() -> None:
    env = unit_environment()
    assert env["SSL_CERT_FILE"] == "/dev/null"
    assert env["SSL_CERT_DIR"] == "/etc/ssl/certs"


def test_a_chain_verifies_from_the_directory_alone(tmp_path: Path, monkeypatch) -> None:
    ca_key, ca = _ca()
    store = tmp_path / "certs"
    store.mkdir()
    _add_hashed(store, ca, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", unit_environment()["SSL_CERT_FILE"])
    monkeypatch.setenv("SSL_CERT_DIR", str(store))
    client = ssl.create_default_context()
    # nothing parsed up front: the CA is read when a peer's chain names it
    assert client.cert_store_stats()["x509_ca"] == 0
    server = _server_context(tmp_path, ca_key, ca)
    _handshake(client, server)  # raises if the chain does not verify
    assert client.cert_store_stats()["x509_ca"] == 1

    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ssl.create_default_context(), _server_context(tmp_path, ca_key, ca))


# -- helpers ---------------------------------------------------------------------------


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test trust store CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _add_hashed(store: Path, cert: x509.Certificate, tmp: Path) -> None:
    """Install `cert` under its subject hash, as update-ca-certificates does."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command (Debian package openssl) computes the subject hash"
    pem = tmp / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    digest = subprocess.run([openssl, "x509", "-hash", "-noout", "-in", str(pem)],
                            capture_output=True, text=True, check=True).stdout.strip()
    (store / f"{digest}.0").write_bytes(pem.read_bytes())


def _server_context(tmp: Path, ca_key: ec.EllipticCurvePrivateKey,
                    ca: x509.Certificate) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker.test")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("broker.test")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain, key_file = tmp / "server.pem", tmp / "server.key"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key_file)
    return ctx


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    """A TLS handshake in memory (no socket): both sides' bytes passed by hand."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="broker.test")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, side in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")
