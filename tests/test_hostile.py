"""Hostile servers: each scan ends within its deadline, says what went wrong in words an
operator understands, and never counts the server as compliant."""

import time

import pytest

from pop3lab.hostile import HostileConfig
from tests.conftest import check_of

TIMEOUT = 1.5
# Each connection has TIMEOUT; after a failed TLS handshake we listen up to 2 s more for
# what the server says in the clear. Nothing may take longer than that.
DEADLINE = TIMEOUT + 2.0 + 1.0


def scan_hostile(emulated, behaviour, **config):
    started = time.monotonic()
    report = emulated.scan(HostileConfig(behaviour, **config), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE, f"{behaviour}: scan took {elapsed:.1f} s"
    assert report.compliant is not True
    return report


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("no_banner", "no answer within 1.5 s"),
        ("slow_banner", "no answer within 1.5 s"),
        ("endless_line", "longer than 4096 bytes"),
        ("huge_line", "longer than 4096 bytes"),
        ("garbage", ""),
        ("close_after_banner", "closed the connection without replying"),
    ],
)
def test_a_broken_cleartext_port_is_an_error_with_a_reason(emulated, behaviour, reason):
    report = scan_hostile(emulated, behaviour)
    check = check_of(report, "pop3.plaintext_login")
    assert check.status == "error"
    assert reason in check.summary
    assert report.endpoints[0].pop3.plaintext_login == "unknown"


def test_garbage_is_named_as_not_pop3(emulated):
    report = scan_hostile(emulated, "garbage")
    error = report.endpoints[0].pop3.error or ""
    assert "not POP3" in error or "longer than" in error


@pytest.mark.parametrize("behaviour", ["no_banner", "slow_banner"])
def test_a_silent_tls_port_is_an_error_not_a_fail(emulated, behaviour):
    report = scan_hostile(emulated, behaviour)
    check = check_of(report, "pop3s.available")
    assert check.status == "error"
    assert "no answer within" in check.summary


def test_plaintext_on_the_tls_port_fails_and_quotes_the_server(emulated):
    report = scan_hostile(emulated, "non_tls_on_tls_port")
    check = check_of(report, "pop3s.available")
    assert check.status == "fail"
    assert "Microsoft Exchange POP3 service is ready" in check.summary


def test_a_reset_mid_handshake_fails_pop3s_with_the_reason(emulated):
    report = scan_hostile(emulated, "reset_mid_handshake")
    check = check_of(report, "pop3s.available")
    assert check.status == "fail"
    assert "reset" in check.summary


def test_stls_advertised_then_refused_fails_and_quotes_the_refusal(emulated):
    report = scan_hostile(emulated, "stls_refused")
    check = check_of(report, "pop3.stls")
    assert check.status == "fail"
    assert "-ERR Command is not valid in this state." in check.summary
    assert check_of(report, "pop3.plaintext_login").status == "pass"


def test_stls_accepted_then_garbage_fails_the_upgrade(emulated):
    report = scan_hostile(emulated, "stls_garbage")
    check = check_of(report, "pop3.stls")
    assert check.status == "fail"
    assert "TLS" in check.summary


def test_a_silent_server_leaves_its_certificate_checks_undetermined(emulated):
    report = scan_hostile(emulated, "no_banner")
    for check_id in ("tls.protocols", "cert.trusted", "cert.name", "cert.validity"):
        assert check_of(report, check_id).status == "error", check_id
    assert "could not determine" in check_of(report, "cert.trusted").summary
