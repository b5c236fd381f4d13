"""The IMAP4 not-authenticated state shared by every profile, free of I/O.

Like the POP3 session, an `ImapSession` turns one line into one `Reply` and the server module
does the reading and writing. IMAP adds literals: a command line may end in `{n}` (the client
waits for our `+` before sending n bytes) or `{n+}` (LITERAL+, the bytes follow at once). The
session then answers with `Action.LITERAL`, the handler reads exactly n bytes and passes them to
`literal`, and the command goes on with the next line. Literals and whole commands are capped,
so a client announcing `{4294967295}` is refused, never buffered.

Profiles (pop3lab.imap_profiles) decide when a command is refused: Exchange judges the state
from the verb alone, before any literal is requested, so it never asks for a password it will
not take; Dovecot reads the whole command first.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pop3lab._session import Action, Reply
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog, LoginAttempt
from pop3lab.ntlm import NtlmServer

# A login needs a few dozen bytes; larger literals are refused before a byte of them is read.
LITERAL_LIMIT = 8192
# The whole command, every line and literal of it together.
COMMAND_LIMIT = 16384
_LITERAL = re.compile(r"\{(\d{1,10})(\+?)\}$")
# What a not-authenticated client may ask for at all (RFC 9051 6.1 and 6.2, plus ID).
PRE_LOGIN = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "LOGIN", "AUTHENTICATE", "ID"})


@dataclass
class _Command:
    """A command being collected across literals; `refusal` is sent once it is complete."""

    tag: str
    verb: str
    args: list[str] = field(default_factory=list)
    size: int = 0
    refusal: Reply | None = None


def tokens(text: str) -> list[str]:
    """Split IMAP arguments into atoms and quoted strings (RFC 9051 `astring`s)."""
    result: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            value, i = _quoted(text, i + 1)
            result.append(value)
        else:
            end = text.find(" ", i)
            end = len(text) if end < 0 else end
            result.append(text[i:end])
            i = end
    return result


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The quoted string starting after the opening quote at i-1, and where it ends."""
    value: list[str] = []
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            value.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(value), i + 1
        else:
            value.append(char)
            i += 1
    raise ValueError("unterminated quoted string")


class ImapSession:
    """One IMAP conversation before login. Subclasses give the product's wording and rules."""

    greeting_text = "* OK IMAP4rev1 server ready."
    continue_literal_text = "+ Ready for additional command text."
    literal_too_large_text = "BAD Literal too large."
    after_login_text = "NO The lab serves no mail."
    command_too_long_text = "* BYE Command line too long."
    cancelled_text = "BAD Authentication cancelled."
    authenticate_failed_text = "NO AUTHENTICATE failed."
    login_failed_text = "NO LOGIN failed."

    def __init__(
        self, config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
    ) -> None:
        """Start a conversation; `tls` when it begins inside TLS (port 993)."""
        self.config = config
        self.tls = tls
        self.log = log if log is not None else ConnectionLog("imap")
        self.logged_in = False
        self.failed_logins = 0
        self._command: _Command | None = None
        # The (tag, mechanism) whose `+` continuation awaits the client's response.
        self._sasl: tuple[str, str] | None = None
        self.ntlm: NtlmServer | None = None
        self._commands: dict[str, Callable[[str, list[str]], Reply]] = {
            "CAPABILITY": self.cmd_capability,
            "NOOP": self.cmd_noop,
            "LOGOUT": self.cmd_logout,
            "STARTTLS": self.cmd_starttls,
            "LOGIN": self.cmd_login,
            "AUTHENTICATE": self.cmd_authenticate,
            "ID": self.cmd_id,
        }

    # --- what a profile provides ------------------------------------------------------------

    def capabilities(self) -> list[str]:
        """The CAPABILITY list in the current state."""
        raise NotImplementedError

    def refusal(self, tag: str, verb: str) -> Reply | None:
        """The reply refusing `verb` before its arguments are read, or None to go on."""
        raise NotImplementedError

    def plaintext_allowed(self) -> bool:
        """Whether LOGIN and AUTHENTICATE PLAIN would take a password now."""
        return self.tls or self.config.imap_plaintext_login

    def starttls_offered(self) -> bool:
        """STARTTLS is possible only before TLS and with a certificate bound."""
        return not self.tls and self.config.has_cert

    def idle_timeout(self) -> Reply | None:
        """What to say to a client idle too long; None hangs up silently."""
        return None

    def command_too_long(self) -> Reply:
        """Reply to a line over the handler's limit: hang up."""
        return Reply((self.command_too_long_text,), Action.CLOSE)

    # --- reading commands -------------------------------------------------------------------

    def greeting(self) -> Reply:
        """The untagged OK sent on connect (or after the handshake on 993)."""
        return Reply((self.greeting_text,))

    def handle(self, line: bytes) -> Reply:
        """Answer one line (CRLF stripped): a new command, the rest of one, or a SASL step."""
        text = line.decode("latin-1")
        if self._sasl is not None:
            return self.sasl_response(text.strip())
        if self._command is not None:
            return self._collect(text)
        tag, _, rest = text.partition(" ")
        verb, _, rest = rest.partition(" ")
        if not tag or not verb:
            return self.untagged_bad()
        self._command = _Command(tag, verb.upper())
        refusal = self.refusal(tag, self._command.verb)
        nonsync = (match := _LITERAL.search(rest)) is not None and match[2] == "+"
        if refusal is not None and (refusal.action is Action.CLOSE or not nonsync):
            self._command = None  # the client sends no synchronising literal after a refusal
            return refusal
        self._command.refusal = refusal
        return self._collect(rest)

    def literal(self, data: bytes) -> None:
        """The bytes of a literal the handler has read; they form one argument."""
        assert self._command is not None, "a literal is only read after one was announced"
        self._command.args.append(data.decode("utf-8", errors="replace"))

    def _collect(self, fragment: str) -> Reply:
        """Take one line's worth of a command; ask for a literal, or run the command."""
        command = self._command
        assert command is not None
        command.size += len(fragment)
        match = _LITERAL.search(fragment)
        try:
            command.args += tokens(fragment[: match.start()] if match else fragment)
        except ValueError:
            self._command = None
            return self.bad_arguments(command.tag)
        if match:
            return self._literal_wanted(command, int(match[1]), sync=not match[2])
        self._command = None
        if command.refusal is not None:
            return command.refusal
        return self.execute(command.tag, command.verb, command.args)

    def _literal_wanted(self, command: _Command, size: int, *, sync: bool) -> Reply:
        """Ask the handler for `size` bytes, or refuse a literal over the limits."""
        if size > LITERAL_LIMIT or command.size + size > COMMAND_LIMIT:
            self._command = None
            if sync:  # the client waits for our `+`, so a refusal keeps the stream in step
                return Reply((f"{command.tag} {self.literal_too_large_text}",))
            return Reply(("* BYE Literal too large.",), Action.CLOSE)
        command.size += size
        lines = (self.continue_literal_text,) if sync else ()
        return Reply(lines, Action.LITERAL, literal=size)

    def execute(self, tag: str, verb: str, args: list[str]) -> Reply:
        """Run a complete command."""
        if self.logged_in and verb not in ("CAPABILITY", "NOOP", "LOGOUT"):
            self.log.commands_after_login.append(verb)
            return Reply((f"{tag} {self.after_login_text}",))
        return self._commands[verb](tag, args)

    def tls_started(self) -> None:
        """Forget what was learnt before the handshake (RFC 9051 6.2.1)."""
        self.tls = True
        self._command = None
        self._sasl = None

    @property
    def errors(self) -> int:
        """Commands held against the client so far (kept in the connection's log)."""
        return self.log.rejected_commands

    # --- replies a profile words --------------------------------------------------------------

    def untagged_bad(self) -> Reply:
        """Reply to a line without a tag and a verb."""
        raise NotImplementedError

    def bad_arguments(self, tag: str) -> Reply:
        """Reply to arguments that do not parse or do not count right."""
        raise NotImplementedError

    def login_failed(self, tag: str, text: str) -> Reply:
        """Reply to a failed or cancelled login."""
        return Reply((f"{tag} {text}",))

    # --- commands -----------------------------------------------------------------------------

    def cmd_capability(self, tag: str, args: list[str]) -> Reply:
        """CAPABILITY: the untagged list, then the tagged completion."""
        return Reply(("* CAPABILITY " + " ".join(self.capabilities()), self.capability_done(tag)))

    def capability_done(self, tag: str) -> str:
        """The tagged line after the CAPABILITY list."""
        return f"{tag} OK CAPABILITY completed."

    def cmd_noop(self, tag: str, args: list[str]) -> Reply:
        """NOOP: nothing to report in an empty lab."""
        return Reply((f"{tag} OK NOOP completed.",))

    def cmd_id(self, tag: str, args: list[str]) -> Reply:
        """ID (RFC 2971): the lab names no implementation."""
        return Reply(("* ID NIL", f"{tag} OK ID completed."))

    def cmd_logout(self, tag: str, args: list[str]) -> Reply:
        """LOGOUT: the untagged BYE, the tagged OK, then the hang-up."""
        raise NotImplementedError

    def cmd_starttls(self, tag: str, args: list[str]) -> Reply:
        """STARTTLS: agree and hand over to TLS (a profile refuses it where it must)."""
        return Reply((f"{tag} OK Begin TLS negotiation now.",), Action.START_TLS)

    def cmd_login(self, tag: str, args: list[str]) -> Reply:
        """LOGIN user password."""
        if len(args) != 2:
            return self.bad_arguments(tag)
        return self.log_in(tag, args[0], args[1], "LOGIN")

    def cmd_authenticate(self, tag: str, args: list[str]) -> Reply:
        """AUTHENTICATE mechanism [initial-response]: a profile checks, then `start_sasl`."""
        raise NotImplementedError

    def start_sasl(self, tag: str, mechanism: str, initial: str | None) -> Reply:
        """Run the mechanism's first step with an initial response, or send the empty `+`."""
        if mechanism == "NTLM":
            self.ntlm = NtlmServer(self.config.ntlm_names, self.config.ntlm_version)
        if initial is not None:
            return self.sasl_answer(tag, mechanism, initial)
        self._sasl = (tag, mechanism)
        return Reply(("+ ",))

    def sasl_response(self, text: str) -> Reply:
        """The client's answer to our `+`: `*` cancels, anything else is its response."""
        assert self._sasl is not None
        (tag, mechanism), self._sasl = self._sasl, None
        if text == "*":
            return self.login_failed(tag, self.cancelled_text)
        return self.sasl_answer(tag, mechanism, text)

    def sasl_answer(self, tag: str, mechanism: str, response: str) -> Reply:
        """PLAIN logs an account in; NTLM earns a CHALLENGE once; all else fails."""
        if mechanism == "NTLM" and self.ntlm is not None:
            challenge = self.ntlm.step(response)
            if challenge is not None:
                self._sasl = (tag, mechanism)
                return Reply((f"+ {challenge}",))
        if mechanism != "PLAIN":
            return self.login_failed(tag, self.authenticate_failed_text)
        try:
            _authzid, user, password = (
                base64.b64decode(response, validate=True).decode().split("\0")
            )
        except ValueError:  # not base64, not UTF-8, or not three fields
            return self.login_failed(tag, self.authenticate_failed_text)
        return self.log_in(tag, user, password, "AUTHENTICATE PLAIN")

    def log_in(self, tag: str, user: str, password: str, mechanism: str) -> Reply:
        """Check the password against the config's accounts; record the attempt."""
        accepted = self.config.password_of(user) == password
        self.log.logins.append(LoginAttempt(user, mechanism, self.tls, accepted))
        by_login = mechanism == "LOGIN"
        if not accepted:
            text = self.login_failed_text if by_login else self.authenticate_failed_text
            return self.login_failed(tag, text)
        self.logged_in = True
        return Reply((f"{tag} {self.logged_in_text(by_login)}",))

    def logged_in_text(self, by_login: bool) -> str:
        """The tagged OK after a successful login."""
        return "OK LOGIN completed." if by_login else "OK AUTHENTICATE completed."
