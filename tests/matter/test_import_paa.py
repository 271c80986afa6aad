"""`uone-hub matter import-paa`: only self-signed CA certificates are kept, as DER, with the
marker that stops python-matter-server from emptying the directory; refusals are named."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hub.cli import EXIT_OK, EXIT_USAGE, main


def _cert(name: str, *, ca: bool, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
          = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def test_import_keeps_roots_and_names_refusals(tmp_path: Path, capsys) -> None:
    src, dst = tmp_path / "download", tmp_path / "paa"
    src.mkdir()
    root, root_key = _cert("Vendor PAA", ca=True)
    pai, _ = _cert("Vendor PAI", ca=True, issuer=(root.subject, root_key))
    (src / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    (src / "pai.der").write_bytes(pai.public_bytes(Encoding.DER))
    (src / "junk.der").write_bytes(b"not a certificate")
    (src / "README.txt").write_text("ignored")

    assert main(["matter", "import-paa", str(src), "--to", str(dst)]) == EXIT_OK
    out = capsys.readouterr()
    assert "imported 1 PAA" in out.out
    assert "refused pai.der: not self-signed" in out.err
    assert "refused junk.der: not an X.509 certificate" in out.err
    written = [p for p in dst.iterdir() if p.suffix == ".der"]
    assert len(written) == 1
    assert x509.load_der_x509_certificate(written[0].read_bytes()) == root
    assert (dst / ".version").read_text() == "1"


def test_import_of_nothing_usable_fails(tmp_path: Path, capsys) -> None:
    src = tmp_path / "download"
    src.mkdir()
    leaf, _ = _cert("A device", ca=False)
    (src / "dac.der").write_bytes(leaf.public_bytes(Encoding.DER))
    assert main(["matter", "import-paa", str(src), "--to", str(tmp_path / "paa")]) \
        == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refused dac.der: not a CA certificate" in err
    assert "no PAA certificate imported" in err
    assert not (tmp_path / "paa" / ".version").exists()


def test_import_of_the_matter_test_paa(tmp_path: Path, matter_parts) -> None:
    """The real test PAA matter.js devices chain to is accepted."""
    from tests.doubles import matter

    src = tmp_path / "src"
    matter.write_test_paa(matter_parts[1], src)
    (src / ".version").unlink()
    assert main(["matter", "import-paa", str(src), "--to", str(tmp_path / "paa")]) == EXIT_OK
    assert len(list((tmp_path / "paa").glob("*.der"))) == 2


def test_import_from_a_missing_directory(tmp_path: Path, capsys) -> None:
    assert main(["matter", "import-paa", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert "not a directory" in capsys.readouterr().err
