"""Hostile TLS endpoints against the protocol-level enumeration: each ends within the deadline,
says what went wrong in words an operator understands, holds bounded memory, and never lets
the server pass as compliant."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from pop3lab.hostile import HostileConfig
from scanner import Settings, TlsSupport
from scanner._pop3 import POP3_DIALECT
from scanner._session import AddressSession, LoginGate
from tests.conftest import check_of

TIMEOUT = 1.5
# One deadline for the hellos in flight when the server stalls, one for a hello queued behind
# the connection cap; a server that answers at once takes far less.
DEADLINE = 2 * TIMEOUT + 1.0
# The enumeration may hold a record and a flight, never what a hostile length claims.
MEMORY_CEILING = 4 * 1024 * 1024


def enumerate_hostile(emulated, behaviour: str, *, after_stls: bool = False) -> TlsSupport:
    """What the enumeration makes of `behaviour` on its TLS port (or after STLS)."""
    endpoint = emulated.start(HostileConfig(behaviour, interval=0.2, after_stls=after_stls))
    target = emulated.target(endpoint)
    session = AddressSession(endpoint.address, target, Settings(timeout=TIMEOUT), LoginGate())
    port = target.pop3_port if after_stls else target.pop3s_port
    tracemalloc.start()
    started = time.monotonic()
    try:
        upgrade = POP3_DIALECT if after_stls else None
        support = asyncio.run(session.tls_support(port, upgrade=upgrade))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < DEADLINE, f"{behaviour}: took {elapsed:.1f} s"
    assert peak < MEMORY_CEILING, f"{behaviour}: held {peak} bytes"
    return support


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("tls_suite_not_offered", "which we did not offer"),
        ("tls_version_not_offered", "chose version 0x7F7F, which we did not offer"),
        ("tls_truncated_record", "cut a TLS record short"),
        ("tls_huge_message", "a handshake message claims 16777215 bytes"),
        ("tls_alert_storm", "sent alert after alert, never a hello"),
        ("tls_silent_after_hello", f"no answer within {TIMEOUT:g} s"),
    ],
)
def test_a_hostile_tls_answer_ends_in_time_with_a_reason(emulated, behaviour, reason):
    support = enumerate_hostile(emulated, behaviour)
    assert reason in (support.error or ""), support.error
    accepted = [name for name, ok in support.accepted_versions.items() if ok]
    assert accepted == [] or behaviour == "tls_truncated_record"
    assert None in support.accepted_versions.values() or behaviour == "tls_truncated_record"


def test_a_silent_server_costs_one_deadline_not_one_per_hello(emulated):
    started = time.monotonic()
    support = enumerate_hostile(emulated, "tls_silent_after_hello")
    assert time.monotonic() - started < TIMEOUT + 1.0
    assert support.duration_ms < (TIMEOUT + 1.0) * 1000


def test_a_hostile_answer_after_stls_is_handled_the_same(emulated):
    support = enumerate_hostile(emulated, "tls_suite_not_offered", after_stls=True)
    assert "which we did not offer" in (support.error or "")


@pytest.mark.parametrize(
    "behaviour",
    [
        "tls_suite_not_offered",
        "tls_version_not_offered",
        "tls_huge_message",
        "tls_alert_storm",
    ],
)
def test_a_scan_of_a_hostile_tls_port_is_never_compliant(emulated, behaviour):
    started = time.monotonic()
    report = emulated.scan(HostileConfig(behaviour, pop3=False, interval=0.2), timeout=TIMEOUT)
    # The full handshake, up to 2 s listening for plaintext, then the enumeration.
    assert time.monotonic() - started < TIMEOUT + 2.0 + DEADLINE
    assert report.compliant is not True
    assert check_of(report, "pop3s.available").status == "fail"
    assert check_of(report, "tls.ciphers").status in ("error", "fail")


def test_a_server_refusing_long_hellos_is_asked_in_parts(emulated):
    # The lab's server sends a bare ServerHello, so the curve probe that reads on to the key
    # exchange waits out its deadline; the listing itself is complete.
    support = enumerate_hostile(emulated, "tls_small_hellos_only")
    assert set(support.cipher_suites) == {"TLSv1.2"}
    assert sorted(support.cipher_suites["TLSv1.2"]) == [
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    ]
    assert [v for v, ok in support.accepted_versions.items() if ok] == ["TLSv1.2"]
    # So a later check before reuse asks it in parts too.
    assert support.answers_long_hellos is False


def test_an_sslv2_server_hello_without_ciphers_still_means_sslv2_is_spoken(emulated):
    support = enumerate_hostile(emulated, "sslv2_without_ciphers")
    assert support.accepted_versions["SSLv2"] is True
    assert "SSLv2" not in support.cipher_suites
