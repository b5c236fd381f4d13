"""A real Dovecot: first that the harness serves what Debian's Dovecot really says, then that the
scanner reads it right. Every connection goes from 127.0.0.1 to 127.0.0.2 (see tests/dovecot.py).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop3lab.certs import root_ca_pem
from scanner import Policy, ScanReport, Settings
from scanner._probe import scan
from tests.dnsserver import DnsServer
from tests.dovecot import (
    HOST,
    SERVICE_NAME,
    Dovecot,
    DovecotConfig,
    DovecotError,
    DovecotFactory,
)

pytestmark = pytest.mark.dovecot

# Upstream says "Dovecot ready.", Debian's package "Dovecot (Debian) ready.".
GREETING = r"\+OK Dovecot (\(\w+\) )?ready\.\r\n"


def _line(sock: socket.socket | ssl.SSLSocket) -> str:
    """One reply line; POP3 replies here are short, so a byte at a time is fine."""
    data = b""
    while not data.endswith(b"\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data.decode()


def _ask(sock: socket.socket | ssl.SSLSocket, command: str) -> str:
    sock.sendall(command.encode() + b"\r\n")
    return _line(sock)


def _user_reply(server: Dovecot) -> str:
    """The reply to USER for a name that cannot exist, before TLS. PASS is never sent."""
    with server.connect(server.pop3_port) as sock:
        _line(sock)
        return _ask(sock, "USER nobody-popcompliance-test")


def test_it_greets_as_dovecot(dovecot: Dovecot) -> None:
    with dovecot.connect(dovecot.pop3_port) as sock:
        assert re.match(GREETING, _line(sock))


def test_it_refuses_user_before_tls_when_plaintext_auth_is_disabled(dovecot: Dovecot) -> None:
    reply = _user_reply(dovecot)
    assert reply.startswith("-ERR [AUTH] Plaintext authentication disallowed")


def test_it_accepts_user_before_tls_when_plaintext_auth_is_enabled(
    dovecot_plaintext: Dovecot,
) -> None:
    assert _user_reply(dovecot_plaintext).startswith("+OK")


def test_it_refuses_user_before_tls_when_ssl_is_required(dovecot_ssl_required: Dovecot) -> None:
    assert _user_reply(dovecot_ssl_required).startswith("-ERR [AUTH]")


def test_stls_verifies_against_the_test_root_and_then_accepts_user(dovecot: Dovecot) -> None:
    context = ssl.create_default_context(cadata=root_ca_pem().decode())
    with dovecot.connect(dovecot.pop3_port) as sock:
        _line(sock)
        assert _ask(sock, "STLS").startswith("+OK")
        with context.wrap_socket(sock, server_hostname=SERVICE_NAME) as tls:
            assert _ask(tls, "USER nobody-popcompliance-test").startswith("+OK")


def test_pop3s_serves_the_greeting_inside_tls(dovecot: Dovecot) -> None:
    context = ssl.create_default_context(cadata=root_ca_pem().decode())
    with (
        dovecot.connect(dovecot.pop3s_port) as sock,
        context.wrap_socket(sock, server_hostname=SERVICE_NAME) as tls,
    ):
        assert re.match(GREETING, _line(tls))


def _live_processes_in_group(group: int) -> list[int]:
    """Processes of process group `group` that still run; zombies (already dead) excluded."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_it_leaves_no_process_or_files_behind() -> None:
    server = Dovecot().start()
    group, directory = server.pid, server.directory
    assert len(_live_processes_in_group(group)) > 1  # the master and its children
    server.stop()
    assert directory is not None and not directory.exists()
    assert _live_processes_in_group(group) == []


def test_a_failed_start_says_why_and_cleans_up() -> None:
    with socket.create_server((HOST, 0)) as busy:
        server = Dovecot()
        server.ports["pop3"] = (busy.getsockname()[1], server.pop3s_port)
        with pytest.raises(DovecotError, match="Address already in use"):
            server.start()
    assert server.directory is None


def test_ssl_no_leaves_pop3s_closed(dovecot_factory: DovecotFactory) -> None:
    server = dovecot_factory(DovecotConfig(ssl="no"))
    with pytest.raises(ConnectionRefusedError):
        server.connect(server.pop3s_port)


# The scanner against the real thing. It does not choose its source address, so the kernel
# picks 127.0.0.1 for 127.0.0.2 and Dovecot sees the connection as not secured, as a remote
# scanner would. Each (server, policy) is scanned once and the report shared by the tests.

Scan = Callable[..., ScanReport]
TEST_ROOT_POLICY = Policy(ca_bundle_pem=root_ca_pem().decode(), use_system_trust=False)


@pytest.fixture(scope="module")
def scan_of() -> Iterator[Scan]:
    """`scan_of(server, policy=TEST_ROOT_POLICY)`: the scanner's report on one Dovecot."""
    dns = DnsServer({SERVICE_NAME: {"A": [HOST]}}).start()
    reports: dict[tuple[int, Policy], ScanReport] = {}

    def scan_once(server: Dovecot, policy: Policy = TEST_ROOT_POLICY) -> ScanReport:
        key = (server.pop3_port, policy)
        if key not in reports:
            settings = Settings(timeout=5, resolver=dns.address)
            reports[key] = scan([server.target()], settings, policy)[0]
        return reports[key]

    yield scan_once
    dns.stop()


def _status(report: ScanReport, check_id: str) -> str:
    return next(check.status for check in report.checks if check.id == check_id)


def test_scanner_fails_plaintext_login_when_dovecot_allows_it(
    dovecot_plaintext: Dovecot, scan_of: Scan
) -> None:
    report = scan_of(dovecot_plaintext)
    assert _status(report, "pop3.plaintext_login") == "fail"
    assert report.compliant is False


def test_scanner_passes_plaintext_login_quoting_dovecots_refusal(
    dovecot: Dovecot, scan_of: Scan
) -> None:
    report = scan_of(dovecot)
    pop3 = report.endpoints[0].pop3
    assert _status(report, "pop3.plaintext_login") == "pass"
    assert (pop3.plaintext_login, pop3.certainty) == ("refused", "confirmed")
    assert pop3.user_reply is not None and pop3.user_reply.startswith("-ERR [AUTH]")
    assert report.compliant is True


def test_scanner_passes_stls_and_pop3s(dovecot: Dovecot, scan_of: Scan) -> None:
    report = scan_of(dovecot)
    assert _status(report, "pop3.stls") == "pass"
    assert _status(report, "pop3s.available") == "pass"


def test_scanner_names_dovecot_as_the_product(dovecot: Dovecot, scan_of: Scan) -> None:
    product = scan_of(dovecot).endpoints[0].product
    assert product is not None and "Dovecot" in product


def test_scanner_trusts_the_certificate_only_through_the_test_root(
    dovecot: Dovecot, scan_of: Scan
) -> None:
    assert _status(scan_of(dovecot), "cert.trusted") == "pass"
    assert _status(scan_of(dovecot, Policy()), "cert.trusted") == "fail"


def test_scanner_fails_cert_name_for_a_certificate_naming_another_host(
    dovecot_wrong_name: Dovecot, scan_of: Scan
) -> None:
    report = scan_of(dovecot_wrong_name)
    assert _status(report, "cert.name") == "fail"
    assert _status(report, "cert.trusted") == "pass"


def test_ssl_required_refuses_user_but_still_offers_stls(
    dovecot_ssl_required: Dovecot, scan_of: Scan
) -> None:
    report = scan_of(dovecot_ssl_required)
    assert report.endpoints[0].pop3.plaintext_login == "refused"
    assert _status(report, "pop3.plaintext_login") == "pass"
    assert _status(report, "pop3.stls") == "pass"


def test_scanner_fails_stls_and_pop3s_when_dovecot_has_no_tls(
    dovecot_factory: DovecotFactory, scan_of: Scan
) -> None:
    report = scan_of(dovecot_factory(DovecotConfig(ssl="no")))
    assert _status(report, "pop3.stls") == "fail"
    assert _status(report, "pop3s.available") == "fail"
    assert report.endpoints[0].pop3s.outcome == "closed"


def test_scanner_fails_tls_protocols_when_dovecot_accepts_tls_1_0(
    dovecot_factory: DovecotFactory, scan_of: Scan
) -> None:
    report = scan_of(dovecot_factory(DovecotConfig(ssl_min_protocol="TLSv1")))
    support = report.endpoints[0].pop3s.support
    assert support is not None and support.accepted_versions["TLSv1"] is True
    assert _status(report, "tls.protocols") == "fail"
