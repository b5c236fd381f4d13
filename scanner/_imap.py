"""IMAP4: would 143 take a password before TLS, does STARTTLS work, and IMAP's dialect for the
protocol-generic probes (993, the TLS enumeration, NTLM).

What crosses the cleartext port, and why it is safe:
- `CAPABILITY`, then `AUTHENTICATE PLAIN` with no initial response. A `+` continuation means
  the server is ready to read a password now; we answer `*`, which cancels the exchange
  (RFC 9051 §6.2.2), so no credential is ever sent. That is the one rejected attempt of the
  conversation; Exchange drops a connection at its third error.
- Only where that was refused and CAPABILITY does not say LOGINDISABLED, on a second
  connection: `LOGIN` with a random user name no mailbox has and a random throwaway string.
  Neither is anyone's credential. `NO [AUTHENTICATIONFAILED]` (or Exchange's `NO LOGIN
  failed.`) shows the server read them, so it would read a real password; `BAD`,
  `NO [PRIVACYREQUIRED]` or "Plaintext authentication not allowed" shows it refused to.
- `LOGOUT`, whose reply names Exchange's version.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from dataclasses import dataclass

from scanner._errors import ProtocolError, ScanError, quoted
from scanner._facts import CleartextFacts
from scanner._services import IMAP
from scanner._session import AddressSession, Dialect, LoginNotes
from scanner._wire import MAX_MULTILINE, LineConnection

# An untagged line, a continuation, or a tagged status: `* ...`, `+ ...`, `<tag> OK ...`.
_TAGGED = re.compile(r"(\S+) (OK|NO|BAD)\b ?(.*)", re.IGNORECASE)
_CAPABILITY_CODE = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
# What servers say when they refuse LOGIN before TLS, beside a BAD: Dovecot's and Cyrus's
# response codes and texts, and Exchange's "Invalid state".
_REFUSED_BEFORE_TLS = re.compile(
    r"PRIVACYREQUIRED|plaintext authentication|not allowed|disabled|invalid state|"
    r"STARTTLS|encrypt|TLS|SSL",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ImapResponse:
    """The end of one command's response: `status` is OK, NO, BAD, or `+` for a continuation
    request; `line` is that line as sent (without the tag), `untagged` the `*` lines before it."""

    status: str
    text: str
    line: str
    untagged: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def continuation(self) -> bool:
        return self.status == "+"


class ImapConnection(LineConnection):
    """An IMAP4 conversation: tagged commands, untagged data bounded like POP3's CAPA."""

    upgrade_command = "STARTTLS"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self._tags = (f"p{n}" for n in itertools.count(1))
        self._pending = ""

    async def read_text_line(self) -> str:
        return (await self.read_line()).rstrip(b"\r\n").decode("utf-8", errors="replace")

    async def command(self, command: str, step: str | None = None) -> ImapResponse:
        """Send a tagged command; read up to its tagged status or a continuation request."""
        self._pending = next(self._tags)
        step = step or f"reply to {command.split()[0]}"
        await self.send_line(f"{self._pending} {command}".encode("ascii"), step)
        return await self.read_response()

    async def respond(self, line: str, step: str) -> ImapResponse:
        """Answer a continuation request (a SASL response, or `*` to cancel)."""
        await self.send_line(line.encode("ascii"), step)
        return await self.read_response()

    async def read_response(self) -> ImapResponse:
        untagged: list[str] = []
        total = 0
        while True:
            line = await self.read_text_line()
            if line == "+" or line.startswith("+ "):
                return ImapResponse("+", line[2:], line, tuple(untagged))
            tagged = _TAGGED.fullmatch(line)
            if tagged and tagged.group(1) == self._pending:
                status, text = tagged.group(2).upper(), tagged.group(3)
                return ImapResponse(status, text, line.partition(" ")[2], tuple(untagged))
            if not line.startswith("*"):
                raise ProtocolError(self.step, "the reply is not IMAP", line)
            total += len(line)
            if total > MAX_MULTILINE:
                raise ProtocolError(self.step, f"untagged data longer than {MAX_MULTILINE} bytes")
            untagged.append(line)


def capabilities_in(lines: tuple[str, ...] | list[str]) -> tuple[str, ...] | None:
    """The capability atoms of `* CAPABILITY ...` lines or an `[CAPABILITY ...]` response
    code; None when there are none."""
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "*" and words[1].upper() == "CAPABILITY":
            return tuple(words[2:])
        code = _CAPABILITY_CODE.search(line)
        if code:
            return tuple(code.group(1).split())
    return None


def has_capability(capabilities: tuple[str, ...] | None, name: str) -> bool:
    return name.upper() in {atom.upper() for atom in capabilities or ()}


async def read_greeting(connection: ImapConnection) -> str:
    """The server's first line; it must be `* OK` (or `* PREAUTH`). `* BYE` is a refusal;
    anything else is no IMAP server at all, which an operator must not read as a refusal."""
    connection.step = "greeting"
    line = await connection.read_text_line()
    words = line.upper().split()
    if words[:2] == ["*", "BYE"]:
        raise ProtocolError("greeting", "the server refused the session", line)
    if len(words) < 2 or words[0] != "*" or words[1] not in {"OK", "PREAUTH"}:
        raise ProtocolError("greeting", "the greeting is not IMAP", line)
    return line


async def read_capabilities(connection: ImapConnection) -> tuple[str, ...] | None:
    response = await connection.command("CAPABILITY")
    if not response.ok:
        return None
    return capabilities_in(response.untagged) or ()


async def ask_starttls(connection: ImapConnection) -> tuple[bool, str]:
    response = await connection.command("STARTTLS")
    return response.ok, response.line


# A server that does not answer LOGOUT has still answered everything we needed.
LOGOUT_WAIT = 2.0


async def log_out(connection: ImapConnection) -> str | None:
    """LOGOUT, and its `* BYE` line (Exchange names its version there), or None."""
    try:
        async with asyncio.timeout(LOGOUT_WAIT):
            response = await connection.command("LOGOUT")
    except (ScanError, TimeoutError):
        return None
    bye = [line for line in response.untagged if line.upper().startswith("* BYE")]
    return bye[0] if bye else response.line


async def ntlm_challenge(connection: ImapConnection, negotiate: str) -> str:
    """AUTHENTICATE NTLM: `+`, the NEGOTIATE, `+ CHALLENGE`, then `*` to cancel."""
    await read_greeting(connection)
    start = await connection.command("AUTHENTICATE NTLM")
    if not start.continuation:
        raise ProtocolError("reply to AUTHENTICATE NTLM", "NTLM was refused", start.line)
    challenge = await connection.respond(negotiate, "reply to the NTLM NEGOTIATE")
    if not challenge.continuation:
        raise ProtocolError("reply to the NTLM NEGOTIATE", "no NTLM challenge", challenge.line)
    await connection.respond("*", "reply to cancelling AUTHENTICATE NTLM")
    return challenge.text


def _lists_ntlm(capabilities: tuple[str, ...] | None) -> bool:
    return has_capability(capabilities, "AUTH=NTLM")


def _random_word(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def probe_cleartext(session: AddressSession) -> CleartextFacts:
    """The login probe on 143 as facts; connection trouble is recorded, not raised."""
    port, _ = session.target.ports(IMAP)
    notes = LoginNotes()
    try:
        authenticate = _authenticate_conversation
        await session.converse(
            port, lambda c: authenticate(c, notes), kind=ImapConnection, record="login"
        )
        if notes.plaintext_login == "unknown" and not has_capability(
            notes.capabilities, "LOGINDISABLED"
        ):
            await session.converse(
                port, lambda c: _login_conversation(c, notes), kind=ImapConnection, record="login"
            )
    except ScanError as exc:
        return notes.facts(port, exc)
    return notes.facts(port)


async def _authenticate_conversation(connection: ImapConnection, notes: LoginNotes) -> None:
    notes.greeting = await read_greeting(connection)
    notes.capabilities = await read_capabilities(connection)
    response = await connection.command("AUTHENTICATE PLAIN", "reply to AUTHENTICATE PLAIN")
    notes.auth_replies["AUTHENTICATE PLAIN"] = response.line
    if response.continuation:
        listed = "" if has_capability(notes.capabilities, "AUTH=PLAIN") else " (unlisted)"
        evidence = (
            f"AUTHENTICATE PLAIN{listed} before TLS answered {quoted(response.line)} "
            "(a password challenge)"
        )
        notes.decide("accepted", evidence)
        cancel = await connection.respond("*", "reply to cancelling AUTHENTICATE PLAIN")
        notes.auth_replies["*"] = cancel.line
    elif has_capability(notes.capabilities, "LOGINDISABLED"):
        evidence = (
            f"CAPABILITY lists LOGINDISABLED and AUTHENTICATE PLAIN before TLS answered "
            f"{quoted(response.line)}"
        )
        notes.decide("refused", evidence)
    notes.goodbye = await log_out(connection)


async def _login_conversation(connection: ImapConnection, notes: LoginNotes) -> None:
    """LOGIN with throwaway words, where CAPABILITY does not say LOGINDISABLED."""
    await read_greeting(connection)
    user, word = _random_word("popcompliance-probe"), _random_word("not-a-password")
    response = await connection.command(f"LOGIN {user} {word}", "reply to LOGIN")
    notes.auth_replies["LOGIN"] = response.line
    answered = f"LOGIN before TLS answered {quoted(response.line)}"
    if response.continuation:
        # A literal was expected where none was sent: the server is not IMAP as we know it.
        raise ProtocolError("reply to LOGIN", "the server asked for more", response.line)
    if response.ok:
        notes.decide("accepted", f"{answered} (it let a made-up user in)")
    elif response.status == "NO" and not _REFUSED_BEFORE_TLS.search(response.text):
        notes.decide("accepted", f"{answered}: it read the user name and password")
    else:
        notes.decide("refused", answered)
    notes.goodbye = await log_out(connection)


IMAP_DIALECT = Dialect(
    protocol=IMAP,
    kind=ImapConnection,
    read_greeting=read_greeting,
    ask_upgrade=ask_starttls,
    read_capabilities=read_capabilities,
    say_goodbye=log_out,
    ntlm_challenge=ntlm_challenge,
    lists_ntlm=_lists_ntlm,
    probe_cleartext=probe_cleartext,
)
