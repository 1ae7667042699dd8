"""Test certificates: CAs, and the certificates they sign, as PEM files made with openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, PEM files."""

    cert: Path
    key: Path


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(cwd: Path, name: str) -> Pair:
    """A self-signed CA certificate and its key, in ``cwd``."""
    pair = Pair(cwd / f"{name}.crt", cwd / f"{name}.key")
    _openssl(
        cwd,
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN=MAC test {name}",
        "-keyout", str(pair.key), "-out", str(pair.cert),
    )  # fmt: skip
    return pair


def issue(cwd: Path, ca: Pair, name: str, extensions: str, subject: str = "") -> Pair:
    """A certificate for ``name`` signed by ``ca``, with ``extensions`` (openssl's
    ``-extfile`` lines), and its key; its subject is ``/CN=<name>`` unless ``subject`` is
    given."""
    pair = Pair(cwd / f"{name}.crt", cwd / f"{name}.key")
    csr, ext = cwd / f"{name}.csr", cwd / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        cwd,
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", subject or f"/CN={name}", "-keyout", str(pair.key), "-out", str(csr),
    )  # fmt: skip
    _openssl(
        cwd,
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(pair.cert),
    )  # fmt: skip
    return pair


SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"
