"""Certificates for servers the tests run on loopback (slapd, the OpenID Connect provider): a
test CA of their own and a server certificate for 127.0.0.1 and localhost, written as PEM
files. A second, unrelated CA lets a test show that a client trusting only it refuses the
server. A plain module, not a pytest plugin."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerFiles:
    """Where a server's certificate and key, and the CA that issued it, were written."""

    ca: Path
    certificate: Path
    key: Path
    # A CA that issued nothing this server serves.
    other_ca: Path


def write_server_files(directory: Path) -> ServerFiles:
    """The test CA, a certificate it issued for 127.0.0.1 and localhost (with its key), and
    an unrelated CA, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem, certificate_pem, key_pem = _server_pems()
    files = ServerFiles(
        ca=directory / "test-ca.pem",
        certificate=directory / "server.pem",
        key=directory / "server.key",
        other_ca=directory / "other-ca.pem",
    )
    files.ca.write_bytes(ca_pem)
    files.certificate.write_bytes(certificate_pem)
    files.key.touch(mode=0o600)
    files.key.write_bytes(key_pem)
    files.other_ca.write_bytes(_pem(_ca("PopCompliance Unrelated Test CA")[0]))
    return files


@cache
def _server_pems() -> tuple[bytes, bytes, bytes]:
    """One CA and one server certificate per test run (key generation is the slow part)."""
    ca, ca_key = _ca("PopCompliance Loopback Test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        _builder("localhost", key.public_key(), ca.subject, ca_key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _pem(ca), _pem(certificate), key_pem


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        _builder(name, key.public_key(), subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _builder(
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePublicKey,
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
