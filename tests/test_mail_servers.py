"""Real IMAP and SMTP submission servers (tests/imap_servers.py, tests/submission_servers.py)
say what their configuration means, with plain imaplib and smtplib on loopback: the ground
truth the IMAP and submission probes are checked against.

No test sends a password before TLS: `AUTHENTICATE PLAIN` and `AUTH PLAIN` go without an initial
response, and a continuation is cancelled with `*`.

What each one says, step by step (Debian 12: Dovecot 2.3.19.1, GNU Mailutils 3.15, Postfix
3.7.11), each line as sent but without its CRLF; a line too long for this page goes on indented.

IMAP before TLS
- Greeting. Dovecot: `* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+
    STARTTLS LOGINDISABLED] Dovecot (Debian) ready.`; with plaintext allowed `… LITERAL+ STARTTLS
    AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.`. Mailutils: `* OK IMAP4rev1`, in every mode.
- `a1 CAPABILITY`. Dovecot: `* CAPABILITY` and the greeting's list, then `a1 OK Pre-login
    capabilities listed, post-login capabilities have more.`. Mailutils (tls-mode ondemand):
    `* CAPABILITY IMAP4rev1 NAMESPACE ID IDLE LITERAL+ UNSELECT STARTTLS AUTH=GSSAPI
    AUTH=ANONYMOUS AUTH=EXTERNAL AUTH=LOGIN AUTH=PLAIN AUTH=SECURID AUTH=DIGEST-MD5 AUTH=CRAM-MD5
    AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-1-PLUS AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS
    AUTH=SAML20 AUTH=OPENID20 AUTH=GSSAPI AUTH=GS2-KRB5`, with `LOGINDISABLED` before `STARTTLS`
    under login-disabled; tls-mode required: `* CAPABILITY IMAP4rev1 NAMESPACE ID IDLE LITERAL+
    UNSELECT XTLSREQUIRED STARTTLS` (no AUTH=, and LOGINDISABLED only under login-disabled:
    `… UNSELECT LOGINDISABLED XTLSREQUIRED STARTTLS`); then `a1 OK CAPABILITY Completed`.
- `a2 AUTHENTICATE PLAIN`. Dovecot: `a2 NO [PRIVACYREQUIRED] Plaintext authentication
    disabled.`; with plaintext allowed `+ ` and, after `*`, `a2 BAD Authentication aborted by
    client.`. Mailutils ondemand, with login-disabled too: `+ ` and, after `*`, `a2 NO
    AUTHENTICATE PLAIN authentication failed`; required: `a2 NO AUTHENTICATE Command disabled:
    Use STARTTLS first`. So LOGINDISABLED does not mean that no password is read in the clear,
    nor does its absence mean that one is.
- `a3 LOGIN <random user> <random string>` (what a probe may send where LOGIN is not disabled;
    these tests never do). Dovecot: `* BAD [ALERT] Plaintext authentication not allowed without
    SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.`
    then `a3 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS)
    connections.`; with plaintext allowed `a3 NO [AUTHENTICATIONFAILED] Authentication failed.`
    after 1.5 s, and the failure put the client's address in Dovecot's auth penalty: its next
    authentication there, even a good one, was answered 4 s late. Mailutils ondemand: `a3 NO
    LOGIN User name or passwd rejected` at once; login-disabled or required: `a3 NO LOGIN
    Command disabled`.
- `a4 STARTTLS`. Dovecot: `a4 OK Begin TLS negotiation now.`; Mailutils: `a4 OK STARTTLS Begin
    TLS negotiation`.

IMAP inside TLS (after STARTTLS, or on the implicit-TLS port)
- Implicit-TLS greeting. Dovecot: `* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE
    IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.`; Mailutils: `* OK IMAP4rev1`.
- CAPABILITY. Dovecot: `* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+
    AUTH=PLAIN AUTH=LOGIN`; Mailutils, every mode: its ondemand list without STARTTLS.
- `a6 LOGIN popctest <password>`. Dovecot: `* CAPABILITY …` (the longer post-login list), then
    `a6 OK Logged in`; Mailutils: `a6 OK LOGIN Completed`.
- LOGOUT. Dovecot: `* BYE Logging out`, then `a7 OK Logout completed (0.001 + 0.000 secs).`
    (`… Logout completed.` before a login); Mailutils: `* BYE Session terminating.`, then
    `a7 OK LOGOUT Completed`.

SMTP submission (EHLO keywords after `250-`, the last after `250 `)
- Greeting, on both ports. Postfix: `220 mail.example.test ESMTP Postfix`; Dovecot: `220
    mail.example.test Dovecot (Debian) ready.`.
- `EHLO client.example.test` before TLS. Postfix: `mail.example.test`, `PIPELINING`, `SIZE
    10240000`, `VRFY`, `ETRN`, `STARTTLS`, `AUTH PLAIN LOGIN` (only with tls_auth_only = no),
    `ENHANCEDSTATUSCODES`, `8BITMIME`, `DSN`, `SMTPUTF8`, `CHUNKING`. Dovecot:
    `mail.example.test`, `8BITMIME`, `AUTH PLAIN LOGIN`, `BURL imap`, `CHUNKING`,
    `ENHANCEDSTATUSCODES`, `SIZE`, `STARTTLS`, `PIPELINING`; with plaintext disabled the AUTH
    line is `250-AUTH ` (a space and no mechanism): AUTH is there but offers nothing.
- `AUTH PLAIN`. Postfix: tls_auth_only = yes `503 5.5.1 Error: authentication not enabled`; no
    `334 ` and, after `*`, `501 5.7.0 Authentication aborted`. Dovecot: `523 5.7.10 Plaintext
    authentication disabled.` (a `*` sent anyway: `500 5.5.2 Invalid command syntax`); with
    plaintext allowed `334 ` and, after `*`, `501 5.5.2 Authentication aborted by client.`.
- STARTTLS. Postfix: `220 2.0.0 Ready to start TLS`; Dovecot: `220 2.0.0 Begin TLS negotiation
    now.`.
- EHLO inside TLS, and on the implicit-TLS port: the list above without STARTTLS and with
    `AUTH PLAIN LOGIN` in every configuration.
- `AUTH PLAIN <base64 of NUL user NUL password>`. Postfix: `235 2.7.0 Authentication
    successful`; Dovecot: `235 2.7.0 Logged in.`. QUIT: `221 2.0.0 Bye` from both.
"""

from __future__ import annotations

import base64
import imaplib
import smtplib
import ssl
import time
from pathlib import Path

import pytest

from pop3lab.certs import root_ca_pem
from tests import dovecot, imap_servers, submission_servers
from tests.dovecot import Dovecot, DovecotConfig, DovecotError, MailDovecotFactory
from tests.imap_servers import IMAP_SERVERS, ImapServerFactory, MailutilsImap
from tests.mail_endpoints import ACCOUNT, MailEndpoint
from tests.processes import ServerError
from tests.submission_servers import SUBMISSION_SERVERS, Postfix, SubmissionServerFactory

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


def test_dovecot_submission_says_a_bare_auth_before_tls_when_plaintext_is_disabled(
    submission_server: SubmissionServerFactory,
) -> None:
    with _smtp(submission_server("dovecot")) as client:
        assert client.has_extn("auth")
        assert _mechanisms(client) == []


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


# The harness itself


def test_a_missing_imap4d_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_servers, "sbin", lambda name: None)
    with pytest.raises(ServerError, match="apt-get install mailutils-imap4d"):
        MailutilsImap(login_disabled=False).start()


def test_a_missing_postfix_names_the_script_that_unpacks_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(submission_servers, "POSTFIX_DIR", tmp_path)
    with pytest.raises(ServerError, match=r"scripts/system-deps\.sh test"):
        Postfix(tmp_path / "auth").start()


def test_a_missing_dovecot_service_names_its_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dovecot, "LIBEXEC", tmp_path)
    config = DovecotConfig(protocols=("imap", "submission"), submission_relay_port=25)
    with pytest.raises(DovecotError, match="apt-get install dovecot-imapd dovecot-submissiond"):
        Dovecot(config).start()


def test_postfix_stops_with_its_smtpd_processes(mail_dovecot: MailDovecotFactory) -> None:
    server = Postfix(mail_dovecot(True).auth_socket).start()
    group = server.pid
    # A client still connected keeps an smtpd process running in Postfix's process group.
    with _smtp(server.endpoint("postfix", tls_auth_only=True)):
        server.stop()
    assert server.directory is None
    deadline = time.monotonic() + 2
    while _running_in_group(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _running_in_group(group) == []


def _running_in_group(group: int) -> list[int]:
    """The processes of a process group that still run: not zombies, which are only waiting
    for whoever inherited them to collect their exit status."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command's closing parenthesis: state, ppid, pgrp, ...
            state, _, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue  # it exited while we looked
        if int(pgrp) == group and state != "Z":
            running.append(int(stat.parent.name))
    return running
