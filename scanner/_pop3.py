"""The cleartext POP3 port: would the server take a password before TLS, and does STLS work?

The login probe never sends PASS and never a real user name: it sends
`USER` with a random name that cannot exist and reads the answer; where SASL PLAIN or LOGIN is
advertised before TLS it starts `AUTH` and cancels with `*` at the first challenge. Exchange
drops a connection at its third rejected command, so no conversation here risks more than two.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from scanner._errors import ProtocolError, ScanError, quoted
from scanner._facts import Certainty, LoginVerdict, Pop3Facts
from scanner._services import POP3
from scanner._session import (
    AddressSession,
    Dialect,
    quit_politely,
    read_capabilities,
    read_greeting,
)
from scanner._wire import Pop3Connection, capability_names, sasl_mechanisms

CLEARTEXT_MECHANISMS = ("PLAIN", "LOGIN")


def probe_user_name() -> str:
    """A user name no real mailbox has, so the probe can never start a real login."""
    return f"popcompliance-probe-{secrets.token_hex(6)}"


@dataclass
class _LoginNotes:
    """What the login conversation learnt so far; kept when a later step fails.

    Its fields are exactly Pop3Facts's conversation fields, so _facts can pass them on whole."""

    greeting: str | None = None
    capabilities: tuple[str, ...] | None = None
    user_reply: str | None = None
    auth_replies: dict[str, str] = field(default_factory=dict)
    plaintext_login: LoginVerdict = "unknown"
    certainty: Certainty = "unknown"
    evidence: str | None = None
    quit_reply: str | None = None

    def decide(self, verdict: LoginVerdict, certainty: Certainty, evidence: str) -> None:
        self.plaintext_login, self.certainty, self.evidence = verdict, certainty, evidence


async def probe_cleartext(session: AddressSession) -> Pop3Facts:
    """The login probe on the POP3 port, as facts; connection trouble is recorded, not raised."""
    port = session.target.pop3_port
    notes = _LoginNotes()
    try:
        await session.converse(
            port, lambda connection: _login_conversation(connection, notes), record="login"
        )
    except ScanError as exc:
        return _facts(port, notes, outcome=exc.outcome, error=str(exc))
    return _facts(port, notes, outcome="ok", error=None)


def _facts(port: int, notes: _LoginNotes, *, outcome: str, error: str | None) -> Pop3Facts:
    return Pop3Facts(port=port, outcome=outcome, error=error, **vars(notes))  # type: ignore[arg-type]


async def _login_conversation(connection: Pop3Connection, notes: _LoginNotes) -> None:
    notes.greeting = (await read_greeting(connection)).line
    notes.capabilities = await read_capabilities(connection)
    user = await connection.command(f"USER {probe_user_name()}", "reply to USER")
    notes.user_reply = user.line
    if user.ok:
        _judge_accepted_user(notes)
    else:
        await _probe_sasl(connection, notes)
    notes.quit_reply = await quit_politely(connection)


def _judge_accepted_user(notes: _LoginNotes) -> None:
    """+OK to USER is the server asking for the password, whatever CAPA lists: a mail client
    sends PASS next, in the clear. (It may refuse every PASS, as a TLS-enforcing proxy or a
    honeypot does; we never send one, and the password has crossed by then anyway.)"""
    evidence = f"USER before TLS answered {quoted(notes.user_reply)}"
    if "USER" not in capability_names(notes.capabilities):
        evidence += " although CAPA does not list USER"
    notes.decide("accepted", "confirmed", evidence)


async def _probe_sasl(connection: Pop3Connection, notes: _LoginNotes) -> None:
    """USER was refused; does AUTH PLAIN/LOGIN invite a password before TLS? Without CAPA
    the server has not said which mechanisms it takes, so AUTH PLAIN is asked anyway: what it
    does, not what it lists, decides."""
    listed = sasl_mechanisms(notes.capabilities)
    offered = [m for m in CLEARTEXT_MECHANISMS if m in listed or notes.capabilities is None]
    refused_user = f"USER before TLS answered {quoted(notes.user_reply)}"
    if not offered:
        notes.decide("refused", "confirmed", refused_user)
        return
    mechanism = offered[0]
    reply = await connection.command(f"AUTH {mechanism}", f"reply to AUTH {mechanism}")
    notes.auth_replies[mechanism] = reply.line
    if reply.continuation:
        answered = f"AUTH {mechanism} before TLS answered {quoted(reply.line)}"
        evidence = f"{answered} (a password challenge)"
        notes.decide("accepted", "confirmed", evidence)
        cancel = await connection.command("*", f"reply to cancelling AUTH {mechanism}")
        notes.auth_replies["*"] = cancel.line
    else:
        evidence = f"{refused_user}; AUTH {mechanism} answered {quoted(reply.line)}"
        notes.decide("refused", "confirmed", evidence)


async def _greeting_line(connection: Pop3Connection) -> str:
    return (await read_greeting(connection)).line


async def _ntlm_challenge(connection: Pop3Connection, negotiate: str) -> str:
    """AUTH NTLM (RFC 1734 with NTLM's SASL profile): `+`, the NEGOTIATE, `+ CHALLENGE`, `*`."""
    await read_greeting(connection)
    start = await connection.command("AUTH NTLM")
    if not start.continuation:
        raise ProtocolError("reply to AUTH NTLM", "NTLM was refused", start.line)
    challenge = await connection.command(negotiate, "reply to the NTLM NEGOTIATE")
    if not challenge.continuation:
        raise ProtocolError("reply to the NTLM NEGOTIATE", "no NTLM challenge", challenge.line)
    await connection.command("*", "reply to cancelling AUTH NTLM")
    return challenge.text


async def _ask_stls(connection: Pop3Connection) -> tuple[bool, str]:
    reply = await connection.command("STLS")
    return reply.ok, reply.line


def _lists_ntlm(capabilities: tuple[str, ...] | None) -> bool:
    return "NTLM" in sasl_mechanisms(capabilities)


POP3_DIALECT = Dialect(
    protocol=POP3,
    kind=Pop3Connection,
    read_greeting=_greeting_line,
    ask_upgrade=_ask_stls,
    read_capabilities=read_capabilities,
    say_goodbye=quit_politely,
    ntlm_challenge=_ntlm_challenge,
    lists_ntlm=_lists_ntlm,
    probe_cleartext=probe_cleartext,
)
