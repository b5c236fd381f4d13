"""The emulator's IMAP4: Exchange for each LoginType with NTLM on and off, and a Dovecot-like
server, spoken to with raw lines and with imaplib over loopback."""

from __future__ import annotations

import base64
import imaplib
from typing import Any

import pytest

from pop3lab import EndpointConfig, HostileConfig, LabThread
from tests.conftest import next_address
from tests.lab_client import LineClient, serve, trusting

EX_GREETING = "* OK The Microsoft Exchange IMAP4 service is ready."
TAIL = "UIDPLUS MOVE ID CHILDREN IDLE NAMESPACE LITERAL+"
PASSWORD = "s3cret-lab-password"


def exchange(login_type: str = "SecureLogin", **kwargs: Any) -> EndpointConfig:
    return EndpointConfig(
        "exchange2016", imap_login_type=login_type, imap=True, imaps=True, **kwargs
    )


def greeted(lab: LabThread, config: EndpointConfig) -> tuple[LineClient, Any]:
    endpoint = serve(lab, config)
    client = LineClient(endpoint.address, endpoint.imap_port)
    client.line()
    return client, endpoint


def capability(client: LineClient) -> str:
    lines = client.until("c1 ")
    assert lines[-1] == "c1 OK CAPABILITY completed."
    return lines[0]


@pytest.mark.parametrize(
    ("login_type", "ntlm", "expected"),
    [
        ("PlainTextLogin", True, "AUTH=PLAIN AUTH=NTLM AUTH=GSSAPI STARTTLS"),
        ("PlainTextLogin", False, "AUTH=PLAIN STARTTLS"),
        ("PlainTextAuthentication", True, "LOGINDISABLED STARTTLS AUTH=NTLM AUTH=GSSAPI"),
        ("PlainTextAuthentication", False, "LOGINDISABLED STARTTLS"),
        ("SecureLogin", True, "LOGINDISABLED STARTTLS"),
        ("SecureLogin", False, "LOGINDISABLED STARTTLS"),
    ],
)
def test_exchange_capability_before_tls_follows_the_login_type(
    lab: LabThread, login_type: str, ntlm: bool, expected: str
) -> None:
    endpoint = serve(lab, exchange(login_type, imap_ntlm=ntlm))
    with LineClient(endpoint.address, endpoint.imap_port) as client:
        assert client.line() == EX_GREETING
        client.send("c1 CAPABILITY")
        assert capability(client) == f"* CAPABILITY IMAP4 IMAP4rev1 {expected} {TAIL}"


@pytest.mark.parametrize("login_type", ["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"])
def test_exchange_capability_inside_tls_is_the_same_for_every_login_type(
    lab: LabThread, login_type: str
) -> None:
    client, _ = greeted(lab, exchange(login_type))
    with client:
        assert client.ask("s1 STARTTLS") == "s1 OK Begin TLS negotiation now."
        client.starttls()
        client.send("c1 CAPABILITY")
        caps = "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=NTLM AUTH=GSSAPI"
        assert capability(client) == f"{caps} {TAIL}"


def test_exchange_imaps_greets_inside_tls(lab: LabThread) -> None:
    endpoint = serve(lab, exchange())
    with LineClient(endpoint.address, endpoint.imaps_port, tls=True) as client:
        assert client.line() == EX_GREETING


def test_exchange_imaps_without_a_certificate_says_so_in_plaintext(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(cert_kind=None))
    with LineClient(endpoint.address, endpoint.imaps_port) as client:
        assert client.line() == "* BYE Connection is closed. 14"
        assert client.at_eof()


def test_exchange_without_a_certificate_drops_starttls(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange(cert_kind=None))
    with client:
        client.send("c1 CAPABILITY")
        assert capability(client).startswith("* CAPABILITY IMAP4 IMAP4rev1 LOGINDISABLED UIDPLUS")
        assert client.ask("s1 STARTTLS") == "s1 BAD Command received in Invalid state."


def test_exchange_refuses_login_before_tls_and_the_third_error_hangs_up(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange("SecureLogin"))
    with client:
        for tag in ("a1", "a2"):
            assert (
                client.ask(f"{tag} LOGIN user pass")
                == f"{tag} BAD Command received in Invalid state."
            )
        assert client.ask("a3 LOGIN user pass") == "a3 BAD Command received in Invalid state."
        assert client.line() == "* BYE Connection closed. 14"
        assert client.at_eof()


def test_exchange_never_asks_for_a_literal_password_it_will_not_take(lab: LabThread) -> None:
    client, endpoint = greeted(lab, exchange("SecureLogin"))
    with client:
        assert client.ask("a1 LOGIN {4}") == "a1 BAD Command received in Invalid state."
        assert client.ask("n1 NOOP") == "n1 OK NOOP completed."
    assert endpoint.journal.logins == []


def test_exchange_authenticate_plain_before_tls_is_refused_without_counting(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange("PlainTextAuthentication"))
    with client:
        for tag in ("p1", "p2", "p3", "p4"):
            reply = client.ask(f"{tag} AUTHENTICATE PLAIN")
            assert reply == f"{tag} BAD Command received in Invalid state."
        assert client.ask("n1 NOOP") == "n1 OK NOOP completed."


def test_exchange_authenticate_under_secure_login_counts_as_invalid_state(lab: LabThread) -> None:
    client, endpoint = greeted(lab, exchange("SecureLogin"))
    with client:
        client.send("p1 AUTHENTICATE PLAIN")
        client.send("p2 AUTHENTICATE NTLM")
        client.send("p3 AUTHENTICATE PLAIN")
        assert client.until("* BYE")[-2:] == [
            "p3 BAD Command received in Invalid state.",
            "* BYE Connection closed. 14",
        ]
    assert endpoint.journal.connections[0].rejected_commands == 3


def test_exchange_plaintext_login_would_take_a_password_and_cancel_is_answered(
    lab: LabThread,
) -> None:
    client, _ = greeted(lab, exchange("PlainTextLogin"))
    with client:
        assert client.ask("p1 AUTHENTICATE PLAIN") == "+ "
        assert client.ask("*") == "p1 NO The AUTH protocol exchange was canceled by the client."
        assert client.ask("x1 AUTHENTICATE LOGIN") == "x1 BAD Command Argument Error. 11"


def test_exchange_fourth_failed_login_hangs_up(lab: LabThread) -> None:
    client, endpoint = greeted(lab, exchange("PlainTextLogin"))
    with client:
        for tag in ("a1", "a2", "a3"):
            assert client.ask(f'{tag} LOGIN nobody "wrong"') == f"{tag} NO LOGIN failed."
        assert client.ask("a4 LOGIN nobody wrong") == "a4 NO LOGIN failed."
        assert client.line() == "* BYE Connection is closed. 14"
        assert client.at_eof()
    assert [(a.username, a.accepted, a.tls) for a in endpoint.journal.logins] == [
        ("nobody", False, False)
    ] * 4


def test_exchange_logout_names_the_release(lab: LabThread) -> None:
    client, _ = greeted(lab, EndpointConfig("exchange2013", imap=True))
    with client:
        assert (
            client.ask("z1 LOGOUT")
            == "* BYE Microsoft Exchange Server 2013 IMAP4 server signing off."
        )
        assert client.line() == "z1 OK LOGOUT completed."
        assert client.at_eof()


def test_exchange_unknown_command_counts(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange())
    with client:
        assert client.ask("u1 FROB") == "u1 BAD Command Error. 12"
        assert client.ask("u2 SELECT INBOX") == "u2 BAD Command received in Invalid state."
        assert client.ask("u3 LOGIN a b") == "u3 BAD Command received in Invalid state."
        assert client.line() == "* BYE Connection closed. 14"


def test_login_inside_tls_with_imaplib_sends_nothing_secret_in_the_clear(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(accounts={"alice": PASSWORD}))
    with imaplib.IMAP4(endpoint.address, endpoint.imap_port, timeout=5) as client:
        assert client.welcome == EX_GREETING.encode()
        client.starttls(trusting(check_name=False))
        assert client.login("alice", PASSWORD) == ("OK", [b"LOGIN completed."])
    (log,) = endpoint.journal.on("imap")
    assert log.tls_at is not None and PASSWORD.encode() not in log.before_tls
    assert [(a.mechanism, a.tls, a.accepted) for a in endpoint.journal.logins] == [
        ("LOGIN", True, True)
    ]


def test_literals_carry_a_login_inside_tls(lab: LabThread) -> None:
    endpoint = serve(lab, exchange(accounts={"alice": PASSWORD}))
    with LineClient(endpoint.address, endpoint.imaps_port, tls=True) as client:
        client.line()
        assert client.ask("a1 LOGIN {5}") == "+ Ready for additional command text."
        client.sock.sendall(b"alice {" + str(len(PASSWORD)).encode() + b"+}\r\n")
        assert client.ask(PASSWORD) == "a1 OK LOGIN completed."
        assert client.ask("a2 SELECT INBOX") == "a2 NO The lab serves no mail."
    assert endpoint.journal.connections[0].commands_after_login == ["SELECT"]


def test_a_huge_synchronising_literal_is_refused_unread(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange("PlainTextLogin"))
    with client:
        assert client.ask("a1 LOGIN {4294967295}") == "a1 BAD Literal too large."
        assert client.ask("n1 NOOP") == "n1 OK NOOP completed."


def test_a_huge_non_synchronising_literal_ends_the_connection(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange("PlainTextLogin"))
    with client:
        assert client.ask("a1 LOGIN {99999999+}") == "* BYE Literal too large."
        assert client.at_eof()


def test_exchange_says_why_it_drops_an_idle_client(lab: LabThread) -> None:
    client, _ = greeted(lab, exchange(idle_timeout=0.3))
    with client:
        assert client.line() == "* BYE Connection is closed. 13"
        assert client.at_eof()


def test_dovecot_like_greets_with_logindisabled_before_tls(lab: LabThread) -> None:
    endpoint = serve(lab, EndpointConfig("dovecot_like", imap=True))
    with LineClient(endpoint.address, endpoint.imap_port) as client:
        greeting = client.line()
        assert greeting.startswith("* OK [CAPABILITY IMAP4rev1 ")
        assert "STARTTLS LOGINDISABLED] Dovecot ready." in greeting


def test_dovecot_like_reproaches_a_login_before_tls(lab: LabThread) -> None:
    client, endpoint = greeted(lab, EndpointConfig("dovecot_like", imap=True))
    with client:
        client.send("a1 LOGIN nobody throwaway")
        alert, refusal = client.line(), client.line()
    assert alert.startswith("* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS")
    assert refusal.startswith("a1 NO [PRIVACYREQUIRED] ")
    assert endpoint.journal.logins == []


def test_dovecot_like_with_plaintext_reads_the_credentials(lab: LabThread) -> None:
    config = EndpointConfig("dovecot_like", "PlainTextLogin", imap=True)
    client, endpoint = greeted(lab, config)
    with client:
        login = client.ask("a1 LOGIN nobody throwaway")
        plain = base64.b64encode(b"\0nobody\0throwaway").decode()
        authenticate = client.ask(f"a2 AUTHENTICATE PLAIN {plain}")
    assert login == "a1 NO [AUTHENTICATIONFAILED] Authentication failed."
    assert authenticate == "a2 NO [AUTHENTICATIONFAILED] Authentication failed."
    assert [a.mechanism for a in endpoint.journal.logins] == ["LOGIN", "AUTHENTICATE PLAIN"]


def test_imap_ports_are_off_unless_asked(lab: LabThread) -> None:
    endpoint = serve(lab, EndpointConfig())
    assert endpoint.imap_port is None and endpoint.imaps_port is None
    assert [log.service for log in endpoint.journal.connections] == []


def test_hostile_behaviours_can_answer_on_the_imap_ports_in_imap(lab: LabThread) -> None:
    address = next_address()
    endpoint = lab.add([(address, HostileConfig("close_after_banner", imap=True))])[address]
    assert endpoint.imaps_port is None and endpoint.submission_port is None
    with LineClient(endpoint.address, endpoint.imap_port) as client:
        assert client.line() == "* OK The Microsoft Exchange IMAP4 service is ready."
        assert client.at_eof()
    assert [log.service for log in endpoint.journal.connections] == ["imap"]


def test_exchange_reads_past_a_refused_non_synchronising_literal(lab: LabThread) -> None:
    client, endpoint = greeted(lab, exchange("SecureLogin"))
    with client:
        client.send("a1 LOGIN {5+}")
        client.sock.sendall(b"alice {6+}\r\nsecret\r\n")
        assert client.line() == "a1 BAD Command received in Invalid state."
        assert client.ask("n1 NOOP") == "n1 OK NOOP completed."
    assert endpoint.journal.logins == []


@pytest.mark.parametrize("windows", ["2012r2", "2019"])
def test_imap_tls_is_served_as_schannel_serves_it(lab: LabThread, windows: str) -> None:
    config = EndpointConfig(
        "exchange2016" if windows == "2012r2" else "exchange2019",
        windows=windows,
        imap=True,
        imaps=True,
    )
    client, endpoint = greeted(lab, config)
    with client:
        assert client.ask("s1 STARTTLS") == "s1 OK Begin TLS negotiation now."
        client.starttls()
        assert client.sock.version() == "TLSv1.2"
        assert client.ask("n1 NOOP") == "n1 OK NOOP completed."
    with LineClient(endpoint.address, endpoint.imaps_port, tls=True) as client:
        assert client.line() == EX_GREETING
