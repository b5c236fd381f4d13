"""Real IMAP and SMTP submission servers (tests/imap_servers.py, tests/submission_servers.py)
say what their configuration means, with plain imaplib and smtplib on loopback: the ground
truth the IMAP and submission probes are checked against.

No test sends a password before TLS: `AUTHENTICATE PLAIN` and `AUTH PLAIN` go without an initial
response, and a continuation is cancelled with `*`.

TRANSCRIPT
"""

from __future__ import annotations

import base64
import imaplib
import smtplib
import ssl

import pytest

from pop3lab.certs import root_ca_pem
from tests.imap_servers import IMAP_SERVERS, ImapServerFactory
from tests.mail_endpoints import ACCOUNT, MailEndpoint
from tests.submission_servers import SUBMISSION_SERVERS, SubmissionServerFactory

pytestmark = pytest.mark.mailservers

SERVICE_NAME = "mail.example.test"
TIMEOUT = 5.0
EHLO_NAME = "client.example.test"


def _tls_context() -> ssl.SSLContext:
    """Trusts the test root only. imaplib and smtplib name the server by its address, so the
    name is checked apart, in `_assert_test_certificate`."""
    context = ssl.create_default_context(cadata=root_ca_pem().decode())
    context.check_hostname = False
    return context


def _assert_test_certificate(sock: object) -> None:
    assert isinstance(sock, ssl.SSLSocket)
    names = [value for kind, value in sock.getpeercert()["subjectAltName"] if kind == "DNS"]
    assert names == [SERVICE_NAME]


@pytest.fixture(params=IMAP_SERVERS)
def imap(request: pytest.FixtureRequest, imap_server: ImapServerFactory) -> MailEndpoint:
    return imap_server(request.param)


@pytest.fixture(params=SUBMISSION_SERVERS)
def submission(
    request: pytest.FixtureRequest, submission_server: SubmissionServerFactory
) -> MailEndpoint:
    return submission_server(request.param)


# IMAP


def _imap(endpoint: MailEndpoint) -> imaplib.IMAP4:
    return imaplib.IMAP4(endpoint.host, endpoint.starttls_port, timeout=TIMEOUT)


def _capabilities(client: imaplib.IMAP4) -> list[str]:
    status, data = client.capability()
    assert status == "OK"
    return bytes(data[-1]).decode().upper().split()


def test_imap_greets_and_offers_starttls(imap: MailEndpoint) -> None:
    with _imap(imap) as client:
        assert client.welcome.startswith(b"* OK")
        assert "STARTTLS" in _capabilities(client)


def test_imap_says_logindisabled_before_tls_as_configured(imap: MailEndpoint) -> None:
    with _imap(imap) as client:
        assert ("LOGINDISABLED" in _capabilities(client)) is imap.logindisabled


def test_imap_authenticate_plain_before_tls_is_continued_or_refused(imap: MailEndpoint) -> None:
    with _imap(imap) as client:
        tag = client._new_tag().decode()
        client.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
        reply = client.readline()
        if imap.cleartext_auth:
            assert reply.startswith(b"+")
            client.send(b"*\r\n")
            reply = client.readline()
        assert reply.split()[:2] in ([tag.encode(), b"NO"], [tag.encode(), b"BAD"])


def test_imap_starttls_hides_starttls_and_logindisabled(imap: MailEndpoint) -> None:
    with _imap(imap) as client:
        assert client.starttls(_tls_context())[0] == "OK"
        _assert_test_certificate(client.sock)
        capabilities = _capabilities(client)
    assert "AUTH=PLAIN" in capabilities
    assert not {"STARTTLS", "LOGINDISABLED"} & set(capabilities)


def test_imap_login_after_starttls_works(imap: MailEndpoint) -> None:
    with _imap(imap) as client:
        client.starttls(_tls_context())
        assert client.login(*ACCOUNT)[0] == "OK"
        client.logout()


def test_imap_implicit_tls_greets_and_login_works(imap: MailEndpoint) -> None:
    context = _tls_context()
    with imaplib.IMAP4_SSL(
        imap.host, imap.tls_port, ssl_context=context, timeout=TIMEOUT
    ) as client:
        assert client.welcome.startswith(b"* OK")
        _assert_test_certificate(client.sock)
        assert "LOGINDISABLED" not in _capabilities(client)
        assert client.login(*ACCOUNT)[0] == "OK"
        client.logout()


# SMTP submission


def _smtp(endpoint: MailEndpoint) -> smtplib.SMTP:
    client = smtplib.SMTP(endpoint.host, endpoint.starttls_port, timeout=TIMEOUT)
    client.ehlo(EHLO_NAME)
    return client


def _mechanisms(client: smtplib.SMTP) -> list[str]:
    """The SASL mechanisms of the last EHLO: Dovecot says a bare AUTH when it offers none."""
    return client.esmtp_features.get("auth", "").upper().split()


def _auth_plain(client: smtplib.SMTP) -> tuple[int, bytes]:
    user, password = ACCOUNT
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {blob}")


def test_submission_greets_and_offers_starttls(submission: MailEndpoint) -> None:
    with _smtp(submission) as client:
        assert client.has_extn("starttls")


def test_submission_advertises_auth_before_tls_as_configured(submission: MailEndpoint) -> None:
    with _smtp(submission) as client:
        assert ("PLAIN" in _mechanisms(client)) is submission.cleartext_auth
        assert _mechanisms(client) in ([], ["PLAIN", "LOGIN"])


def test_submission_auth_plain_before_tls_is_continued_or_refused(
    submission: MailEndpoint,
) -> None:
    with _smtp(submission) as client:
        code, _ = client.docmd("AUTH", "PLAIN")
        if submission.cleartext_auth:
            assert code == 334
            code, _ = client.docmd("*")
            assert code == 501
        else:
            assert 500 <= code < 600


def test_submission_starttls_then_auth_plain_works(submission: MailEndpoint) -> None:
    with _smtp(submission) as client:
        assert client.starttls(context=_tls_context())[0] == 220
        _assert_test_certificate(client.sock)
        client.ehlo(EHLO_NAME)
        assert not client.has_extn("starttls")
        assert "PLAIN" in _mechanisms(client)
        assert _auth_plain(client)[0] == 235


def test_submission_implicit_tls_greets_and_auth_plain_works(submission: MailEndpoint) -> None:
    context = _tls_context()
    with smtplib.SMTP_SSL(
        submission.host, submission.tls_port, timeout=TIMEOUT, context=context
    ) as client:
        _assert_test_certificate(client.sock)
        client.ehlo(EHLO_NAME)
        assert "PLAIN" in _mechanisms(client)
        assert _auth_plain(client)[0] == 235
