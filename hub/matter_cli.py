"""`uone-hub matter import-paa DIR`: the PAA roots the Matter server checks devices against.

The owner downloads a PAA set (the CSA's DCL export, or connectedhomeip's
credentials/production/paa-root-certs) and imports it; nothing is fetched at run time. Only
self-signed CA certificates are kept, written as DER (what `--paa-root-cert-dir` reads), with
the `.version` marker. The unit starts the server through systemd/matter_server_offline.py,
which never fetches nor empties the directory; the marker only keeps a plain `matter-server`
started by hand from emptying it (it still downloads once the marker is a day old).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.cli import EXIT_OK, CliError

DEFAULT_TARGET = Path("/var/lib/uone-matter/paa")


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # written file names
    refused: dict[str, str] = field(default_factory=dict)  # source file -> why


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matter", help="the Matter server's local data (PAA roots)")
    msub = p.add_subparsers(dest="matter_command", metavar="ACTION")
    msub.required = True
    i = msub.add_parser("import-paa", help="import Matter PAA root certificates (.der/.pem) "
                        "from a directory the owner downloaded, for device attestation")
    i.add_argument("source", type=Path, help="directory with the PAA certificates")
    i.add_argument("--to", type=Path, default=DEFAULT_TARGET,
                   help=f"the server's --paa-root-cert-dir (default {DEFAULT_TARGET})")
    i.set_defaults(func=_cmd_import)


def import_paa(source: Path, target: Path) -> ImportReport:
    """Copy every self-signed CA certificate of `source` into `target` as DER."""
    if not source.is_dir():
        raise CliError(f"{source}: not a directory")
    report = ImportReport()
    files = sorted(p for p in source.iterdir()
                   if p.is_file() and p.suffix.lower() in (".der", ".pem", ".crt"))
    if not files:
        raise CliError(f"{source}: no .der, .pem or .crt files")
    target.mkdir(parents=True, exist_ok=True, mode=0o755)
    for path in files:
        try:
            cert = _load(path.read_bytes())
            _check_paa(cert)
        except ValueError as exc:
            report.refused[path.name] = str(exc)
            continue
        der = cert.public_bytes(Encoding.DER)
        name = f"uone_{hashlib.sha256(der).hexdigest()[:16]}.der"
        (target / name).write_bytes(der)
        report.imported.append(name)
    if report.imported:  # for a plain `matter-server` (the unit's wrapper does not need it)
        (target / ".version").write_text("1")
    return report


def _cmd_import(args: argparse.Namespace) -> int:
    report = import_paa(args.source, args.to)
    for name, why in report.refused.items():
        print(f"refused {name}: {why}", file=sys.stderr)
    if not report.imported:
        raise CliError(f"{args.source}: no PAA certificate imported")
    print(f"imported {len(report.imported)} PAA certificate(s) into {args.to}; restart "
          "uone-matter.service to use them")
    return EXIT_OK


def _load(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("not an X.509 certificate") from None


def _check_paa(cert: x509.Certificate) -> None:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise ValueError("no basicConstraints: not a CA certificate") from None
    if not basic.ca:
        raise ValueError("not a CA certificate (a DAC or PAI?)")
    if cert.issuer != cert.subject:
        raise ValueError("not self-signed: a PAA is a root (is this a PAI?)")
    try:
        cert.verify_directly_issued_by(cert)
    except Exception as exc:  # the library raises several kinds for a bad signature
        raise ValueError(f"its self-signature does not verify ({type(exc).__name__})") from None
