"""SMTP submission: would 587 take a password before STARTTLS, does STARTTLS work, and SMTP's
dialect for the protocol-generic probes (465, the TLS enumeration, NTLM).

What crosses the cleartext port, and why it is safe:
- `EHLO` with a name under `.invalid`, to read the keywords (is AUTH offered before TLS?).
- `AUTH PLAIN` with no initial response (or `AUTH LOGIN` where only LOGIN is listed, as on
  Exchange, whose client connector answers PLAIN with `504 5.7.4` whatever it allows). A
  `334` means the server is ready to read a password now; we answer `*`, which cancels the
  exchange (RFC 4954 §4; `501` follows), so no credential is ever sent. `530`, `538`, `503`,
  `504` or `523` means it refused. One attempt per connection.
- `QUIT`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from scanner._errors import ProtocolError, ScanError, quoted
from scanner._facts import CleartextFacts
from scanner._services import SUBMISSION
from scanner._session import AddressSession, Dialect, LoginNotes
from scanner._wire import MAX_MULTILINE, LineConnection

# RFC 2606: a name that can never be anyone's, so the EHLO claims no real host.
EHLO_NAME = "popcompliance-probe.invalid"
CLEARTEXT_MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True)
class SmtpReply:
    """One SMTP reply: its code and the text of each line (without the code)."""

    code: int
    lines: tuple[str, ...]

    @property
    def line(self) -> str:
        """The reply as quoted in facts: the code, then its lines joined."""
        return f"{self.code} " + " / ".join(self.lines) if any(self.lines) else str(self.code)

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400


class SmtpConnection(LineConnection):
    """An SMTP conversation: multi-line replies (`250-...`, `250 ...`) bounded in size."""

    upgrade_command = "STARTTLS"

    async def read_reply(self) -> SmtpReply:
        lines: list[str] = []
        total, code = 0, None
        while True:
            raw = (await self.read_line()).rstrip(b"\r\n").decode("utf-8", errors="replace")
            head, separator, text = raw[:3], raw[3:4], raw[4:]
            if not head.isdigit() or separator not in {"", " ", "-"} or code not in {None, head}:
                raise ProtocolError(self.step, "the reply is not SMTP", raw)
            code = head
            total += len(raw)
            if total > MAX_MULTILINE:
                raise ProtocolError(self.step, f"reply longer than {MAX_MULTILINE} bytes")
            lines.append(text)
            if separator != "-":
                return SmtpReply(int(head), tuple(lines))

    async def command(self, command: str, step: str | None = None) -> SmtpReply:
        step = step or f"reply to {command.split()[0]}"
        await self.send_line(command.encode("ascii"), step)
        return await self.read_reply()


def auth_mechanisms(keywords: tuple[str, ...] | None) -> set[str]:
    """The mechanisms of the EHLO `AUTH` keyword (and the old `AUTH=` form), upper-cased."""
    mechanisms: set[str] = set()
    for line in keywords or ():
        words = line.upper().replace("AUTH=", "AUTH ").split()
        if words and words[0] == "AUTH":
            mechanisms.update(words[1:])
    return mechanisms


def offers(keywords: tuple[str, ...] | None, keyword: str) -> bool:
    return keyword in {line.split()[0].upper() for line in keywords or () if line.split()}


async def read_greeting(connection: SmtpConnection) -> str:
    """The server's greeting; it must be `220`."""
    connection.step = "greeting"
    reply = await connection.read_reply()
    if reply.code != 220:
        raise ProtocolError("greeting", "the server refused the session", reply.line)
    return reply.line


async def ehlo(connection: SmtpConnection) -> tuple[str, ...]:
    """EHLO's keywords (the lines after the first)."""
    reply = await connection.command(f"EHLO {EHLO_NAME}", "reply to EHLO")
    if reply.code != 250:
        raise ProtocolError("reply to EHLO", "the server refused EHLO", reply.line)
    return tuple(" ".join(line.split()) for line in reply.lines[1:] if line.strip())


async def ask_starttls(connection: SmtpConnection) -> tuple[bool, str]:
    """EHLO (STARTTLS must follow it, RFC 3207), then STARTTLS."""
    await ehlo(connection)
    reply = await connection.command("STARTTLS")
    return reply.code == 220, reply.line


# A server that does not answer QUIT has still answered everything we needed.
QUIT_WAIT = 2.0


async def say_quit(connection: SmtpConnection) -> str | None:
    try:
        async with asyncio.timeout(QUIT_WAIT):
            return (await connection.command("QUIT")).line
    except (ScanError, TimeoutError):
        return None


async def ntlm_challenge(connection: SmtpConnection, negotiate: str) -> str:
    """AUTH NTLM (RFC 4954): `334`, the NEGOTIATE, `334 CHALLENGE`, then `*` to cancel."""
    await read_greeting(connection)
    await ehlo(connection)
    start = await connection.command("AUTH NTLM")
    if start.code != 334:
        raise ProtocolError("reply to AUTH NTLM", "NTLM was refused", start.line)
    challenge = await connection.command(negotiate, "reply to the NTLM NEGOTIATE")
    if challenge.code != 334:
        raise ProtocolError("reply to the NTLM NEGOTIATE", "no NTLM challenge", challenge.line)
    await connection.command("*", "reply to cancelling AUTH NTLM")
    return "".join(challenge.lines)


def _lists_ntlm(keywords: tuple[str, ...] | None) -> bool:
    return "NTLM" in auth_mechanisms(keywords)


async def probe_cleartext(session: AddressSession) -> CleartextFacts:
    """The AUTH probe on 587 as facts; connection trouble is recorded, not raised."""
    port, _ = session.target.ports(SUBMISSION)
    notes = LoginNotes()
    try:
        await session.converse(
            port, lambda c: _auth_conversation(c, notes), kind=SmtpConnection, record="login"
        )
    except ScanError as exc:
        return notes.facts(port, exc)
    return notes.facts(port)


def _mechanism(listed: set[str]) -> str:
    """PLAIN unless only LOGIN is listed; PLAIN when nothing is, to see what the server does
    rather than what it lists."""
    return "LOGIN" if "LOGIN" in listed and "PLAIN" not in listed else "PLAIN"


async def _auth_conversation(connection: SmtpConnection, notes: LoginNotes) -> None:
    notes.greeting = await read_greeting(connection)
    notes.capabilities = await ehlo(connection)
    listed = auth_mechanisms(notes.capabilities)
    mechanism = _mechanism(listed)
    command = f"AUTH {mechanism}"
    reply = await connection.command(command, f"reply to {command}")
    notes.auth_replies[command] = reply.line
    advertised = (
        f"EHLO before STARTTLS lists AUTH {' '.join(sorted(listed))}"
        if listed
        else "EHLO before STARTTLS lists no AUTH mechanism"
    )
    if reply.code == 334:
        evidence = f"{command} before STARTTLS answered {quoted(reply.line)} (a password challenge)"
        notes.decide("accepted", evidence)
        cancel = await connection.command("*", f"reply to cancelling {command}")
        notes.auth_replies["*"] = cancel.line
    elif 500 <= reply.code < 600 or reply.code in {454, 432}:
        evidence = f"{advertised}; {command} answered {quoted(reply.line)}"
        notes.decide("refused", evidence)
    notes.goodbye = await say_quit(connection)


SUBMISSION_DIALECT = Dialect(
    protocol=SUBMISSION,
    kind=SmtpConnection,
    read_greeting=read_greeting,
    ask_upgrade=ask_starttls,
    read_capabilities=ehlo,
    say_goodbye=say_quit,
    ntlm_challenge=ntlm_challenge,
    lists_ntlm=_lists_ntlm,
    probe_cleartext=probe_cleartext,
)
