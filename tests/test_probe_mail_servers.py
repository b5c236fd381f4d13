"""The scanner's IMAP4 and SMTP submission probes (`scanner.scan` with `Target(protocols=...)`)
against real servers on loopback: the verdicts of imap.plaintext_login, imap.starttls,
imaps.available, submission.plaintext_auth, submission.starttls, submissions.available,
auth.ntlm_disclosure, tls.* and cert.* on these doors, and what the facts quote. The servers are
tests/imap_servers.py's and tests/submission_servers.py's (whose own tests, with imaplib and
smtplib, are the ground truth these verdicts must agree with: `MailEndpoint.cleartext_auth`),
plus a Postfix whose Cyrus SASL offers NTLM. Each server is scanned once per module.

What the probes read (Debian 12: Dovecot 2.3.19.1, GNU Mailutils 3.15, Postfix 3.7.11 with
Cyrus SASL 2.1.28; OpenSSL 3.0), each reply as the facts keep it: an IMAP tagged reply without
its tag, an SMTP reply as its code and text.

IMAP4 before TLS (CAPABILITY, then `AUTHENTICATE PLAIN` and `*` to cancel any continuation; then,
only where that was refused and LOGINDISABLED is absent, LOGIN with made-up words on a second
connection)
- Dovecot, plaintext disabled: LOGINDISABLED listed; AUTHENTICATE PLAIN `NO [PRIVACYREQUIRED]
    Plaintext authentication disabled.`: refused, no LOGIN sent.
- Dovecot, plaintext allowed: AUTH=PLAIN AUTH=LOGIN listed; `+ `, and `*` draws `BAD
    Authentication aborted by client.`: accepted.
- Mailutils imap4d, tls-mode ondemand, with or without login-disabled: `+ `, and `*` draws `NO
    AUTHENTICATE PLAIN authentication failed`: accepted. Under login-disabled its CAPABILITY
    lists LOGINDISABLED all the same: the probe goes by the `+ `, not by the capability.
- Mailutils, tls-mode required: `NO AUTHENTICATE Command disabled: Use STARTTLS first`; without
    login-disabled no LOGINDISABLED is listed, so LOGIN goes out and draws `NO LOGIN Command
    disabled`: refused on the second connection's evidence.
- LOGOUT: Dovecot `* BYE Logging out`, Mailutils `* BYE Session terminating.`.
- STARTTLS: Dovecot `OK Begin TLS negotiation now.`, Mailutils `OK STARTTLS Begin TLS
    negotiation`; TLS 1.3, and inside it AUTH=PLAIN with neither STARTTLS nor LOGINDISABLED.
- Implicit TLS: Dovecot greets `* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE
    LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.`, Mailutils `* OK IMAP4rev1`.

SMTP submission before TLS (EHLO, then `AUTH PLAIN` and `*` to cancel a 334)
- Postfix, smtpd_tls_auth_only = yes: no AUTH keyword; `503 5.5.1 Error: authentication not
    enabled`: refused.
- Postfix, smtpd_tls_auth_only = no: `AUTH PLAIN LOGIN`; `334` (no text), and `*` draws `501
    5.7.0 Authentication aborted`: accepted.
- Dovecot, plaintext disabled: a bare `AUTH` keyword; `523 5.7.10 Plaintext authentication
    disabled.`: refused. Plaintext allowed: `334`, then `501 5.5.2 Authentication aborted by
    client.`: accepted.
- QUIT: `221 2.0.0 Bye` from both. STARTTLS: Postfix `220 2.0.0 Ready to start TLS`, Dovecot
    `220 2.0.0 Begin TLS negotiation now.`; inside TLS `AUTH PLAIN LOGIN` everywhere, no STARTTLS.
- Implicit TLS greetings: `220 mail.example.test ESMTP Postfix`, `220 mail.example.test Dovecot
    (Debian) ready.`.
- Postfix with Cyrus SASL's NTLM alone (myhostname smtp01.corp.internal): EHLO `AUTH NTLM`; AUTH
    PLAIN `535 5.7.8 Error: authentication failed: no mechanism available`: refused.
    AUTH NTLM `334`, our NEGOTIATE, then `334 TlRMTVNTUAACAAAAKAAoADAAAAAFggIA…`: a 88-byte
    CHALLENGE with flags 0x00028205 (Unicode, target requested, NTLM, target type server), target
    name `SMTP01.CORP.INTERNAL`, no target information and no version; `*` draws `501 5.7.0
    Authentication aborted`. So auth.ntlm_disclosure warns about that name, which the service name
    mail.example.test does not tell, and passes when the service name is that host's name.

TLS, per server (the same on both doors): Dovecot accepts TLS 1.2 and 1.3 only (tls.protocols
passes) and Camellia CBC suites (tls.ciphers warns); Mailutils (GnuTLS) and Postfix also accept
TLS 1.0 and 1.1 (tls.protocols fails), and Postfix's default opportunistic TLS also accepts
anonymous Diffie-Hellman (`openssl s_client -cipher aNULL` negotiates ADH-AES256-GCM-SHA384 on
both doors), so tls.ciphers fails. Every door serves the test CA's mail.example.test certificate.

The servers' own logs say what each connection did: Postfix's `disconnect from` line counts
`auth=0/1` for the one refused or cancelled AUTH; Dovecot's login processes end the probe's
connection with `(tried to use disallowed plaintext auth): user=<>, method=PLAIN` or `(client
didn't finish SASL auth, waited 0 secs): user=<>, method=PLAIN`, every other one with `(no auth
attempts in 0 secs)`, and never `auth failed`: no password was ever checked.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop3lab.certs import root_ca_pem
from scanner import Policy, ScanReport, Settings, Target
from scanner._probe import scan
from tests import submission_servers
from tests.conftest import SERVICE_NAME, check_of, status_of
from tests.dnsserver import DnsServer
from tests.dovecot import Dovecot, MailDovecotFactory
from tests.imap_servers import IMAP_SERVERS, ImapServerFactory
from tests.mail_endpoints import MailEndpoint
from tests.ports import free_port
from tests.processes import ServerError
from tests.submission_servers import SUBMISSION_SERVERS, CyrusNtlmPostfix, SubmissionServerFactory

pytestmark = pytest.mark.mailservers

TIMEOUT = 5.0
POLICY = Policy(ca_bundle_pem=root_ca_pem().decode(), use_system_trust=False)
Scanner = Callable[..., ScanReport]

# What each IMAP server's login probe reads: (verdict, the replies by command).
IMAP_REPLIES: dict[str, tuple[str, dict[str, str]]] = {
    "dovecot": (
        "refused",
        {"AUTHENTICATE PLAIN": "NO [PRIVACYREQUIRED] Plaintext authentication disabled."},
    ),
    "dovecot-plaintext": (
        "accepted",
        {"AUTHENTICATE PLAIN": "+ ", "*": "BAD Authentication aborted by client."},
    ),
    "mailutils": (
        "accepted",
        {"AUTHENTICATE PLAIN": "+ ", "*": "NO AUTHENTICATE PLAIN authentication failed"},
    ),
    "mailutils-tls-required": (
        "refused",
        {
            "AUTHENTICATE PLAIN": "NO AUTHENTICATE Command disabled: Use STARTTLS first",
            "LOGIN": "NO LOGIN Command disabled",
        },
    ),
    "mailutils-login-disabled": (
        "accepted",
        {"AUTHENTICATE PLAIN": "+ ", "*": "NO AUTHENTICATE PLAIN authentication failed"},
    ),
    "mailutils-login-disabled-tls-required": (
        "refused",
        {"AUTHENTICATE PLAIN": "NO AUTHENTICATE Command disabled: Use STARTTLS first"},
    ),
}
SUBMISSION_REPLIES: dict[str, tuple[str, dict[str, str]]] = {
    "postfix-tls-auth-only": (
        "refused",
        {"AUTH PLAIN": "503 5.5.1 Error: authentication not enabled"},
    ),
    "postfix": ("accepted", {"AUTH PLAIN": "334", "*": "501 5.7.0 Authentication aborted"}),
    "dovecot": ("refused", {"AUTH PLAIN": "523 5.7.10 Plaintext authentication disabled."}),
    "dovecot-plaintext": (
        "accepted",
        {"AUTH PLAIN": "334", "*": "501 5.5.2 Authentication aborted by client."},
    ),
}
DOVECOT_IMAPS_GREETING = (
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN "
    "AUTH=LOGIN] Dovecot (Debian) ready."
)
ONLY_TLS12_AND_13 = {
    "SSLv2": False,
    "SSLv3": False,
    "TLSv1": False,
    "TLSv1.1": False,
    "TLSv1.2": True,
    "TLSv1.3": True,
}
FROM_TLS10 = ONLY_TLS12_AND_13 | {"TLSv1": True, "TLSv1.1": True}
CERT_CHECKS = ("cert.trusted", "cert.name", "cert.validity", "cert.strength", "cert.consistent")


@pytest.fixture(scope="module")
def scanned(lab_dns: DnsServer) -> Scanner:
    """`scanned(target, policy=POLICY, enumerate_tls=True)`: the report of one scan, made once
    per module. Without the TLS enumeration (most of a scan's time) tls.* cannot be judged."""
    reports: dict[tuple[Target, Policy, bool], ScanReport] = {}

    def get(target: Target, policy: Policy = POLICY, enumerate_tls: bool = True) -> ScanReport:
        key = (target, policy, enumerate_tls)
        if key not in reports:
            settings = Settings(
                timeout=TIMEOUT, resolver=lab_dns.address, enumerate_tls=enumerate_tls
            )
            reports[key] = scan([target], settings, policy)[0]
        return reports[key]

    return get


def imap_target(endpoint: MailEndpoint, name: str = SERVICE_NAME) -> Target:
    return Target(
        endpoint.host,
        name,
        protocols=("imap",),
        imap_port=endpoint.starttls_port,
        imaps_port=endpoint.tls_port,
    )


def submission_target(endpoint: MailEndpoint, name: str = SERVICE_NAME) -> Target:
    return Target(
        endpoint.host,
        name,
        protocols=("submission",),
        submission_port=endpoint.starttls_port,
        submissions_port=endpoint.tls_port,
    )


def dovecot_target(dovecot: Dovecot) -> Target:
    """Dovecot's IMAP4 and submission, declared together as one server."""
    (imap, imaps), (submission, submissions) = dovecot.ports["imap"], dovecot.ports["submission"]
    return Target(
        dovecot.host,
        SERVICE_NAME,
        protocols=("imap", "submission"),
        imap_port=imap,
        imaps_port=imaps,
        submission_port=submission,
        submissions_port=submissions,
    )


@pytest.fixture(params=IMAP_SERVERS)
def imap(request: pytest.FixtureRequest, imap_server: ImapServerFactory) -> MailEndpoint:
    return imap_server(request.param)


@pytest.fixture(params=SUBMISSION_SERVERS)
def submission(
    request: pytest.FixtureRequest, submission_server: SubmissionServerFactory
) -> MailEndpoint:
    return submission_server(request.param)


@pytest.fixture(scope="module")
def ntlm_postfix() -> Iterator[CyrusNtlmPostfix]:
    try:
        server = CyrusNtlmPostfix().start()
    except ServerError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


def is_mailutils(endpoint: MailEndpoint) -> bool:
    return endpoint.name.startswith("mailutils")


def is_postfix(endpoint: MailEndpoint) -> bool:
    return endpoint.name.startswith("postfix")


# IMAP4


def test_imap_plaintext_login_agrees_with_the_server(imap: MailEndpoint, scanned: Scanner) -> None:
    report = scanned(imap_target(imap))
    facts = report.endpoints[0].imap
    assert facts is not None
    verdict, replies = IMAP_REPLIES[imap.name]
    assert (facts.outcome, facts.plaintext_login, facts.certainty) == ("ok", verdict, "confirmed")
    # The ground truth of tests/test_mail_servers.py: would it read a password in the clear?
    assert (facts.plaintext_login == "accepted") is imap.cleartext_auth
    assert facts.auth_replies == replies
    assert ("LOGINDISABLED" in (facts.capabilities or ())) is imap.logindisabled
    expected = {"accepted": "fail", "refused": "pass"}[verdict]
    assert status_of(report, "imap.plaintext_login") == expected


def test_imap_evidence_quotes_what_decided(imap: MailEndpoint, scanned: Scanner) -> None:
    summary = check_of(scanned(imap_target(imap)), "imap.plaintext_login").summary
    port = imap.starttls_port
    if imap.cleartext_auth:
        assert summary == (
            f"port {port} asks for the password before TLS (AUTHENTICATE PLAIN before TLS "
            "answered “+ ” (a password challenge)), so a client's password crosses the network "
            "in the clear"
        )
    elif imap.logindisabled:
        refusal = IMAP_REPLIES[imap.name][1]["AUTHENTICATE PLAIN"]
        assert summary == (
            f"port {port} refuses passwords before TLS (CAPABILITY lists LOGINDISABLED and "
            f"AUTHENTICATE PLAIN before TLS answered “{refusal}”)"
        )
    else:
        assert summary == (
            f"port {port} refuses passwords before TLS "
            "(LOGIN before TLS answered “NO LOGIN Command disabled”)"
        )


def test_mailutils_lists_logindisabled_yet_reads_a_password_before_tls(
    imap_server: ImapServerFactory, scanned: Scanner
) -> None:
    report = scanned(imap_target(imap_server("mailutils-login-disabled")))
    facts = report.endpoints[0].imap
    assert facts is not None and facts.capabilities is not None
    assert "LOGINDISABLED" in facts.capabilities and "AUTH=PLAIN" in facts.capabilities
    assert facts.plaintext_login == "accepted"
    assert "LOGIN" not in facts.auth_replies  # LOGIN, disabled, was never tried
    assert status_of(report, "imap.plaintext_login") == "fail"


def test_imap_starttls_and_imaps_work_with_the_servers_words(
    imap: MailEndpoint, scanned: Scanner
) -> None:
    report = scanned(imap_target(imap))
    endpoint = report.endpoints[0]
    assert endpoint.imap is not None and endpoint.imaps is not None
    starttls = endpoint.imap.starttls
    assert starttls is not None and starttls.tls is not None
    mailutils = is_mailutils(imap)
    assert starttls.reply == (
        "OK STARTTLS Begin TLS negotiation" if mailutils else "OK Begin TLS negotiation now."
    )
    assert starttls.tls.version == "TLSv1.3"
    inside = set(starttls.capabilities or ())
    assert "AUTH=PLAIN" in inside and not {"STARTTLS", "LOGINDISABLED"} & inside
    assert endpoint.imaps.greeting == ("* OK IMAP4rev1" if mailutils else DOVECOT_IMAPS_GREETING)
    assert endpoint.imap.goodbye == (
        "* BYE Session terminating." if mailutils else "* BYE Logging out"
    )
    assert status_of(report, "imap.starttls") == "pass"
    assert check_of(report, "imaps.available").summary.startswith(
        f"IMAP4 over TLS 1.3 on port {imap.tls_port} works (greeting “* OK"
    )
    assert endpoint.product == (None if mailutils else "Dovecot")
    assert endpoint.imap_login_type is None  # not Exchange


# SMTP submission


def test_submission_plaintext_auth_agrees_with_the_server(
    submission: MailEndpoint, scanned: Scanner
) -> None:
    report = scanned(submission_target(submission))
    facts = report.endpoints[0].submission
    assert facts is not None
    verdict, replies = SUBMISSION_REPLIES[submission.name]
    assert (facts.outcome, facts.plaintext_login, facts.certainty) == ("ok", verdict, "confirmed")
    assert (facts.plaintext_login == "accepted") is submission.cleartext_auth
    assert facts.auth_replies == replies
    assert facts.goodbye == "221 2.0.0 Bye"
    expected = {"accepted": "fail", "refused": "pass"}[verdict]
    assert status_of(report, "submission.plaintext_auth") == expected


def test_submission_evidence_says_what_ehlo_listed(
    submission: MailEndpoint, scanned: Scanner
) -> None:
    report = scanned(submission_target(submission))
    facts = report.endpoints[0].submission
    assert facts is not None and facts.capabilities is not None
    summary = check_of(report, "submission.plaintext_auth").summary
    port = submission.starttls_port
    if submission.cleartext_auth:
        assert "AUTH PLAIN LOGIN" in facts.capabilities
        assert summary == (
            f"port {port} asks for the password before TLS (AUTH PLAIN before STARTTLS answered "
            "“334” (a password challenge)), so a client's password crosses the network in the "
            "clear"
        )
    else:
        # Postfix leaves AUTH out; Dovecot says a bare AUTH that offers nothing.
        assert ("AUTH" in facts.capabilities) is (not is_postfix(submission))
        refusal = SUBMISSION_REPLIES[submission.name][1]["AUTH PLAIN"]
        assert summary == (
            f"port {port} refuses passwords before TLS (EHLO before STARTTLS lists no AUTH "
            f"mechanism; AUTH PLAIN answered “{refusal}”)"
        )


def test_submission_starttls_and_implicit_tls_work_with_the_servers_words(
    submission: MailEndpoint, scanned: Scanner
) -> None:
    report = scanned(submission_target(submission))
    endpoint = report.endpoints[0]
    assert endpoint.submission is not None and endpoint.submissions is not None
    starttls = endpoint.submission.starttls
    assert starttls is not None and starttls.tls is not None
    postfix = is_postfix(submission)
    assert starttls.reply == (
        "220 2.0.0 Ready to start TLS" if postfix else "220 2.0.0 Begin TLS negotiation now."
    )
    assert starttls.tls.version == "TLSv1.3"
    inside = starttls.capabilities or ()
    assert "AUTH PLAIN LOGIN" in inside and "STARTTLS" not in inside
    greeting = "ESMTP Postfix" if postfix else "Dovecot (Debian) ready."
    assert endpoint.submission.greeting == f"220 {SERVICE_NAME} {greeting}"
    assert endpoint.submissions.greeting == f"220 {SERVICE_NAME} {greeting}"
    assert status_of(report, "submission.starttls") == "pass"
    assert check_of(report, "submissions.available").summary == (
        f"SMTP submission over TLS 1.3 on port {submission.tls_port} works "
        f"(greeting “220 {SERVICE_NAME} {greeting}”)"
    )
    assert status_of(report, "auth.ntlm_disclosure") == "skip"


# TLS and certificates on the new doors


def _accepted_versions(report: ScanReport) -> list[dict[str, bool | None]]:
    """What the enumeration found on each TLS entry point of the report's one address."""
    endpoint = report.endpoints[0]
    found = []
    for cleartext, implicit in (
        (endpoint.imap, endpoint.imaps),
        (endpoint.submission, endpoint.submissions),
    ):
        if cleartext is not None and implicit is not None:
            assert cleartext.starttls is not None and cleartext.starttls.support is not None
            assert implicit.support is not None
            found += [cleartext.starttls.support.accepted_versions]
            found += [implicit.support.accepted_versions]
    return found


def test_imap_tls_checks_agree_with_the_server(imap: MailEndpoint, scanned: Scanner) -> None:
    report = scanned(imap_target(imap))
    mailutils = is_mailutils(imap)
    expected = FROM_TLS10 if mailutils else ONLY_TLS12_AND_13
    assert _accepted_versions(report) == [expected, expected]
    assert _handshakes(imap.host, imap.tls_port) == {
        version: expected[version] for version in HANDSHAKE_VERSIONS
    }
    protocols = check_of(report, "tls.protocols")
    doors = f"{imap.tls_port} and {imap.starttls_port} after STARTTLS"
    if mailutils:
        assert (protocols.status, protocols.summary) == (
            "fail",
            f"TLS 1.0 and TLS 1.1 accepted on {doors} (profile Mozilla intermediate)",
        )
    else:
        assert (protocols.status, protocols.summary) == (
            "pass",
            f"only TLS 1.2 and TLS 1.3 accepted on {doors} (profile Mozilla intermediate)",
        )
        assert status_of(report, "tls.ciphers") == "warn"
        assert "CAMELLIA" in check_of(report, "tls.ciphers").summary
    for check_id in CERT_CHECKS:
        assert status_of(report, check_id) == "pass", check_id


def test_submission_tls_checks_agree_with_the_server(
    submission: MailEndpoint, scanned: Scanner
) -> None:
    report = scanned(submission_target(submission))
    postfix = is_postfix(submission)
    expected = FROM_TLS10 if postfix else ONLY_TLS12_AND_13
    assert _accepted_versions(report) == [expected, expected]
    assert status_of(report, "tls.protocols") == ("fail" if postfix else "pass")
    if postfix:
        # Postfix's opportunistic TLS keeps anonymous suites (openssl s_client agrees).
        support = report.endpoints[0].submissions.support  # type: ignore[union-attr]
        assert support is not None
        assert "TLS_DH_anon_WITH_AES_256_GCM_SHA384" in support.cipher_suites["TLSv1.2"]
        ciphers = check_of(report, "tls.ciphers")
        assert ciphers.status == "fail"
        assert ciphers.summary.startswith("accepts anonymous key exchange (TLS_DH_anon_WITH_")
    for check_id in CERT_CHECKS:
        assert status_of(report, check_id) == "pass", check_id


# Python's own handshakes, one TLS version at a time: the ground truth of the enumeration.
HANDSHAKE_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _handshakes(host: str, port: int) -> dict[str, bool]:
    """Whether a handshake at each version completes on an implicit-TLS port."""
    result = {}
    for name, version in HANDSHAKE_VERSIONS.items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 and 1.1, on purpose
            context.minimum_version = context.maximum_version = version
        # OpenSSL 3's default security level refuses TLS 1.0 and 1.1 before asking.
        context.set_ciphers("ALL:@SECLEVEL=0")
        try:
            with (
                socket.create_connection((host, port), TIMEOUT) as sock,
                context.wrap_socket(sock, server_hostname=SERVICE_NAME),
            ):
                result[name] = True
        except (ssl.SSLError, OSError):
            result[name] = False
    return result


# One server, both protocols


def test_dovecot_serving_imap_and_submission_is_judged_door_by_door(
    mail_dovecot: MailDovecotFactory, scanned: Scanner
) -> None:
    for plaintext_allowed in (False, True):
        dovecot = mail_dovecot(plaintext_allowed)
        report = scanned(dovecot_target(dovecot))
        statuses = {check.id: check.status for check in report.checks}
        login = "fail" if plaintext_allowed else "pass"
        assert statuses["imap.plaintext_login"] == statuses["submission.plaintext_auth"] == login
        for check_id in ("imap.starttls", "imaps.available", "submission.starttls"):
            assert statuses[check_id] == "pass", check_id
        assert statuses["submissions.available"] == "pass"
        # POP3 is not declared: its checks are skipped, not failed for a closed 110 and 995.
        assert {statuses[c] for c in statuses if c.startswith("pop3")} == {"skip"}
        assert statuses["auth.ntlm_disclosure"] == "skip"
        assert statuses["tls.protocols"] == "pass"
        assert len(_accepted_versions(report)) == 4
        assert check_of(report, "cert.consistent").summary.startswith(
            "all 4 TLS entry points serve CN=mail.example.test"
        )
        assert report.endpoints[0].product == "Dovecot"


def test_a_policy_forbidding_cleartext_ports_fails_them_when_they_answer(
    mail_dovecot: MailDovecotFactory, scanned: Scanner
) -> None:
    dovecot = mail_dovecot(False)
    strict = Policy(
        ca_bundle_pem=POLICY.ca_bundle_pem,
        use_system_trust=False,
        allow_cleartext_imap=False,
        allow_cleartext_submission=False,
    )
    report = scanned(dovecot_target(dovecot), strict, enumerate_tls=False)
    imap_port, submission_port = dovecot.ports["imap"][0], dovecot.ports["submission"][0]
    assert check_of(report, "imap.plaintext_login").summary == (
        f"port {imap_port} answers IMAP4 in cleartext; policy allows implicit TLS only"
    )
    assert check_of(report, "submission.plaintext_auth").summary == (
        f"port {submission_port} answers SMTP submission in cleartext; policy allows implicit "
        "TLS only"
    )
    assert status_of(report, "imap.plaintext_login") == "fail"
    assert status_of(report, "submission.plaintext_auth") == "fail"
    assert status_of(report, "imaps.available") == status_of(report, "imap.starttls") == "pass"


def test_closed_cleartext_ports_skip_their_checks_and_a_closed_tls_port_fails(
    mail_dovecot: MailDovecotFactory, scanned: Scanner
) -> None:
    dovecot = mail_dovecot(False)
    closed = free_port(dovecot.host)
    target = Target(
        dovecot.host,
        SERVICE_NAME,
        protocols=("imap", "submission"),
        imap_port=closed,
        imaps_port=dovecot.ports["imap"][1],
        submission_port=dovecot.ports["submission"][0],
        submissions_port=closed,
    )
    report = scanned(target, enumerate_tls=False)
    assert check_of(report, "imap.plaintext_login").summary == (
        f"port {closed} is closed, so no password can be sent there in cleartext"
    )
    assert check_of(report, "imap.starttls").summary == (
        f"port {closed} is closed, so there is no STARTTLS to check"
    )
    assert status_of(report, "imap.plaintext_login") == status_of(report, "imap.starttls")
    assert status_of(report, "imap.starttls") == "skip"
    assert status_of(report, "imaps.available") == "pass"
    submissions = check_of(report, "submissions.available")
    assert (submissions.status, submissions.summary) == (
        "fail",
        f"port {closed} is closed, so there is no SMTP submission over implicit TLS",
    )
    assert status_of(report, "submission.plaintext_auth") == "pass"


# NTLM: Postfix with Cyrus SASL


def test_a_cyrus_ntlm_challenge_names_the_hosts_own_name(
    ntlm_postfix: CyrusNtlmPostfix, scanned: Scanner
) -> None:
    target = submission_target(ntlm_postfix.endpoint("postfix-cyrus-ntlm", False))
    report = scanned(target, enumerate_tls=False)
    endpoint = report.endpoints[0]
    assert endpoint.submission is not None
    assert "AUTH NTLM" in (endpoint.submission.capabilities or ())
    assert endpoint.submission.auth_replies == {
        "AUTH PLAIN": "535 5.7.8 Error: authentication failed: no mechanism available"
    }
    assert status_of(report, "submission.plaintext_auth") == "pass"
    (ntlm,) = endpoint.ntlm
    assert (ntlm.protocol, ntlm.outcome, ntlm.port) == (
        "submission",
        "ok",
        endpoint.submission.port,
    )
    assert ntlm.challenge is not None
    assert ntlm.challenge.disclosed == {"NTLM target name": "SMTP01.CORP.INTERNAL"}
    assert ntlm.challenge.os_version is None and ntlm.challenge.server_time is None
    disclosure = check_of(report, "auth.ntlm_disclosure")
    assert (disclosure.status, disclosure.summary) == (
        "warn",
        f"AUTH NTLM before TLS on port {ntlm.port} (SMTP submission) tells anyone "
        "NTLM target name SMTP01.CORP.INTERNAL",
    )


def test_a_cyrus_ntlm_challenge_naming_the_service_itself_passes(
    ntlm_postfix: CyrusNtlmPostfix, scanned: Scanner
) -> None:
    endpoint = ntlm_postfix.endpoint("postfix-cyrus-ntlm", False)
    report = scanned(submission_target(endpoint, CyrusNtlmPostfix.hostname), enumerate_tls=False)
    disclosure = check_of(report, "auth.ntlm_disclosure")
    assert (disclosure.status, disclosure.summary) == (
        "pass",
        f"the NTLM challenge on port {endpoint.starttls_port} (SMTP submission) names nothing "
        "beyond the service name",
    )


# At most one authentication attempt per connection, by the servers' own logs


def _new_log_lines(path: Path, start: int, done: Callable[[list[str]], bool]) -> list[str]:
    """The lines written to `path` after byte `start`, once `done` says all are there (the
    servers log a connection's end a moment after it closed)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = path.read_bytes()[start:].decode(errors="replace").splitlines()
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_postfix_counts_at_most_one_auth_per_probe_connection(
    ntlm_postfix: CyrusNtlmPostfix, lab_dns: DnsServer
) -> None:
    assert ntlm_postfix.directory is not None
    log = ntlm_postfix.directory / "postfix.log"
    start = log.stat().st_size
    settings = Settings(timeout=TIMEOUT, resolver=lab_dns.address, enumerate_tls=False)
    endpoint = ntlm_postfix.endpoint("postfix-cyrus-ntlm", False)
    scan([submission_target(endpoint, name="probe.example.test")], settings, POLICY)

    def all_ended(lines: list[str]) -> bool:
        """Both authenticating connections logged, and every connection that began ended."""
        connected = sum(" connect from " in line for line in lines)
        ended = sum(" disconnect from " in line for line in lines)
        return connected == ended and sum(" auth=" in line for line in lines) >= 2

    lines = _new_log_lines(log, start, all_ended)
    attempts = [
        int(found.group(1))
        for line in lines
        if (found := re.search(r" disconnect from .* auth=\d+/(\d+)", line))
    ]
    # The login probe's AUTH PLAIN and the NTLM probe's AUTH NTLM, each on its own connection.
    assert attempts == [1, 1], lines


@pytest.mark.parametrize(
    ("plaintext_allowed", "reason"),
    [(False, "tried to use disallowed plaintext auth"), (True, "client didn't finish SASL auth")],
    ids=["plaintext-disabled", "plaintext-allowed"],
)
def test_dovecot_sees_one_plain_attempt_per_door_and_never_checks_a_password(
    mail_dovecot: MailDovecotFactory, lab_dns: DnsServer, plaintext_allowed: bool, reason: str
) -> None:
    dovecot = mail_dovecot(plaintext_allowed)
    assert dovecot.directory is not None
    log = dovecot.directory / "dovecot.log"
    start = log.stat().st_size
    settings = Settings(timeout=TIMEOUT, resolver=lab_dns.address, enumerate_tls=False)
    scan([dovecot_target(dovecot)], settings, POLICY)

    def started(lines: list[str]) -> dict[str, list[str]]:
        """Per login process, why each connection that started an authentication ended."""
        found: dict[str, list[str]] = {"imap": [], "submission": []}
        for line in lines:
            ended = re.search(r" (\w+)-login: Info: Disconnected: .*\((.+?)\): .*method=", line)
            if ended:
                found[ended.group(1)].append(re.sub(r", waited \d+ secs$", "", ended.group(2)))
        return found

    lines = _new_log_lines(log, start, lambda lines: all(started(lines).values()))
    # Dovecot says, per connection, how it ended: one AUTHENTICATE/AUTH PLAIN on each cleartext
    # door, refused or cancelled, and no password ever checked ("auth failed, N attempts").
    assert started(lines) == {"imap": [reason], "submission": [reason]}, lines
    assert not [line for line in lines if "auth failed" in line]


def test_a_missing_cyrus_ntlm_plugin_names_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(submission_servers, "SASL_PLUGINS", tmp_path)
    with pytest.raises(ServerError, match="apt-get install libsasl2-modules"):
        CyrusNtlmPostfix().start()
