"""The scanner against Exchange on every Windows Server it runs on (pop3lab's SChannel
profiles): what it enumerates is exactly what SChannel serves, in SChannel's order, on both
entry points, and the verdicts follow from it under the default profile and under Mozilla old."""

from __future__ import annotations

import pytest

from pop3lab.config import EndpointConfig
from pop3lab.schannel import EXCHANGE_ON_WINDOWS, exchange_tls, served
from tests.conftest import check_of, lab_policy

PAIRS = [
    (exchange, windows) for exchange, hosts in EXCHANGE_ON_WINDOWS.items() for windows in hosts
]


@pytest.mark.parametrize(("exchange", "windows"), PAIRS)
def test_the_enumeration_is_exactly_what_schannel_serves_in_its_order(emulated, exchange, windows):
    report = emulated.scan(EndpointConfig(profile=exchange, windows=windows))
    endpoint = report.endpoints[0]
    expected = served(exchange_tls(exchange, windows))
    for support in (endpoint.pop3s.support, endpoint.pop3.stls.support):
        assert support is not None and support.error is None
        assert {name: list(suites) for name, suites in support.cipher_suites.items()} == expected
        accepted = [name for name, ok in support.accepted_versions.items() if ok]
        assert accepted == list(expected)
        assert support.server_order is True
    dh_suites = any("_DHE_" in name for names in expected.values() for name in names)
    dh_bits = exchange_tls(exchange, windows).windows.dh_bits
    assert endpoint.pop3s.support.dh_bits == (dh_bits if dh_suites else None)


@pytest.mark.parametrize(("exchange", "windows"), PAIRS)
def test_every_exchange_on_default_windows_fails_the_default_profile(emulated, exchange, windows):
    report = emulated.scan(EndpointConfig(profile=exchange, windows=windows))
    ciphers = check_of(report, "tls.ciphers")
    assert ciphers.status == "fail"
    # SChannel keeps 3DES in every default list; older ones keep RC4 too.
    assert "3DES (TLS_RSA_WITH_3DES_EDE_CBC_SHA" in ciphers.summary
    protocols = check_of(report, "tls.protocols")
    legacy = any(p in exchange_tls(exchange, windows).protocols for p in ("SSLv3", "TLSv1"))
    assert protocols.status == ("fail" if legacy else "pass")
    assert report.compliant is False


def test_windows_2008r2_is_named_for_sslv3_tls10_rc4_and_a_1024_bit_dh_prime(emulated):
    report = emulated.scan(EndpointConfig(profile="exchange2010", windows="2008r2"))
    protocols = check_of(report, "tls.protocols").summary
    assert "SSLv3 and TLS 1.0 accepted on" in protocols
    ciphers = check_of(report, "tls.ciphers").summary
    assert "RC4 (TLS_RSA_WITH_RC4_128_SHA on SSLv3 and TLS 1.0" in ciphers
    assert "a 1024-bit DH prime (at least 2048 required)" in ciphers


def test_mozilla_old_still_fails_rc4_but_lets_3des_and_tls10_pass(emulated):
    old = lab_policy(tls_profile="mozilla-old")
    report = emulated.scan(EndpointConfig(profile="exchange2016", windows="2016"), policy=old)
    ciphers = check_of(report, "tls.ciphers")
    assert ciphers.status == "fail"
    assert "RC4" in ciphers.summary and "3DES" not in ciphers.summary.split("which")[0]
    assert check_of(report, "tls.protocols").status == "pass"
