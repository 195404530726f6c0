"""A store-local certificate authority for HTTPS and MQTT over TLS (`instore config tls`).

Passwords, session cookies and enrolment replies (a customer's beacon key) must not cross the
store Wi-Fi in clear, and a shop has no public domain name, so it gets its own small CA: `ca.crt`
on each tablet and as Mosquitto's `cafile` (docs/deploy.md, section 3). `make_ca` and `issue`
are pure (keys and times passed in); `generate` writes the files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650  # the root lives on every tablet: ten years, so it is not replaced during the shop's life
CERT_DAYS = 825  # the longest server certificate lifetime Apple devices accept


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(key: ec.EllipticCurvePrivateKey, store_id: str, now: dt.datetime) -> x509.Certificate:
    """A self-signed root that may sign server certificates only (path length 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"instore {store_id} store CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey,
    names: list[str], now: dt.datetime,
) -> x509.Certificate:
    """A server certificate for `names` (host names or IP addresses, the first is the common name)."""
    if not names:
        raise ValueError("names: at least one host name or address is needed")
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)  # a key is never briefly world-readable
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def generate(store_id: str, out_dir: str | Path, names: list[str], now: dt.datetime | None = None) -> TlsFiles:
    """Write `ca.crt`/`ca.key` (kept if present, so tablets keep trusting it) and a fresh
    `server.crt`/`server.key` for `names` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    files = TlsFiles(out / "ca.crt", out / "ca.key", out / "server.crt", out / "server.key")
    if files.ca_cert.exists() and files.ca_key.exists():
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{files.ca_key}: not an EC private key (this tool makes P-256 keys)")
    else:
        ca_key = new_key()
        ca = make_ca(ca_key, store_id, now)
        _write(files.ca_key, _pem_key(ca_key), 0o600)
        _write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    key = new_key()
    _write(files.key, _pem_key(key), 0o640)
    _write(files.cert, issue(ca, ca_key, key, names, now).public_bytes(serialization.Encoding.PEM), 0o644)
    return files
