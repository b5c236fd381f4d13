"""What crosses the cleartext ports during a full scan, recorded by a wiretap (tests/relay.py)
between the scanner and the server on 110, 143 and 587, both ways, as an attacker on the path
would see it.

The scan covers all three protocols with the monitoring account set, against servers that would
take a password before TLS on every protocol: the emulator as Exchange with PlainTextLogin and
NTLM, and a real Dovecot with plaintext authentication allowed. Their POP3S port is closed, so
the login test goes through STLS on the tapped POP3 port. Neither the password, nor its base64,
nor any AUTH PLAIN response may cross; no PASS and no LOGIN of the real user; and every command
sent in the clear is one that the docstrings of scanner/_pop3.py, scanner/_imap.py,
scanner/_submission.py and scanner/_disclosure.py (NTLM) say is sent, TLS records only after an
accepted STLS or STARTTLS.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import socket
from collections.abc import Iterator

import pytest

from pop3lab.config import EndpointConfig
from scanner import Credentials, ScanReport, Settings, Target
from scanner._ntlm import negotiate_message
from scanner._probe import scan
from tests.conftest import SERVICE_NAME, Emulated, lab_policy
from tests.dnsserver import DnsServer
from tests.dovecot import CLIENT_SOURCE, Dovecot, DovecotConfig, DovecotFactory
from tests.ports import free_port
from tests.relay import Tapped, Wiretap
from tests.smtp import SmtpSink

USER = "capture-monitor"
PASSWORD = f"Capture-{secrets.token_hex(8)}"
MONITOR = Credentials(USER, PASSWORD)
PROTOCOLS = ("pop3", "imap", "submission")


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


# The secret itself, its base64 (AUTH LOGIN's second answer) and the AUTH PLAIN response.
SECRETS = (PASSWORD.encode(), b64(PASSWORD), b64(f"\0{USER}\0{PASSWORD}"))
# An AUTH PLAIN response decoded (RFC 4616): authzid NUL user NUL password, for any user.
PLAIN_SHAPE = re.compile(rb"[^\0]*\0[^\0]+\0[^\0]+")

_PROBE = r"popcompliance-probe-[0-9a-f]{12}"
_NEGOTIATE = re.escape(base64.b64encode(negotiate_message()).decode())
# What each module's docstring says crosses the cleartext port, as one pattern per line:
# scanner/_pop3.py (CAPA, USER with a random name, AUTH cancelled with `*`, STLS, QUIT),
# scanner/_imap.py (CAPABILITY, AUTHENTICATE PLAIN then `*`, LOGIN with a random name and a
# throwaway word, LOGOUT, STARTTLS), scanner/_submission.py (EHLO with a name under .invalid,
# AUTH PLAIN or LOGIN then `*`, STARTTLS, QUIT), and scanner/_disclosure.py on each (AUTH NTLM
# or AUTHENTICATE NTLM, the NEGOTIATE that names nobody, `*`).
DOCUMENTED = {
    "pop3": [r"CAPA", rf"USER {_PROBE}", r"AUTH (PLAIN|LOGIN|NTLM)", r"STLS", r"QUIT"],
    "imap": [
        r"p\d+ CAPABILITY",
        r"p\d+ AUTHENTICATE (PLAIN|NTLM)",
        rf"p\d+ LOGIN {_PROBE} not-a-password-[0-9a-f]{{12}}",
        r"p\d+ STARTTLS",
        r"p\d+ LOGOUT",
    ],
    "submission": [
        r"EHLO popcompliance-probe\.invalid",
        r"AUTH (PLAIN|LOGIN|NTLM)",
        r"STARTTLS",
        r"QUIT",
    ],
}
UPGRADE = {"pop3": r"STLS", "imap": r"p\d+ STARTTLS", "submission": r"STARTTLS"}


def cleartext_lines(sent: bytes) -> tuple[list[str], bytes]:
    """The client's command lines before TLS, and what followed them: TLS records start with
    0x16 (a handshake) or a set high bit (an SSL 2.0 hello), command lines never do."""
    lines: list[str] = []
    while sent and sent[0] != 0x16 and sent[0] < 0x80:
        line, separator, sent = sent.partition(b"\r\n")
        assert separator, f"a command line without CRLF: {line[:80]!r}"
        lines.append(line.decode("ascii"))
    return lines, sent


def assert_only_documented(protocol: str, tapped: Tapped) -> list[str]:
    """Every cleartext line the client sent is documented, and TLS follows only an upgrade;
    returns the lines."""
    lines, tls = cleartext_lines(tapped.sent_by("client"))
    allowed = re.compile("|".join([*DOCUMENTED[protocol], r"\*", _NEGOTIATE]))
    for line in lines:
        assert allowed.fullmatch(line), f"{protocol}: undocumented line {line[:80]!r}"
    if tls:
        assert lines and re.fullmatch(UPGRADE[protocol], lines[-1]), f"{protocol}: TLS unasked"
    return lines


def assert_no_secret(protocol: str, tapped: Tapped, lines: list[str]) -> None:
    """No secret in any byte either way; no PASS, no real user, no PLAIN response in the clear."""
    for side in ("client", "server"):
        data = tapped.sent_by(side)
        for secret in SECRETS:
            assert secret not in data, f"{protocol}: a secret crossed from the {side}"
    for line in lines:
        assert not line.upper().startswith("PASS"), f"{protocol}: PASS in the clear"
        assert USER not in line, f"{protocol}: the real user name in the clear: {line!r}"
        for word in line.split():
            decoded = decoded_base64(word)
            assert USER.encode() not in decoded and PASSWORD.encode() not in decoded
            assert not PLAIN_SHAPE.fullmatch(decoded), f"{protocol}: an AUTH PLAIN response"


def decoded_base64(word: str) -> bytes:
    try:
        return base64.b64decode(word, validate=True)
    except (binascii.Error, ValueError):
        return b""


def scan_tapped(
    dns: DnsServer, target: Target, wiretap: Wiretap, upstream: dict[str, int]
) -> tuple[ScanReport, dict[str, list[list[str]]]]:
    """Scan `target` (its cleartext ports the wiretap's), then check every tapped connection;
    the report and each protocol's cleartext lines, per connection."""
    settings = Settings(timeout=5, resolver=dns.address)
    report = scan([target], settings, lab_policy())[0]
    wiretap.stop()  # every relayed connection has ended once this returns
    seen: dict[str, list[list[str]]] = {}
    for protocol in PROTOCOLS:
        connections = wiretap.tapped(upstream[protocol])
        assert connections, f"nothing crossed the {protocol} port"
        for tapped in connections:
            lines = assert_only_documented(protocol, tapped)
            assert_no_secret(protocol, tapped, lines)
            seen.setdefault(protocol, []).append(lines)
    return report, seen


def assert_scanned_the_dangerous_paths(
    report: ScanReport, seen: dict[str, list[list[str]]]
) -> None:
    """The test is not vacuous: every protocol was asked for a password before TLS and said
    yes (so a careless probe would have sent one), each upgrade was tapped, and the monitoring
    account logged in through STLS on the tapped POP3 port."""
    endpoint = report.endpoints[0]
    for protocol in PROTOCOLS:
        facts = getattr(endpoint, protocol)
        assert facts.plaintext_login == "accepted", protocol
        assert any(lines and re.fullmatch(UPGRADE[protocol], lines[-1]) for lines in seen[protocol])
    login = endpoint.tls_login
    assert login is not None
    assert (login.entry, login.accepted) == ("stls", True)


def target_through(host: str, relayed: dict[str, int], implicit: dict[str, int]) -> Target:
    return Target(
        host,
        service_name=SERVICE_NAME,
        protocols=PROTOCOLS,
        pop3_port=relayed["pop3"],
        imap_port=relayed["imap"],
        submission_port=relayed["submission"],
        pop3s_port=implicit["pop3s"],
        imaps_port=implicit["imaps"],
        submissions_port=implicit["submissions"],
        credentials=MONITOR,
    )


EXCHANGE = EndpointConfig(
    "exchange2016",
    "PlainTextLogin",
    ntlm=True,
    pop3s=False,
    imap=True,
    imaps=True,
    submission=True,
    submissions=True,
    # Basic authentication without BasicAuthRequireTLS: SMTP's PlainTextLogin.
    submission_auth=("Tls", "Integrated", "BasicAuth"),
    accounts=((USER, PASSWORD),),
)


def test_nothing_secret_crosses_exchange_with_plaintext_everywhere(emulated: Emulated) -> None:
    server = emulated.start(EXCHANGE)
    upstream = {protocol: server.port(protocol) or 0 for protocol in PROTOCOLS}
    with Wiretap() as wiretap:
        address = server.address
        relayed = {p: wiretap.relay(address, (address, port)) for p, port in upstream.items()}
        # Port 9: nothing listens there (the POP3S listener is off).
        implicit = {
            "pop3s": 9,
            "imaps": server.imaps_port or 0,
            "submissions": server.submissions_port or 0,
        }
        target = target_through(address, relayed, implicit)
        report, seen = scan_tapped(emulated.dns_server, target, wiretap, upstream)
    assert_scanned_the_dangerous_paths(report, seen)
    # NTLM was read on every protocol, with the NEGOTIATE that names nobody.
    assert sorted(f.protocol for f in report.endpoints[0].ntlm if f.challenge) == sorted(PROTOCOLS)
    # The emulator saw no login but the one inside TLS.
    assert [(a.username, a.tls) for a in server.journal.logins] == [(USER, True)]


@pytest.fixture(scope="module")
def dovecot_plaintext_everywhere(dovecot_factory: DovecotFactory) -> Iterator[Dovecot]:
    """Dovecot serving all three protocols with `disable_plaintext_auth = no` and the
    monitoring account; its submission relays to a sink of its own."""
    sink = SmtpSink(free_port()).start()
    try:
        config = DovecotConfig(
            disable_plaintext_auth=False,
            accounts=((USER, PASSWORD),),
            protocols=PROTOCOLS,
            submission_relay_port=sink.port,
        )
        yield dovecot_factory(config)
    finally:
        sink.stop()


@pytest.mark.mailservers
def test_nothing_secret_crosses_dovecot_with_plaintext_allowed(
    dovecot_plaintext_everywhere: Dovecot, lab_dns: DnsServer
) -> None:
    server = dovecot_plaintext_everywhere
    upstream = {protocol: server.ports[protocol][0] for protocol in PROTOCOLS}
    with Wiretap() as wiretap:
        # From 127.0.0.1, which Dovecot does not treat as a secured connection.
        relayed = {
            p: wiretap.relay(server.host, (server.host, upstream[p]), CLIENT_SOURCE)
            for p in upstream
        }
        implicit = {
            "pop3s": free_port(server.host),
            "imaps": server.ports["imap"][1],
            "submissions": server.ports["submission"][1],
        }
        target = target_through(server.host, relayed, implicit)
        report, seen = scan_tapped(lab_dns, target, wiretap, upstream)
    assert_scanned_the_dangerous_paths(report, seen)


def test_the_wiretap_catches_a_careless_client(emulated: Emulated) -> None:
    # The detector the tests above rely on: LOGIN with the real account, in the clear.
    server = emulated.start(EXCHANGE)
    with Wiretap() as wiretap:
        port = wiretap.relay(server.address, (server.address, server.imap_port or 0))
        with socket.create_connection((server.address, port), timeout=5) as sock:
            sock.recv(512)
            sock.sendall(f"a1 LOGIN {USER} {PASSWORD}\r\n".encode())
            assert sock.recv(512).startswith(b"a1 OK")
    [tapped] = wiretap.tapped(server.imap_port or 0)
    with pytest.raises(AssertionError, match="undocumented line 'a1 LOGIN capture-monitor"):
        assert_only_documented("imap", tapped)
    lines, _ = cleartext_lines(tapped.sent_by("client"))
    with pytest.raises(AssertionError, match="a secret crossed from the client"):
        assert_no_secret("imap", tapped, lines)


@pytest.mark.parametrize(
    ("line", "caught"),
    [
        (b"PASS anything", "PASS in the clear"),
        (b"AUTH PLAIN " + b64("\0someone-else\0their-password"), "an AUTH PLAIN response"),
        (b64(PASSWORD), "a secret crossed"),
        (b"p1 LOGIN " + USER.encode() + b" x", "the real user name"),
    ],
)
def test_the_secret_detector_catches_each_leak(line: bytes, caught: str) -> None:
    tapped = Tapped(143, [("client", line + b"\r\n")])
    lines, _ = cleartext_lines(tapped.sent_by("client"))
    with pytest.raises(AssertionError, match=caught):
        assert_no_secret("imap", tapped, lines)
