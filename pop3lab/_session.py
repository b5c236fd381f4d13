"""The POP3 AUTHORIZATION-state machine shared by every profile, free of I/O.

A `Session` turns one command line into one `Reply`; the server module does the reading and
writing. Keeping the state machine pure makes each server quirk a one-line test and keeps the
per-connection cost to a dict lookup and a string join. Profiles subclass it and override the
texts (class attributes) and the few policy methods.

Accounts of the config log in with USER/PASS or AUTH PLAIN wherever the profile takes
passwords; every attempt, and every command after a login, goes to the connection's log.
After a login the mailbox is empty and only QUIT does anything: the lab serves no mail.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable
from dataclasses import dataclass

from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog, LoginAttempt

# RFC 1939 caps responses at 512 octets including CRLF; Exchange honours it.
MAX_RESPONSE_LINE = 512
# RFC 2449 §4 caps commands at 255 octets; RFC 5034 §4 says how AUTH stays within it.
MAX_AUTH_LINE = 255


class Action(enum.Enum):
    """What the connection handler must do after sending a reply."""

    CONTINUE = "continue"
    CLOSE = "close"
    START_TLS = "start_tls"
    # Read exactly `Reply.literal` bytes and hand them to the session's `literal` (IMAP).
    LITERAL = "literal"


@dataclass(frozen=True, slots=True)
class Reply:
    """Lines to send (without CRLF) and what to do next."""

    lines: tuple[str, ...]
    action: Action = Action.CONTINUE
    literal: int = 0

    def encode(self) -> bytes:
        """The bytes on the wire; each line is cut to the 512-byte POP3 limit."""
        return b"".join(
            line.encode("utf-8")[: MAX_RESPONSE_LINE - 2] + b"\r\n" for line in self.lines
        )


class Session:
    """One POP3 conversation (mostly before login). Subclasses provide the product's wording."""

    greeting_text = "+OK POP3 server ready."
    quit_text = "+OK Bye."
    stls_text = "+OK Begin TLS negotiation now."
    capa_header = "+OK Capability list follows"
    invalid_state_text = "-ERR Command not valid in this state."
    unknown_text = "-ERR Unknown command."
    logon_failed_text = "-ERR Authentication failed."
    logged_in_text = "+OK Logged in."
    # What AUTH's exchange ends with; most servers word it as they word PASS's verdict.
    auth_failed_text = logon_failed_text
    authenticated_text = logged_in_text
    after_login_text = "-ERR The lab serves no mail."
    no_user_text = "-ERR No username given."
    user_disallowed_text = "-ERR Plaintext authentication disallowed."
    unknown_mech_text = "-ERR Unsupported authentication mechanism."
    cancelled_text = "-ERR Authentication cancelled."
    too_many_errors_text = "-ERR Too many bad commands."
    line_too_long_text = "-ERR Command line too long."
    command_too_long_text = "-ERR Input line too long."
    # Longest command line taken (without CRLF); None leaves it to the handler's buffer cap.
    max_command_line: int | None = None
    max_errors = 10
    # Exchange refuses everything but PASS/QUIT between USER and PASS; Dovecot does not.
    user_locks_state = False

    def __init__(
        self, config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
    ) -> None:
        """Start a conversation; `tls` is True when it begins inside TLS (the POP3S port).
        Login attempts are recorded in `log` (a fresh one unless given)."""
        self.config = config
        self.tls = tls
        self.log = log if log is not None else ConnectionLog()
        self.user: str | None = None
        # The mechanism whose `+ ` challenge awaits the client's response; "" when none does.
        self.sasl_pending = ""
        self.logged_in = False
        self._commands: dict[str, Callable[[str], Reply]] = {
            "CAPA": self.cmd_capa,
            "USER": self.cmd_user,
            "PASS": self.cmd_pass,
            "AUTH": self.cmd_auth,
            "STLS": self.cmd_stls,
            "QUIT": self.cmd_quit,
        }

    # --- policy a profile may override -------------------------------------------------------

    def plaintext_allowed(self) -> bool:
        """Whether USER/PASS and SASL PLAIN are allowed in the current state."""
        return self.tls or self.config.plaintext_login

    def user_pass_allowed(self) -> bool:
        """Whether USER/PASS is (listed in CAPA and) allowed in the current state."""
        return self.plaintext_allowed() and not self.config.sasl_only

    def stls_offered(self) -> bool:
        """STLS is possible only before TLS, when enabled and a certificate is bound."""
        return not self.tls and self.config.stls and self.config.has_cert

    def sasl_mechanisms(self) -> list[str]:
        """SASL mechanisms usable right now (what CAPA's SASL line and AUTH accept)."""
        return ["PLAIN"] if self.plaintext_allowed() else []

    def capabilities(self) -> list[str]:
        """The CAPA lines after the header; profiles list theirs in their own order."""
        raise NotImplementedError

    def user_disallowed(self) -> Reply:
        """Reply to USER when plaintext login is not allowed."""
        return self.reject(self.user_disallowed_text)

    def unknown_command(self, verb: str) -> Reply:
        """Reply to a command this server does not know."""
        return self.reject(self.unknown_text)

    def too_many_errors(self, text: str) -> Reply:
        """The reply that replaces a rejection once the error budget is spent."""
        return Reply((self.too_many_errors_text,), Action.CLOSE)

    def command_too_long(self) -> Reply:
        """Reply to a command line over the limit (or over the handler's buffer): hang up."""
        return Reply((self.command_too_long_text,), Action.CLOSE)

    def idle_timeout(self) -> Reply | None:
        """What to say when the client has been idle too long; None hangs up silently."""
        return None

    def login_failed(self, text: str) -> Reply:
        """Reply to a failed password check (or a cancelled AUTH exchange)."""
        return Reply((text,))

    # --- the state machine ------------------------------------------------------------------

    def greeting(self) -> Reply:
        """The first line, sent on connect (or after the POP3S handshake)."""
        if self.config.banner is not None:
            return Reply((f"+OK {self.config.banner}",))
        return Reply((self.greeting_text,))

    def handle(self, line: bytes) -> Reply:
        """Answer one client line (CRLF already stripped)."""
        if self.max_command_line is not None and len(line) > self.max_command_line:
            return self.command_too_long()
        text = line.decode("latin-1").strip()
        if self.sasl_pending:
            return self.sasl_response(text)
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if self.logged_in:
            return self.after_login(verb)
        if self.user_locks_state and self.user is not None and verb not in ("PASS", "QUIT"):
            self.user = None
            return self.reject(self.invalid_state_text)
        command = self._commands.get(verb)
        if command is None:
            return self.unknown_command(verb)
        return command(arg.strip())

    def tls_started(self) -> None:
        """Forget everything learnt before the handshake, as RFC 2595 requires."""
        self.tls = True
        self.user = None
        self.sasl_pending = ""

    @property
    def errors(self) -> int:
        """Rejected commands so far; the connection's log keeps the count for tests to read."""
        return self.log.rejected_commands

    def reject(self, text: str) -> Reply:
        """Send an -ERR that counts against the per-connection error budget."""
        self.log.rejected_commands += 1
        if self.errors > self.max_errors:
            return self.too_many_errors(text)
        return Reply((text,))

    # --- commands ---------------------------------------------------------------------------

    def cmd_capa(self, arg: str) -> Reply:
        """CAPA: header, one capability per line, then the terminating dot."""
        return Reply((self.capa_header, *self.capabilities(), "."))

    def cmd_user(self, arg: str) -> Reply:
        """USER: +OK only where a cleartext password would be taken (or the profile lies)."""
        if self.config.sasl_only:
            return self.unknown_command("USER")
        if not arg:
            return self.reject(self.invalid_state_text)
        if not self.plaintext_allowed():
            return self.user_disallowed()
        self.user = arg
        return Reply(("+OK",))

    def cmd_pass(self, arg: str) -> Reply:
        """PASS: logs an account of the config in with its own password, refuses the rest."""
        if self.user is None:
            if not self.plaintext_allowed():
                return self.user_disallowed()
            return self.reject(self.no_user_text)
        user, self.user = self.user, None
        if not self.plaintext_allowed():
            return Reply((self.user_disallowed_text,))
        # Lines are decoded as Latin-1 (any byte goes); the config holds text, sent as UTF-8.
        return self.log_in(_utf8(user), _utf8(arg), "USER/PASS")

    def cmd_auth(self, arg: str) -> Reply:
        """AUTH: bare lists mechanisms; a usable one takes its response at once (RFC 5034's
        initial response) or after a `+ ` challenge."""
        mechanisms = self.sasl_mechanisms()
        if not arg:
            return Reply(("+OK", *mechanisms, "."))
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in mechanisms:
            return self.auth_refused(mechanism)
        if initial and len(f"AUTH {arg}") > MAX_AUTH_LINE:
            # RFC 5034 §4: such a client must wait for the challenge instead; the lab insists.
            return self.reject(self.line_too_long_text)
        if initial:
            return self.sasl_answer(mechanism, initial)
        self.sasl_pending = mechanism
        return Reply(("+ ",))

    def auth_refused(self, mechanism: str) -> Reply:
        """Reply to AUTH with a mechanism that is unknown or not allowed in this state."""
        return self.reject(self.unknown_mech_text)

    def sasl_response(self, text: str) -> Reply:
        """The client's answer to our `+ `: `*` cancels, anything else is its response."""
        mechanism, self.sasl_pending = self.sasl_pending, ""
        if text == "*":
            return self.login_failed(self.cancelled_text)
        return self.sasl_answer(mechanism, text)

    def sasl_answer(self, mechanism: str, response: str) -> Reply:
        """PLAIN's response (RFC 4616: authzid NUL user NUL password, base64) logs in an
        account; every other mechanism fails, since the lab runs no LOGIN, NTLM or GSSAPI."""
        if mechanism != "PLAIN":
            return self.login_failed(self.auth_failed_text)
        try:
            _authzid, user, password = (
                base64.b64decode(response, validate=True).decode().split("\0")
            )
        except ValueError:  # not base64, not UTF-8, or not three fields
            return self.login_failed(self.auth_failed_text)
        return self.log_in(user, password, "AUTH PLAIN")

    def log_in(self, user: str, password: str, mechanism: str) -> Reply:
        """Check the password of `user` against the config's accounts; record the attempt."""
        accepted = self.config.password_of(user) == password
        self.log.logins.append(LoginAttempt(user, mechanism, self.tls, accepted))
        by_pass = mechanism == "USER/PASS"
        if not accepted:
            return self.login_failed(self.logon_failed_text if by_pass else self.auth_failed_text)
        self.logged_in = True
        return Reply((self.logged_in_text if by_pass else self.authenticated_text,))

    def after_login(self, verb: str) -> Reply:
        """The TRANSACTION state of an empty lab mailbox: QUIT signs off, the rest is refused.
        Every command is recorded, so tests can see that a client sent nothing but QUIT."""
        self.log.commands_after_login.append(verb)
        if verb == "QUIT":
            return self.cmd_quit("")
        return Reply((self.after_login_text,))

    def cmd_stls(self, arg: str) -> Reply:
        """STLS: agree and hand over to TLS, or refuse when TLS is not possible here."""
        if not self.stls_offered():
            return self.reject(self.invalid_state_text)
        return Reply((self.stls_text,), Action.START_TLS)

    def cmd_quit(self, arg: str) -> Reply:
        """QUIT: sign off and close."""
        return Reply((self.quit_text,), Action.CLOSE)


def _utf8(text: str) -> str:
    """A line decoded as Latin-1, read again as the UTF-8 a client sends."""
    return text.encode("latin-1").decode("utf-8", errors="replace")
