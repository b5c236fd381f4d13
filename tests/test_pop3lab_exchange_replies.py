"""Exchange's own error replies and counters in the emulator: what each refused command says,
which ones count towards the hang-up at the third, and how the connection ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pop3lab._session import Action, Reply, Session
from pop3lab.config import EndpointConfig
from pop3lab.lab import LabThread
from pop3lab.profiles import make_session

INVALID = "-ERR Command is not valid in this state."
CLOSING = "Connection is closed. 21"
EX = b"+OK The Microsoft Exchange POP3 service is ready.\r\n"
TIMEOUT = 5.0


def exchange(login_type: str = "SecureLogin", **kwargs: Any) -> Session:
    return make_session(EndpointConfig("exchange2016", login_type, **kwargs))


def say(session: Session, *lines: str) -> list[Reply]:
    return [session.handle(line.encode()) for line in lines]


def test_bare_auth_in_the_clear_under_secure_login_is_invalid_and_counts() -> None:
    session = exchange("SecureLogin")
    assert say(session, "AUTH")[0].lines == (INVALID,)
    assert session.log.rejected_commands == 1


@pytest.mark.parametrize(
    ("login_type", "expected"),
    [
        ("PlainTextLogin", ("+OK", "NTLM", "GSSAPI", "PLAIN", ".")),
        ("PlainTextAuthentication", ("+OK", "NTLM", "GSSAPI", ".")),
    ],
)
def test_bare_auth_lists_what_the_login_type_allows(login_type: str, expected: tuple) -> None:
    session = exchange(login_type)
    assert say(session, "AUTH")[0].lines == expected
    assert session.log.rejected_commands == 0


@pytest.mark.parametrize("login_type", ["PlainTextLogin", "PlainTextAuthentication"])
@pytest.mark.parametrize("command", ["AUTH LOGIN", "AUTH CRAM-MD5"])
def test_auth_login_and_unknown_mechanisms_are_protocol_error_14(login_type, command) -> None:
    session = exchange(login_type)
    assert say(session, command)[0].lines == ("-ERR Protocol error. 14",)


def test_auth_ntlm_with_ntlm_off_is_protocol_error_14_inside_tls() -> None:
    session = make_session(EndpointConfig("exchange2016", ntlm=False), tls=True)
    assert say(session, "AUTH NTLM")[0].lines == ("-ERR Protocol error. 14",)


def test_auth_plain_before_tls_under_plaintextauthentication_is_refused_without_counting() -> None:
    session = exchange("PlainTextAuthentication")
    assert [r.lines for r in say(session, "AUTH PLAIN", "AUTH PLAIN", "AUTH PLAIN")] == [
        (INVALID,)
    ] * 3
    assert session.log.rejected_commands == 0


def test_auth_plain_before_tls_under_secure_login_counts() -> None:
    session = exchange("SecureLogin")
    replies = say(session, "AUTH PLAIN", "AUTH PLAIN", "AUTH PLAIN")
    assert [r.lines for r in replies] == [(INVALID,), (INVALID,), (INVALID, CLOSING)]
    assert replies[-1].action is Action.CLOSE


def test_user_with_no_name_is_protocol_error_16_where_user_is_allowed() -> None:
    assert say(exchange("PlainTextLogin"), "USER")[0].lines == ("-ERR Protocol error. 16",)
    # The state is checked before the arguments.
    assert say(exchange("SecureLogin"), "USER")[0].lines == (INVALID,)


def test_an_unknown_verb_is_protocol_error_19() -> None:
    session = exchange()
    assert say(session, "HELO mail")[0].lines == ("-ERR Protocol error. 19",)
    assert session.log.rejected_commands == 1


def test_the_third_rejection_of_any_kind_adds_the_closing_line() -> None:
    session = exchange("PlainTextLogin")
    replies = say(session, "HELO x", "STLS", "USER")
    assert [r.lines for r in replies] == [
        ("-ERR Protocol error. 19",),
        ("+OK Begin TLS negotiation.",),  # STLS is fine here; the session did not switch
        ("-ERR Protocol error. 16",),
    ]
    session.tls_started()
    third = say(session, "STLS")[0]
    assert third.lines == (INVALID, CLOSING) and third.action is Action.CLOSE


def test_an_unknown_verb_as_the_third_rejection_is_protocol_error_20() -> None:
    replies = say(exchange(), "USER a", "USER b", "NOPE")
    assert replies[-1].lines == ("-ERR Protocol error. 20",)
    assert replies[-1].action is Action.CLOSE


def test_the_fourth_failed_login_adds_the_closing_line() -> None:
    session = exchange("PlainTextLogin")
    replies = [say(session, "USER nobody", "PASS wrong")[1] for _ in range(4)]
    failure = "-ERR Logon failure: unknown user name or bad password."
    assert [r.lines for r in replies] == [(failure,)] * 3 + [(failure, CLOSING)]
    assert [r.action for r in replies] == [Action.CONTINUE] * 3 + [Action.CLOSE]
    assert session.log.rejected_commands == 0


def test_a_cancelled_auth_is_worded_as_exchange_does_and_is_a_failed_login() -> None:
    session = exchange("PlainTextLogin")
    replies = [say(session, "AUTH PLAIN", "*")[1] for _ in range(4)]
    cancelled = "-ERR The AUTH protocol exchange was canceled by the client."
    assert replies[0].lines == (cancelled,)
    assert replies[-1].lines == (cancelled, CLOSING)


def test_a_command_over_512_bytes_is_refused_and_hangs_up() -> None:
    session = exchange()
    assert say(session, "USER " + "a" * 507)[0].lines == (INVALID,)  # 512 bytes: still read
    reply = say(session, "USER " + "a" * 508)[0]
    assert reply.lines == ("-ERR Protocol error. Connection is closed. 10",)
    assert reply.action is Action.CLOSE


async def _exchange_conversation(port: int, send: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == EX
        writer.write(send)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def _served(config: EndpointConfig, send: bytes) -> bytes:
    with LabThread([("127.0.0.1", config)]) as lab:
        port = lab.endpoints["127.0.0.1"].pop3_port
        assert port is not None
        return asyncio.run(_exchange_conversation(port, send))


def test_an_idle_client_is_told_and_dropped_after_the_configured_time() -> None:
    config = EndpointConfig("exchange2016", pop3s=False, idle_timeout=0.5)
    assert _served(config, b"") == b"-ERR Connection is closed. 12\r\n"


def test_a_line_that_never_ends_is_refused_with_exchange_words() -> None:
    config = EndpointConfig("exchange2016", pop3s=False)
    reply = _served(config, b"A" * 10_000)
    assert reply == b"-ERR Protocol error. Connection is closed. 10\r\n"


def test_the_third_rejection_over_the_wire_ends_with_two_lines_and_a_close() -> None:
    config = EndpointConfig("exchange2016", pop3s=False)
    reply = _served(config, b"USER a\r\nUSER b\r\nAUTH\r\n")
    assert (
        reply
        == (INVALID + "\r\n" + INVALID + "\r\n" + INVALID + "\r\n" + CLOSING + "\r\n").encode()
    )
