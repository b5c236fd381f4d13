"""A certificate's names are the scanned server's to choose: control characters in them are
written out in the facts, so a NUL can be stored (PostgreSQL refuses one in text and JSON) and
an escape sequence never reaches a page, a terminal or a spreadsheet as itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scanner._certs import parse_certificate


def hostile_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil\x00\x1b[31m.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a\x00b.example")]), False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_control_characters_in_a_certificates_names_are_written_out():
    facts = parse_certificate(hostile_certificate())
    for text in (facts.common_name, facts.subject, facts.issuer, *facts.dns_names):
        assert "\x00" not in text and "\x1b" not in text
    assert facts.common_name == "evil\\x00\\x1b[31m.example"
    assert facts.dns_names == ("a\\x00b.example",)
