"""The hub's TLS certificate: self-signed at first start unless the owner configured one.

It names the addresses the API serves on, so `curl --cacert tls-cert.pem https://<LAN IP>/`
verifies; when they change (a new DHCP lease) it is re-issued under the same key, so a client
that pins the public key (`spki_pin`, curl --pinnedpubkey) needs no update.

What a certificate names and its pin are also kept beside it (`tls-cert.json`, bound to the
certificate's and key's bytes by SHA-256), so an ordinary start checks them with the standard
library: cryptography (its own OpenSSL, +8 MiB of RSS) loads only to issue or re-issue.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
META_FILE = "tls-cert.json"
LOOPBACK = ("127.0.0.1", "::1")


def ensure_self_signed(state_dir: Path, hostname: str | None = None,
                       addresses: Iterable[str] = ()) -> tuple[Path, Path]:
    """The self-signed P-256 certificate in the state directory, naming the host name,
    `<host>.local`, localhost, the loopback addresses and `addresses` (those the API serves
    on). Re-issued when that set changes, always with the same private key, so a client
    that pins the public key (`spki_pin`) keeps working. Blocking."""
    cert_path, key_path = state_dir / CERT_FILE, state_dir / KEY_FILE
    host = hostname or socket.gethostname() or "uone-hub"
    dns = {host, f"{host}.local", "localhost"}
    ips = {ipaddress.ip_address(a) for a in (*LOOPBACK, *addresses)}
    meta = _meta(cert_path, key_path)
    if meta is not None and (set(meta["dns"]), {ipaddress.ip_address(a) for a in meta["ips"]}
                             ) == (dns, ips):
        return cert_path, key_path  # the usual start: nothing changed, nothing to load

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key: Any = None
    if key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if cert_path.exists() and _names(cert_path) == (dns, ips, _spki(key.public_key())):
            _write_meta(cert_path, key_path, dns, ips)  # (a certificate from before the file)
            return cert_path, key_path
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    cert = _issue(key, host, sorted(dns), sorted(ips, key=lambda a: (a.version, int(a))))
    tmp = cert_path.with_name(cert_path.name + ".new")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, cert_path)  # a reader sees the old certificate or the new, never half
    _write_meta(cert_path, key_path, dns, ips)
    return cert_path, key_path


def serving_addresses(host: str) -> list[str]:
    """The IP addresses clients reach an API listening on `host` at: the address itself,
    or for a wildcard (0.0.0.0, ::, "") every address of every interface (IPv6 link-local
    ones left out: they need a zone, which a certificate cannot name). Blocking."""
    if host in ("0.0.0.0", "::", ""):
        import ifaddr

        v6 = host != "0.0.0.0"  # "::" listens dual-stack on Linux
        out = set()
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]  # v6: (addr, flow, scope)
                addr = ipaddress.ip_address(raw)
                if (ip.is_IPv4 or v6) and not addr.is_link_local:
                    out.add(addr)
        return [str(a) for a in sorted(out, key=lambda a: (a.version, int(a)))]
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:  # a host name: the addresses it resolves to here
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return []
        return sorted({str(info[4][0]) for info in infos})


def spki_pin(cert_path: Path) -> str:
    """The certificate's public key as curl's --pinnedpubkey takes it: sha256//<base64 of
    the SHA-256 of the DER SubjectPublicKeyInfo>. Stays the same across renewals."""
    meta = _meta(cert_path, None)
    if meta is not None:
        return str(meta["pin"])
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return "sha256//" + base64.b64encode(hashlib.sha256(_spki(cert.public_key())).digest()
                                         ).decode()


def fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint of a PEM certificate, as AA:BB:... (what browsers show)."""
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _meta(cert_path: Path, key_path: Path | None) -> dict[str, Any] | None:
    """What `tls-cert.json` says of this certificate (and key), if it is about these bytes."""
    try:
        meta = json.loads((cert_path.parent / META_FILE).read_text())
        if meta["cert_sha256"] != _sha256(cert_path) or (
                key_path is not None and meta["key_sha256"] != _sha256(key_path)):
            return None
        if not (isinstance(meta["dns"], list) and isinstance(meta["ips"], list)
                and isinstance(meta["pin"], str)):
            return None
        return dict(meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_meta(cert_path: Path, key_path: Path, dns: set[str], ips: set[Any]) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    pin = "sha256//" + base64.b64encode(hashlib.sha256(_spki(cert.public_key())).digest()
                                        ).decode()
    meta = {"cert_sha256": _sha256(cert_path), "key_sha256": _sha256(key_path),
            "dns": sorted(dns), "ips": sorted(str(a) for a in ips), "pin": pin}
    path = cert_path.parent / META_FILE
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spki(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(public_key.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))


def _names(cert_path: Path) -> tuple[set[str], set[Any], bytes] | None:
    """(DNS names, IP addresses, public key) a certificate was issued for; None if unreadable."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    return (set(san.get_values_for_type(x509.DNSName)),
            set(san.get_values_for_type(x509.IPAddress)), _spki(cert.public_key()))


def _issue(key: Any, host: str, dns: list[str], ips: list[Any]) -> Any:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Uone Hub {host}")])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([*(x509.DNSName(d) for d in dns),
                                       *(x509.IPAddress(ip) for ip in ips)])
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
