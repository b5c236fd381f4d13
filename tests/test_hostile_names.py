"""A certificate's names are the scanned server's to choose: control characters in them are
written out in the facts, so a NUL can be stored (PostgreSQL refuses one in text and JSON) and
an escape sequence never reaches a page, a terminal or a spreadsheet as itself."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scanner._certs import parse_certificate
from tests.certificates import self_signed


def hostile_certificate() -> bytes:
    san = x509.SubjectAlternativeName([x509.DNSName("a\x00b.example")])
    certificate, _ = self_signed("evil\x00\x1b[31m.example", (san, False))
    return certificate.public_bytes(serialization.Encoding.DER)


def test_control_characters_in_a_certificates_names_are_written_out():
    facts = parse_certificate(hostile_certificate())
    for text in (facts.common_name, facts.subject, facts.issuer, *facts.dns_names):
        assert "\x00" not in text and "\x1b" not in text
    assert facts.common_name == "evil\\x00\\x1b[31m.example"
    assert facts.dns_names == ("a\\x00b.example",)
