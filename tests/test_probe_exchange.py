"""The probe against the emulator's Exchange servers: every LoginType, NTLM on and off, and
every Exchange version it names; never a password before TLS."""

import pytest

from pop3lab.config import EndpointConfig
from tests.conftest import check_of, status_of

EXCHANGE_VERSIONS = ("exchange2010", "exchange2013", "exchange2016")


@pytest.mark.parametrize("profile", EXCHANGE_VERSIONS)
@pytest.mark.parametrize("ntlm", [True, False])
def test_plain_text_login_fails_and_is_read_as_such(emulated, profile, ntlm):
    report = emulated.scan(EndpointConfig(profile=profile, login_type="PlainTextLogin", ntlm=ntlm))
    endpoint = report.endpoints[0]
    assert status_of(report, "pop3.plaintext_login") == "fail"
    assert endpoint.pop3.plaintext_login == "accepted"
    assert endpoint.pop3.certainty == "confirmed"
    assert endpoint.pop3.user_reply == "+OK"
    assert endpoint.login_type == "PlainTextLogin"
    assert endpoint.product == f"Microsoft Exchange {profile.removeprefix('exchange')}"
    assert report.compliant is False


@pytest.mark.parametrize("profile", EXCHANGE_VERSIONS)
@pytest.mark.parametrize("ntlm", [True, False])
def test_secure_login_passes(emulated, profile, ntlm):
    report = emulated.scan(EndpointConfig(profile=profile, login_type="SecureLogin", ntlm=ntlm))
    endpoint = report.endpoints[0]
    assert status_of(report, "pop3.plaintext_login") == "pass"
    assert endpoint.pop3.user_reply == "-ERR Command is not valid in this state."
    assert endpoint.login_type == "SecureLogin"
    assert endpoint.pop3.capabilities is not None and "STLS" in endpoint.pop3.capabilities


def test_plain_text_authentication_with_ntlm_passes_and_is_named(emulated):
    config = EndpointConfig(login_type="PlainTextAuthentication", ntlm=True)
    report = emulated.scan(config)
    assert status_of(report, "pop3.plaintext_login") == "pass"
    assert report.endpoints[0].login_type == "PlainTextAuthentication"


def test_plain_text_authentication_without_ntlm_looks_like_secure_login(emulated):
    config = EndpointConfig(login_type="PlainTextAuthentication", ntlm=False)
    report = emulated.scan(config)
    assert status_of(report, "pop3.plaintext_login") == "pass"
    assert report.endpoints[0].login_type == "SecureLogin"


def test_a_fully_secure_exchange_server_is_compliant_apart_from_srv(emulated):
    report = emulated.scan(EndpointConfig())
    statuses = {check.id: check.status for check in report.checks}
    for check_id in ("imaps.available", "imap.starttls", "imap.plaintext_login"):
        assert statuses.pop(check_id) == "skip"  # IMAP4 not declared
    for check_id in ("submissions.available", "submission.starttls", "submission.plaintext_auth"):
        assert statuses.pop(check_id) == "skip"  # submission not declared
    assert statuses.pop("auth.ntlm_disclosure") == "skip"  # SecureLogin lists no NTLM before TLS
    assert statuses.pop("dns.srv") == "warn"  # the lab DNS has no SRV records
    assert statuses.pop("pop3.tls_login") == "skip"  # no monitoring credentials given
    assert statuses.pop("cert.revocation") == "warn"  # the lab CA publishes no OCSP nor CRL
    assert set(statuses.values()) == {"pass"}, statuses
    assert report.compliant is True


def test_the_stls_session_reports_capabilities_inside_tls(emulated):
    report = emulated.scan(EndpointConfig(login_type="SecureLogin", ntlm=True))
    stls = report.endpoints[0].pop3.stls
    assert stls is not None and stls.tls is not None
    assert stls.reply == "+OK Begin TLS negotiation."
    assert stls.capabilities is not None and "SASL NTLM GSSAPI PLAIN" in stls.capabilities
    assert stls.tls.version == "TLSv1.3"


def test_no_certificate_bound_fails_pop3s_and_stls_and_quotes_exchange(emulated):
    report = emulated.scan(EndpointConfig(cert_kind=None))
    pop3s = check_of(report, "pop3s.available")
    assert pop3s.status == "fail"
    assert "-ERR Connection is closed. 13" in pop3s.summary
    assert status_of(report, "pop3.stls") == "fail"
    assert status_of(report, "cert.trusted") == "skip"


def test_an_unbound_cleartext_port_skips_its_checks(emulated):
    report = emulated.scan(EndpointConfig(pop3=False))
    assert status_of(report, "pop3.plaintext_login") == "skip"
    assert status_of(report, "pop3.stls") == "skip"
    assert status_of(report, "pop3s.available") == "pass"


def test_an_unbound_pop3s_port_fails(emulated):
    report = emulated.scan(EndpointConfig(pop3s=False))
    assert status_of(report, "pop3s.available") == "fail"
    assert "closed" in check_of(report, "pop3s.available").summary


def test_a_policy_without_a_cleartext_port_fails_an_open_port_110(emulated):
    from tests.conftest import lab_policy

    report = emulated.scan(EndpointConfig(), policy=lab_policy(allow_cleartext_port=False))
    assert status_of(report, "pop3.plaintext_login") == "fail"


def test_legacy_tls_versions_are_really_detected(emulated):
    report = emulated.scan(EndpointConfig(tls_versions=("TLSv1", "TLSv1.2")))
    accepted = report.endpoints[0].pop3s.support.accepted_versions
    assert accepted["TLSv1"] is True and accepted["TLSv1.1"] is True
    assert accepted["TLSv1.3"] is False
    stls_accepted = report.endpoints[0].pop3.stls.support.accepted_versions
    assert stls_accepted["TLSv1"] is True
    assert status_of(report, "tls.protocols") == "fail"
    assert "TLS 1.0" in check_of(report, "tls.protocols").summary


def test_a_tls13_only_server_passes_tls_protocols(emulated):
    report = emulated.scan(EndpointConfig(tls_versions=("TLSv1.3", "TLSv1.3")))
    accepted = report.endpoints[0].pop3s.support.accepted_versions
    assert accepted == {
        "SSLv2": False,
        "SSLv3": False,
        "TLSv1": False,
        "TLSv1.1": False,
        "TLSv1.2": False,
        "TLSv1.3": True,
    }
    assert status_of(report, "tls.protocols") == "pass"


def test_the_quit_reply_names_the_exchange_version(emulated):
    report = emulated.scan(EndpointConfig(profile="exchange2010"))
    quit_reply = report.endpoints[0].pop3.quit_reply
    assert quit_reply == "+OK Microsoft Exchange Server 2010 POP3 server signing off."


@pytest.mark.parametrize(
    ("login_type", "verdict"),
    [("PlainTextLogin", "fail"), ("PlainTextAuthentication", "pass"), ("SecureLogin", "pass")],
)
def test_no_probe_connection_spends_exchanges_error_budget(emulated, login_type, verdict):
    # Exchange hangs up at a connection's third rejected command: a probe that risks even a
    # second one is one server quirk away from losing its answer.
    endpoint = emulated.start(EndpointConfig(login_type=login_type))
    report = emulated.scan_endpoint(endpoint)
    assert status_of(report, "pop3.plaintext_login") == verdict
    rejected = [log.rejected_commands for log in endpoint.journal.connections]
    assert len(rejected) > 2 and max(rejected) <= 1, rejected
