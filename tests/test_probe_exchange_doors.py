"""The scanner's IMAP4 and SMTP submission probes against the emulator's Exchange (pop3lab):
each IMAP LoginType with NTLM on and off, each AuthMechanism of the Client Frontend connector,
the TLS offloader in front of 465, and one Exchange host scanned for POP3, IMAP4 and
submission side by side, with what its NTLM challenges disclose. The emulator journals every
connection, so these tests also show that no probe connection spends more than one rejected
command or authentication attempt (Exchange hangs up at the third).

What the probes read from the emulated Exchange 2016 (see tests/test_pop3lab_imap.py and
tests/test_pop3lab_smtp.py for the wire itself):
- IMAP4 under SecureLogin, and PlainTextAuthentication: LOGINDISABLED (with AUTH=NTLM
    AUTH=GSSAPI under PlainTextAuthentication with NTLM on); AUTHENTICATE PLAIN `BAD Command
    received in Invalid state.`: refused. PlainTextLogin: AUTH=PLAIN; `+ `, and `*` draws `NO The
    AUTH protocol exchange was canceled by the client.`: accepted. LOGOUT: `* BYE Microsoft
    Exchange Server 2016 IMAP4 server signing off.`. With NTLM off, PlainTextAuthentication looks
    like SecureLogin from outside, so imap_login_type says SecureLogin.
- Submission: EHLO lists `AUTH GSSAPI NTLM` with Integrated, and LOGIN too with BasicAuth unless
    BasicAuthRequireTLS; Exchange has no AUTH PLAIN (`504 5.7.4 Unrecognized authentication
    type` whatever it allows), so the probe asks `AUTH LOGIN` where only LOGIN is listed: `334
    VXNlcm5hbWU6`, and `*` draws `501 5.5.4 Authentication cancelled`. Without Tls there is no
    STARTTLS: `500 5.3.3 Unrecognized command`.
- 465: Exchange has no implicit TLS; an offloader in front of it serves the same session inside
    TLS, and hangs up mid-handshake when no certificate is bound (so its TLS enumeration finds
    nothing accepted, where 993 says `* BYE Connection is closed. 14` in plaintext).
- NTLM, where listed before TLS: AUTH NTLM / AUTHENTICATE NTLM, our NEGOTIATE, a CHALLENGE naming
    CONTOSO, EXCH01, contoso.local, exch01.contoso.local and build 6.3.9600, then `*`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pop3lab import BoundEndpoint, EndpointConfig, LabThread
from pop3lab.journal import ConnectionLog
from pop3lab.ntlm import NtlmNames
from scanner import ScanReport, Settings, Target
from scanner._probe import scan
from tests.conftest import SERVICE_NAME, check_of, lab_policy, next_address, status_of
from tests.dnsserver import DnsServer

LOGIN_TYPES = ("SecureLogin", "PlainTextAuthentication", "PlainTextLogin")
INVALID_STATE = "BAD Command received in Invalid state."
CANCELLED_IMAP = "NO The AUTH protocol exchange was canceled by the client."
UNRECOGNIZED = "504 5.7.4 Unrecognized authentication type"
EXCHANGE_NAMES = (
    "NetBIOS domain CONTOSO, NetBIOS computer EXCH01, DNS domain contoso.local, "
    "DNS computer exch01.contoso.local and DNS tree (forest) contoso.local, "
    "and its Windows build 6.3.9600"
)
ALL_PROTOCOLS = ("pop3", "imap", "submission")


class Doors:
    """Start emulated servers with every listener their config switches on, and scan them
    for the given protocols; the journals of every endpoint started are kept for the checks
    of what crossed the wire."""

    def __init__(self, lab: LabThread, dns: DnsServer) -> None:
        self.lab = lab
        self.dns = dns
        self.started: list[BoundEndpoint] = []

    def start(self, config: EndpointConfig) -> BoundEndpoint:
        address = next_address()
        endpoint = self.lab.add([(address, config)])[address]
        self.started.append(endpoint)
        return endpoint

    def scan(
        self,
        config: EndpointConfig,
        protocols: tuple[str, ...] = ALL_PROTOCOLS,
        name: str = SERVICE_NAME,
    ) -> tuple[ScanReport, BoundEndpoint]:
        endpoint = self.start(config)
        # A listener that is off still needs a port number: port 9 has nothing behind it.
        ports = {f"{s}_port": endpoint.port(s) or 9 for s in ("pop3", "pop3s", "imap", "imaps")}
        ports |= {f"{s}_port": endpoint.port(s) or 9 for s in ("submission", "submissions")}
        target = Target(endpoint.address, name, protocols=protocols, **ports)  # type: ignore[arg-type]
        settings = Settings(timeout=5.0, resolver=self.dns.address)
        return scan([target], settings, lab_policy())[0], endpoint


@pytest.fixture
def doors(lab: LabThread, lab_dns: DnsServer) -> Iterator[Doors]:
    """Scans of emulated servers; after the test, every connection any of them received is
    checked for more than one rejected command or authentication attempt."""
    helper = Doors(lab, lab_dns)
    yield helper
    for endpoint in helper.started:
        assert_one_attempt_per_connection(endpoint)


def exchange(**changes: object) -> EndpointConfig:
    """Exchange 2016 serving POP3, IMAP4 and submission, with their TLS ports."""
    listeners = dict(imap=True, imaps=True, submission=True, submissions=True)
    return EndpointConfig(**(listeners | changes))  # type: ignore[arg-type]


# What crossed the wire


def _commands(log: ConnectionLog) -> list[list[str]]:
    """The words of each line the client sent before TLS."""
    return [line.split() for line in log.before_tls.decode("latin-1").splitlines()]


def _attempts(log: ConnectionLog) -> int:
    """How many authentications the client started on the connection: IMAP LOGIN and
    AUTHENTICATE (after the tag), POP3 USER and AUTH, SMTP AUTH."""
    verbs = {"imap": {"LOGIN", "AUTHENTICATE"}, "submission": {"AUTH"}, "pop3": {"USER", "AUTH"}}
    wanted = verbs.get(log.service, set())
    index = 1 if log.service == "imap" else 0
    return sum(
        1 for words in _commands(log) if len(words) > index and words[index].upper() in wanted
    )


def assert_one_attempt_per_connection(endpoint: BoundEndpoint) -> None:
    """No connection drew more than one rejected command (Exchange's count towards its
    hang-up) nor started more than one authentication, and no password was ever checked."""
    for log in endpoint.journal.connections:
        assert log.rejected_commands <= 1, (log.service, bytes(log.received))
        assert _attempts(log) <= 1, (log.service, bytes(log.received))
        assert log.logins == [], (log.service, log.logins)


# IMAP4: Set-ImapSettings' LoginType, NTLM on and off


@pytest.mark.parametrize("ntlm", [True, False], ids=["ntlm", "no-ntlm"])
@pytest.mark.parametrize("login_type", LOGIN_TYPES)
def test_imap_login_type_gives_its_verdict_and_is_read_back(
    doors: Doors, login_type: str, ntlm: bool
) -> None:
    config = exchange(imap_login_type=login_type, imap_ntlm=ntlm, submission=False)
    report, endpoint = doors.scan(config, ("imap",))
    facts = report.endpoints[0].imap
    assert facts is not None and facts.capabilities is not None
    plaintext = login_type == "PlainTextLogin"
    assert ("LOGINDISABLED" in facts.capabilities) is not plaintext
    if plaintext:
        assert facts.auth_replies == {"AUTHENTICATE PLAIN": "+ ", "*": CANCELLED_IMAP}
    else:
        assert facts.auth_replies == {"AUTHENTICATE PLAIN": INVALID_STATE}
    assert facts.plaintext_login == ("accepted" if plaintext else "refused")
    assert status_of(report, "imap.plaintext_login") == ("fail" if plaintext else "pass")
    # From outside, PlainTextAuthentication without NTLM cannot be told from SecureLogin.
    seen = "SecureLogin" if login_type == "PlainTextAuthentication" and not ntlm else login_type
    assert report.endpoints[0].imap_login_type == seen
    assert report.endpoints[0].product == "Microsoft Exchange 2016"
    assert facts.goodbye == "* BYE Microsoft Exchange Server 2016 IMAP4 server signing off."
    assert status_of(report, "imap.starttls") == status_of(report, "imaps.available") == "pass"
    # NTLM is offered before TLS unless the LoginType is SecureLogin.
    offered = ntlm and login_type != "SecureLogin"
    assert [n.protocol for n in report.endpoints[0].ntlm] == (["imap"] if offered else [])
    assert status_of(report, "auth.ntlm_disclosure") == ("warn" if offered else "skip")
    assert len(endpoint.journal.on("imap")) >= 2


def test_imap_probe_sends_no_login_where_logindisabled_is_listed(doors: Doors) -> None:
    _, endpoint = doors.scan(exchange(imap_login_type="SecureLogin", submission=False), ("imap",))
    sent = [words for log in endpoint.journal.on("imap") for words in _commands(log)]
    assert [words[1:] for words in sent if words[1:2] == ["AUTHENTICATE"]] == [
        ["AUTHENTICATE", "PLAIN"]
    ]
    assert not [words for words in sent if words[1:2] == ["LOGIN"]]


# Submission: the Client Frontend connector's AuthMechanism


@pytest.mark.parametrize(
    ("auth", "replies", "ntlm"),
    [
        ("Tls,Integrated,BasicAuth,BasicAuthRequireTLS", {"AUTH PLAIN": UNRECOGNIZED}, True),
        (
            "Tls,Integrated,BasicAuth",
            {"AUTH LOGIN": "334 VXNlcm5hbWU6", "*": "501 5.5.4 Authentication cancelled"},
            True,
        ),
        (
            "Tls,BasicAuth",
            {"AUTH LOGIN": "334 VXNlcm5hbWU6", "*": "501 5.5.4 Authentication cancelled"},
            False,
        ),
        ("Tls,Integrated", {"AUTH PLAIN": UNRECOGNIZED}, True),
        ("Tls", {"AUTH PLAIN": UNRECOGNIZED}, False),
    ],
)
def test_submission_auth_mechanism_gives_its_verdict(
    doors: Doors, auth: str, replies: dict[str, str], ntlm: bool
) -> None:
    config = exchange(submission_auth=auth, imap=False, imaps=False)
    report, _ = doors.scan(config, ("submission",))
    facts = report.endpoints[0].submission
    assert facts is not None
    assert facts.auth_replies == replies
    accepted = config.submission_plaintext_auth
    assert facts.plaintext_login == ("accepted" if accepted else "refused")
    assert status_of(report, "submission.plaintext_auth") == ("fail" if accepted else "pass")
    if accepted:
        assert facts.evidence == (
            "AUTH LOGIN before STARTTLS answered “334 VXNlcm5hbWU6” (a password challenge)"
        )
    assert status_of(report, "submission.starttls") == "pass"
    assert facts.goodbye == "221 2.0.0 Service closing transmission channel"
    # Its banner names no Exchange, but "Microsoft ESMTP MAIL Service" is Exchange's.
    assert report.endpoints[0].product == "Microsoft Exchange"
    assert [n.protocol for n in report.endpoints[0].ntlm] == (["submission"] if ntlm else [])
    assert status_of(report, "auth.ntlm_disclosure") == ("warn" if ntlm else "skip")


def test_a_connector_without_tls_takes_passwords_in_the_clear_and_refuses_starttls(
    doors: Doors,
) -> None:
    config = exchange(submission_auth="Integrated,BasicAuth", imap=False, imaps=False)
    report, _ = doors.scan(config, ("submission",))
    port = report.endpoints[0].submission.port  # type: ignore[union-attr]
    assert status_of(report, "submission.plaintext_auth") == "fail"
    starttls = check_of(report, "submission.starttls")
    assert (starttls.status, starttls.summary) == (
        "fail",
        f"port {port} refuses STARTTLS (and EHLO does not list it): "
        "“500 5.3.3 Unrecognized command”",
    )


def test_the_465_offloader_serves_exchanges_session_inside_tls(doors: Doors) -> None:
    report, endpoint = doors.scan(exchange(imap=False, imaps=False), ("submission",))
    submissions = report.endpoints[0].submissions
    assert submissions is not None and submissions.tls is not None
    assert submissions.greeting is not None
    assert submissions.greeting.startswith(
        "220 exch01.contoso.local Microsoft ESMTP MAIL Service ready at "
    )
    assert check_of(report, "submissions.available").summary.startswith(
        f"SMTP submission over TLS 1.3 on port {endpoint.submissions_port} works (greeting “220 "
    )


def test_without_a_certificate_both_tls_doors_fail_and_say_why(doors: Doors) -> None:
    report, endpoint = doors.scan(exchange(cert_kind=None), ("imap", "submission"))
    imaps = check_of(report, "imaps.available")
    assert (imaps.status, imaps.summary) == (
        "fail",
        f"port {endpoint.imaps_port} answered “* BYE Connection is closed. 14” in plaintext "
        "instead of a TLS handshake; this is Exchange with no certificate bound to IMAP "
        "(X509CertificateName matches no installed certificate)",
    )
    submissions = check_of(report, "submissions.available")
    assert submissions.status == "fail"
    assert submissions.summary.startswith(f"the TLS handshake on port {endpoint.submissions_port}")
    assert check_of(report, "imap.starttls").summary == (
        f"port {endpoint.imap_port} refuses STARTTLS (and CAPABILITY does not list it): "
        f"“{INVALID_STATE}”"
    )
    assert status_of(report, "submission.starttls") == "fail"
    # 993 said plainly that it has no TLS; 465 took every hello and hung up, as a server that
    # speaks only what the local OpenSSL cannot would, so it was enumerated: nothing accepted.
    protocols = check_of(report, "tls.protocols")
    assert (protocols.status, protocols.summary) == (
        "fail",
        f"none of TLS 1.2 and TLS 1.3 accepted on {endpoint.submissions_port} "
        "(profile Mozilla intermediate)",
    )
    for check_id in ("cert.trusted", "cert.name", "cert.consistent"):
        assert status_of(report, check_id) == "skip", check_id


# One Exchange host, three protocols


def test_an_exchange_host_reports_pop3_imap_and_submission_side_by_side(doors: Doors) -> None:
    config = exchange(login_type="PlainTextAuthentication", ntlm=True)
    report, endpoint = doors.scan(config)
    facts = report.endpoints[0]
    assert (facts.login_type, facts.imap_login_type) == (
        "PlainTextAuthentication",
        "PlainTextAuthentication",
    )
    assert facts.product == "Microsoft Exchange 2016"
    assert {n.protocol: n.port for n in facts.ntlm} == {
        "pop3": endpoint.pop3_port,
        "imap": endpoint.imap_port,
        "submission": endpoint.submission_port,
    }
    disclosure = check_of(report, "auth.ntlm_disclosure")
    assert disclosure.status == "warn"
    assert disclosure.summary.startswith("AUTH NTLM before TLS on port ")
    assert disclosure.summary.endswith(f" tells anyone {EXCHANGE_NAMES}")
    for door in (
        f"port {endpoint.pop3_port} (POP3)",
        f"port {endpoint.imap_port} (IMAP4)",
        f"port {endpoint.submission_port} (SMTP submission)",
    ):
        assert door in disclosure.summary
    statuses = {check.id: check.status for check in report.checks}
    assert statuses.pop("auth.ntlm_disclosure") == "warn"
    assert statuses.pop("dns.srv") == "warn"  # the lab DNS has no SRV records
    assert statuses.pop("pop3.tls_login") == "skip"  # no monitoring credentials
    assert statuses.pop("cert.revocation") == "warn"  # the lab CA publishes no OCSP nor CRL
    assert set(statuses.values()) == {"pass"}, statuses
    assert report.compliant is True
    # On each cleartext door, two connections started one authentication each: the login
    # probe's (USER, AUTHENTICATE PLAIN, AUTH PLAIN) and the NTLM probe's.
    tried = [(log.service, _attempts(log)) for log in endpoint.journal.connections]
    assert sorted(entry for entry in tried if entry[1]) == [
        ("imap", 1),
        ("imap", 1),
        ("pop3", 1),
        ("pop3", 1),
        ("submission", 1),
        ("submission", 1),
    ]
    # Each protocol on its own ports, each door enumerated: six TLS entry points, one cert.
    assert check_of(report, "cert.consistent").summary.startswith(
        "all 6 TLS entry points serve CN=mail.example.test"
    )


def test_an_exchange_host_without_ntlm_anywhere_skips_the_disclosure_check(
    doors: Doors,
) -> None:
    config = exchange(ntlm=False, submission_auth="Tls,BasicAuth,BasicAuthRequireTLS")
    report, _ = doors.scan(config)
    assert report.endpoints[0].ntlm == ()
    disclosure = check_of(report, "auth.ntlm_disclosure")
    assert (disclosure.status, disclosure.summary) == (
        "skip",
        "no declared protocol offers NTLM before TLS",
    )
    assert report.endpoints[0].imap_login_type == "SecureLogin"


def test_ntlm_names_that_the_service_name_already_tells_pass(doors: Doors) -> None:
    names = NtlmNames("EXAMPLE", "MAIL", "example.test", "mail.example.test", "example.test")
    config = exchange(login_type="PlainTextAuthentication", ntlm_names=names)
    report, _ = doors.scan(config, ("imap", "submission"))
    disclosure = check_of(report, "auth.ntlm_disclosure")
    assert disclosure.status == "pass"
    assert disclosure.summary.endswith(" names nothing beyond the service name")
    # The same challenges, judged for another service name, give the names away.
    elsewhere, _ = doors.scan(config, ("imap", "submission"), name="mail.other.test")
    disclosed = check_of(elsewhere, "auth.ntlm_disclosure")
    assert disclosed.status == "warn"
    assert "DNS computer mail.example.test" in disclosed.summary
    assert "NetBIOS computer MAIL" not in disclosed.summary  # a label of the other name too


# TLS and certificates on the new doors


def test_legacy_tls_on_imap_and_submission_fails_tls_protocols_on_each_door(
    doors: Doors,
) -> None:
    config = exchange(tls_versions=("TLSv1", "TLSv1.2"), pop3=False, pop3s=False)
    report, endpoint = doors.scan(config, ("imap", "submission"))
    protocols = check_of(report, "tls.protocols")
    assert protocols.status == "fail"
    assert protocols.summary.startswith("TLS 1.0 and TLS 1.1 accepted on ")
    for door in (
        str(endpoint.imaps_port),
        f"{endpoint.imap_port} after STARTTLS",
        str(endpoint.submissions_port),
        f"{endpoint.submission_port} after STARTTLS",
    ):
        assert door in protocols.summary
    facts = report.endpoints[0]
    assert facts.imaps is not None and facts.imaps.support is not None
    assert facts.imaps.support.accepted_versions["TLSv1"] is True
    assert facts.imaps.support.accepted_versions["TLSv1.3"] is False


def test_a_self_signed_certificate_fails_cert_trusted_on_every_new_door(doors: Doors) -> None:
    report, endpoint = doors.scan(
        exchange(cert_kind="exchange_self_signed"), ("imap", "submission")
    )
    trusted = check_of(report, "cert.trusted")
    assert trusted.status == "fail"
    for door in (
        str(endpoint.imaps_port),
        f"{endpoint.imap_port} after STARTTLS",
        str(endpoint.submissions_port),
        f"{endpoint.submission_port} after STARTTLS",
    ):
        assert door in trusted.summary
    # The doors themselves work: TLS is there, it is the certificate that is not trusted.
    assert status_of(report, "imaps.available") == status_of(report, "submission.starttls")
    assert status_of(report, "submission.starttls") == "pass"
