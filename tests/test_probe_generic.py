"""The probe against servers that are not Exchange: read generally, say how sure it is."""

from pop3lab.config import EndpointConfig
from tests.conftest import check_of, status_of


def test_a_server_that_asks_for_the_password_before_tls_fails_whatever_capa_lists(emulated):
    # A TLS-enforcing proxy or a honeypot: +OK to USER, then every PASS refused. A mail client
    # has sent its password in the clear by then, so this fails, said as what was seen.
    config = EndpointConfig(profile="generic", generic_accepts_user_rejects_pass=True)
    report = emulated.scan(config)
    pop3 = report.endpoints[0].pop3
    assert (pop3.plaintext_login, pop3.certainty) == ("accepted", "confirmed")
    assert "although CAPA does not list USER" in (pop3.evidence or "")
    check = check_of(report, "pop3.plaintext_login")
    assert check.status == "fail"
    assert "asks for the password before TLS (USER answered “+OK”)" in check.summary
    assert "likely" not in check.summary


def test_a_dovecot_like_server_refusing_plaintext_passes_with_its_reply_as_evidence(emulated):
    report = emulated.scan(EndpointConfig(profile="dovecot_like", login_type="SecureLogin"))
    pop3 = report.endpoints[0].pop3
    assert pop3.plaintext_login == "refused"
    assert "[AUTH]" in (pop3.user_reply or "")
    assert report.endpoints[0].product == "Dovecot"
    assert report.endpoints[0].login_type is None
    assert status_of(report, "pop3.plaintext_login") == "pass"


def test_a_dovecot_like_server_allowing_plaintext_fails(emulated):
    report = emulated.scan(EndpointConfig(profile="dovecot_like", login_type="PlainTextLogin"))
    assert status_of(report, "pop3.plaintext_login") == "fail"
