"""Certificates: the lab's test PKI, parsing, name matching, trust and the served chain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from pop3lab.certs import INTERMEDIATE_CN, KINDS, make_cert, root_ca_pem, write_cert
from scanner._certs import chain_from_ssl_object, days_left, name_matches, parse_certificate
from scanner._facts import CertificateFacts
from scanner._trust import TrustVerdict, verify_chain

ROOT = root_ca_pem().decode()


def ders(kind: str) -> list[bytes]:
    certs = x509.load_pem_x509_certificates(make_cert(kind).chain_pem)
    return [cert.public_bytes(Encoding.DER) for cert in certs]


def served(kind: str) -> tuple[CertificateFacts, ...]:
    return tuple(parse_certificate(der) for der in ders(kind))


def leaf(kind: str) -> CertificateFacts:
    return served(kind)[0]


def trust(
    chain: tuple[CertificateFacts, ...], bundle: str | None = ROOT, system: bool = False
) -> TrustVerdict:
    return verify_chain(chain, use_system_trust=system, ca_bundle_pem=bundle)


# The lab factory.


def test_it_returns_the_same_bundle_for_the_same_kind_and_name() -> None:
    assert make_cert("good") is make_cert("good")
    assert make_cert("good", "pop.example.test") != make_cert("good")


def test_it_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown certificate kind"):
        make_cert("bogus")


def test_written_files_load_into_an_ssl_context(tmp_path: Path) -> None:
    cert_path, key_path = write_cert(make_cert("good"), tmp_path)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    assert key_path.stat().st_mode & 0o077 == 0


# Parsing.


def test_it_reads_the_fields_of_a_good_certificate() -> None:
    der = ders("good")[0]
    cert = parse_certificate(der)
    assert (cert.subject, cert.common_name) == ("CN=mail.example.test", "mail.example.test")
    assert cert.issuer == f"CN={INTERMEDIATE_CN}"
    assert cert.dns_names == ("mail.example.test",) and cert.ip_addresses == ()
    assert cert.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert cert.serial == format(x509.load_der_x509_certificate(der).serial_number, "x")
    assert cert.not_before.tzinfo is UTC and cert.not_before < datetime.now(UTC) < cert.not_after
    assert ssl.PEM_cert_to_DER_cert(cert.pem) == der
    assert not cert.self_signed and not cert.is_ca


@pytest.mark.parametrize(
    ("kind", "key_type", "bits", "signature"),
    [
        ("good", "RSA", 2048, "sha256"),
        ("rsa1024", "RSA", 1024, "sha256"),
        ("sha1", "RSA", 2048, "sha1"),
        ("ec256", "EC", 256, "sha256"),
        ("exchange_self_signed", "RSA", 2048, "sha1"),
    ],
)
def test_it_reads_key_and_signature(kind: str, key_type: str, bits: int, signature: str) -> None:
    cert = leaf(kind)
    assert (cert.key_type, cert.key_bits, cert.signature_hash) == (key_type, bits, signature)


def test_it_sees_the_exchange_default_certificate_as_self_signed() -> None:
    cert = leaf("exchange_self_signed")
    assert cert.self_signed and cert.subject == cert.issuer == "CN=EX01"
    assert cert.dns_names == ("EX01", "ex01.corp.example.test")
    assert (cert.not_after - cert.not_before).days == 5 * 365 + 1


def test_it_reads_the_intermediate_as_a_ca_and_the_root_as_self_signed() -> None:
    chain = served("untrusted_root")
    assert chain[1].is_ca and not chain[1].self_signed
    assert chain[2].is_ca and chain[2].self_signed


@pytest.mark.parametrize(
    ("kind", "names", "common_name"),
    [
        ("wrong_name", ("other.example.test",), "other.example.test"),
        ("wildcard", ("*.example.test",), "*.example.test"),
        ("cn_only", (), "mail.example.test"),
    ],
)
def test_it_reads_the_names(kind: str, names: tuple[str, ...], common_name: str) -> None:
    assert (leaf(kind).dns_names, leaf(kind).common_name) == (names, common_name)


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [("expired", -10.01, -9.99), ("expiring_soon", 9.9, 10), ("expiring_critical", 2.9, 3)],
)
def test_it_counts_days_left(kind: str, low: float, high: float) -> None:
    assert low < days_left(leaf(kind), datetime.now(UTC)) <= high


def test_a_not_yet_valid_certificate_starts_in_the_future() -> None:
    assert leaf("not_yet_valid").not_before > datetime.now(UTC) + timedelta(days=9)


def test_it_reads_an_ed25519_certificate_with_an_ip_address() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([])  # No subject at all: no CN to read.
    now = datetime.now(UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("192.0.2.7"))])
    cert = (
        x509.CertificateBuilder(name, name, key.public_key(), 1, now, now + timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(key, None)
    )
    facts = parse_certificate(cert.public_bytes(Encoding.DER))
    assert (facts.key_type, facts.key_bits, facts.signature_hash) == ("Ed25519", 256, None)
    assert (facts.ip_addresses, facts.common_name, facts.serial) == (("192.0.2.7",), None, "1")
    assert facts.self_signed and not facts.is_ca


@given(st.binary(max_size=2000))
def test_it_raises_only_value_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_certificate(data)


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_it_parses_damaged_certificates_or_raises_value_error(edits: list[tuple[int, int]]) -> None:
    der = bytearray(ders("good")[0])
    for position, value in edits:
        der[position % len(der)] = value
    try:
        cert = parse_certificate(bytes(der))
    except ValueError:
        return
    assert len(cert.fingerprint_sha256) == 64


# Name matching (RFC 6125).

SAN = replace(
    leaf("good"),
    common_name="cn.example.test",
    dns_names=("mail.example.test", "*.pop.example.test", "*.test"),
    ip_addresses=("192.0.2.7", "2001:db8::7"),
)
CN_ONLY = replace(leaf("cn_only"), common_name="Mail.Example.Test")


@pytest.mark.parametrize(
    ("cert", "name", "expected"),
    [
        (SAN, "mail.example.test", True),
        (SAN, "MAIL.example.test.", True),
        (SAN, "other.example.test", False),
        (SAN, "cn.example.test", False),  # CN is ignored when there is a dNSName
        (SAN, "a.pop.example.test", True),
        (SAN, "pop.example.test", False),
        (SAN, "a.b.pop.example.test", False),
        (SAN, "anything.test", False),  # "*.test" is too broad to honour
        (SAN, "*.pop.example.test", False),
        (SAN, "192.0.2.7", True),
        (SAN, "2001:DB8:0::7", True),
        (SAN, "192.0.2.8", False),
        (CN_ONLY, "mail.example.test", True),
        (CN_ONLY, "pop.example.test", False),
        (replace(CN_ONLY, common_name="192.0.2.7"), "192.0.2.7", False),
        (SAN, "", False),
    ],
)
def test_it_matches_names_as_rfc_6125_says(
    cert: CertificateFacts, name: str, expected: bool
) -> None:
    assert name_matches(cert, name) is expected


def test_the_wildcard_kind_covers_the_service_name() -> None:
    assert name_matches(leaf("wildcard"), "mail.example.test")
    assert not name_matches(leaf("wrong_name"), "mail.example.test")


# Trust.


@pytest.mark.parametrize("system", [False, True])
def test_it_trusts_a_chain_to_the_bundle_root(system: bool) -> None:
    verdict = trust(served("good"), system=system)
    assert verdict == TrustVerdict(
        True, None, "'mail.example.test' chains to trusted root 'PopCompliance Test Root CA'"
    )


def test_it_does_not_trust_the_lab_root_from_system_cas_alone() -> None:
    verdict = trust(served("good"), bundle=None, system=True)
    assert not verdict.trusted and verdict.problem == "incomplete_chain"


def test_it_still_trusts_an_expired_certificate() -> None:
    assert trust(served("expired")).trusted


def test_it_flags_a_missing_intermediate() -> None:
    verdict = trust(served("missing_intermediate"))
    assert verdict.problem == "incomplete_chain" and INTERMEDIATE_CN in verdict.reason


def test_it_flags_a_self_signed_certificate() -> None:
    verdict = trust(served("exchange_self_signed"))
    assert (verdict.problem, verdict.reason) == (
        "self_signed",
        "'EX01' is self-signed and not trusted",
    )


def test_it_trusts_a_self_signed_certificate_the_policy_pins() -> None:
    assert trust(served("exchange_self_signed"), bundle=leaf("exchange_self_signed").pem).trusted


def test_it_flags_an_unknown_root() -> None:
    verdict = trust(served("untrusted_root"))
    assert verdict.problem == "unknown_issuer" and "Untrusted Root CA" in verdict.reason


def test_it_accepts_an_intermediate_as_the_only_anchor() -> None:
    assert trust(served("good"), bundle=served("good")[1].pem).trusted


def test_it_flags_a_forged_signature() -> None:
    der = bytearray(ders("good")[0])
    der[-1] ^= 1
    verdict = trust((parse_certificate(bytes(der)), served("good")[1]))
    assert verdict.problem == "invalid_signature"


def test_it_reports_no_certificate_for_an_empty_chain() -> None:
    assert trust(()).problem == "no_certificate"


def test_it_refuses_a_bundle_without_certificates() -> None:
    with pytest.raises(ValueError):
        trust(served("good"), bundle="not a certificate")


# The chain as served on a real TLS handshake.


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*write_cert(make_cert("good"), tmp_path))
    listener = socket.create_server(("127.0.0.1", 0))
    # accept() is not woken by close() from another thread, so poll a stop flag instead.
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                connection.settimeout(5)
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def test_it_reads_the_served_chain_from_an_ssl_socket(tls_port: int) -> None:
    raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
    with client_context().wrap_socket(raw) as tls:
        chain = chain_from_ssl_object(tls)
    assert [cert.common_name for cert in chain] == ["mail.example.test", INTERMEDIATE_CN]


def test_it_reads_the_served_chain_from_an_asyncio_ssl_object(tls_port: int) -> None:
    async def fetch() -> tuple[CertificateFacts, ...]:
        _, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=client_context())
        chain = chain_from_ssl_object(writer.get_extra_info("ssl_object"))
        writer.close()
        await writer.wait_closed()
        return chain

    assert asyncio.run(fetch()) == served("good")


def test_every_kind_has_a_leaf_the_parser_reads() -> None:
    assert all(leaf(kind).fingerprint_sha256 for kind in KINDS)
