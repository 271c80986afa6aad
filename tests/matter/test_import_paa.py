"""`uone-hub matter import-paa`: only self-signed CA certificates are kept, as DER, with the
marker that stops python-matter-server from emptying the directory; refusals are named."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.cli import EXIT_OK, EXIT_USAGE, main
from tests.matter.conftest import certificate


def test_import_keeps_roots_and_names_refusals(tmp_path: Path, capsys) -> None:
    src, dst = tmp_path / "download", tmp_path / "paa"
    src.mkdir()
    root, root_key = certificate("Vendor PAA", ca=True)
    pai, _ = certificate("Vendor PAI", ca=True, issuer=(root.subject, root_key))
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
    leaf, _ = certificate("A device", ca=False)
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
