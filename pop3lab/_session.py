"""The POP3 AUTHORIZATION-state machine shared by every profile, free of I/O.

A `Session` turns one command line into one `Reply`; the server module does the reading and
writing. Keeping the state machine pure makes each server quirk a one-line test and keeps the
per-connection cost to a dict lookup and a string join. Profiles subclass it and override the
texts (class attributes) and the few policy methods.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from pop3lab.config import EndpointConfig

# RFC 1939 caps responses at 512 octets including CRLF; Exchange honours it.
MAX_RESPONSE_LINE = 512


class Action(enum.Enum):
    """What the connection handler must do after sending a reply."""

    CONTINUE = "continue"
    CLOSE = "close"
    START_TLS = "start_tls"


@dataclass(frozen=True, slots=True)
class Reply:
    """Lines to send (without CRLF) and what to do next."""

    lines: tuple[str, ...]
    action: Action = Action.CONTINUE

    def encode(self) -> bytes:
        """The bytes on the wire; each line is cut to the 512-byte POP3 limit."""
        return b"".join(
            line.encode("utf-8")[: MAX_RESPONSE_LINE - 2] + b"\r\n" for line in self.lines
        )


class Session:
    """One POP3 conversation before login. Subclasses provide the product's wording."""

    greeting_text = "+OK POP3 server ready."
    quit_text = "+OK Bye."
    stls_text = "+OK Begin TLS negotiation now."
    capa_header = "+OK Capability list follows"
    invalid_state_text = "-ERR Command not valid in this state."
    unknown_text = "-ERR Unknown command."
    logon_failed_text = "-ERR Authentication failed."
    no_user_text = "-ERR No username given."
    user_disallowed_text = "-ERR Plaintext authentication disallowed."
    unknown_mech_text = "-ERR Unsupported authentication mechanism."
    cancelled_text = "-ERR Authentication cancelled."
    too_many_errors_text = "-ERR Too many bad commands."
    max_errors = 10
    # Exchange refuses everything but PASS/QUIT between USER and PASS; Dovecot does not.
    user_locks_state = False

    def __init__(self, config: EndpointConfig, *, tls: bool = False) -> None:
        """Start a conversation; `tls` is True when it begins inside TLS (the POP3S port)."""
        self.config = config
        self.tls = tls
        self.errors = 0
        self.user_given = False
        self.sasl_pending = False
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

    # --- the state machine ------------------------------------------------------------------

    def greeting(self) -> Reply:
        """The first line, sent on connect (or after the POP3S handshake)."""
        if self.config.banner is not None:
            return Reply((f"+OK {self.config.banner}",))
        return Reply((self.greeting_text,))

    def handle(self, line: bytes) -> Reply:
        """Answer one client line (CRLF already stripped)."""
        text = line.decode("latin-1").strip()
        if self.sasl_pending:
            return self.sasl_response(text)
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if self.user_locks_state and self.user_given and verb not in ("PASS", "QUIT"):
            self.user_given = False
            return self.reject(self.invalid_state_text)
        command = self._commands.get(verb)
        if command is None:
            return self.unknown_command(verb)
        return command(arg.strip())

    def tls_started(self) -> None:
        """Forget everything learnt before the handshake, as RFC 2595 requires."""
        self.tls = True
        self.user_given = False
        self.sasl_pending = False

    def reject(self, text: str) -> Reply:
        """Send an -ERR that counts against the per-connection error budget."""
        self.errors += 1
        if self.errors > self.max_errors:
            return self.too_many_errors(text)
        return Reply((text,))

    # --- commands ---------------------------------------------------------------------------

    def cmd_capa(self, arg: str) -> Reply:
        """CAPA: header, one capability per line, then the terminating dot."""
        return Reply((self.capa_header, *self.capabilities(), "."))

    def cmd_user(self, arg: str) -> Reply:
        """USER: +OK only where a cleartext password would be taken (or the profile lies)."""
        if not arg:
            return self.reject(self.invalid_state_text)
        if not self.plaintext_allowed():
            return self.user_disallowed()
        self.user_given = True
        return Reply(("+OK",))

    def cmd_pass(self, arg: str) -> Reply:
        """PASS never succeeds: the lab holds no mailboxes and scanners send no passwords."""
        if not self.user_given:
            if not self.plaintext_allowed():
                return self.user_disallowed()
            return self.reject(self.no_user_text)
        self.user_given = False
        if not self.plaintext_allowed():
            return Reply((self.user_disallowed_text,))
        return Reply((self.logon_failed_text,))

    def cmd_auth(self, arg: str) -> Reply:
        """AUTH: bare lists mechanisms; a usable one gets a `+ ` challenge that always fails."""
        mechanisms = self.sasl_mechanisms()
        if not arg:
            return Reply(("+OK", *mechanisms, "."))
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() not in mechanisms:
            return self.auth_refused(mechanism.upper())
        if initial:
            return Reply((self.logon_failed_text,))
        self.sasl_pending = True
        return Reply(("+ ",))

    def auth_refused(self, mechanism: str) -> Reply:
        """Reply to AUTH with a mechanism that is unknown or not allowed in this state."""
        return self.reject(self.unknown_mech_text)

    def sasl_response(self, text: str) -> Reply:
        """The client's answer to our `+ `: `*` cancels, anything else fails to log on."""
        self.sasl_pending = False
        if text == "*":
            return Reply((self.cancelled_text,))
        return Reply((self.logon_failed_text,))

    def cmd_stls(self, arg: str) -> Reply:
        """STLS: agree and hand over to TLS, or refuse when TLS is not possible here."""
        if not self.stls_offered():
            return self.reject(self.invalid_state_text)
        return Reply((self.stls_text,), Action.START_TLS)

    def cmd_quit(self, arg: str) -> Reply:
        """QUIT: sign off and close."""
        return Reply((self.quit_text,), Action.CLOSE)
