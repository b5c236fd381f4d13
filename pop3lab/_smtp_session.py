"""SMTP submission before authentication, shared by every profile, free of I/O.

An `SmtpSession` turns one command line into one `Reply` (multi-line replies are whole
`250-`/`250 ` lines). It covers what a scanner and a login test need: the greeting, EHLO and its
AUTH and STARTTLS lines, STARTTLS, AUTH with PLAIN, LOGIN and NTLM (RFC 4954, `*` cancels),
and QUIT. The lab takes no mail: MAIL is refused, before and after authentication.

What the endpoint offers follows its receive connector's AuthMechanism
(`EndpointConfig.submission_auth`): `Tls` offers STARTTLS (with a certificate bound),
`BasicAuth` takes passwords, before TLS only without `BasicAuthRequireTLS`, and `Integrated`
offers NTLM and GSSAPI (Exchange only).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from pop3lab._session import Action, Reply
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog, LoginAttempt
from pop3lab.ntlm import NtlmServer

# RFC 4954's base64 prompts for AUTH LOGIN: "Username:" and "Password:".
USERNAME_PROMPT = "334 VXNlcm5hbWU6"
PASSWORD_PROMPT = "334 UGFzc3dvcmQ6"


def multiline(code: int, lines: list[str]) -> Reply:
    """`code-` on every line but the last, `code ` on the last (RFC 5321 4.2.1)."""
    last = len(lines) - 1
    return Reply(tuple(f"{code}{'-' if i < last else ' '}{line}" for i, line in enumerate(lines)))


class SmtpSession:
    """One submission conversation. Subclasses word the replies and list the extensions."""

    ready_for_tls_text = "220 2.0.0 Ready to start TLS"
    quit_text = "221 2.0.0 Bye"
    need_hello_text = "503 5.5.1 Error: send HELO/EHLO first"
    already_authenticated_text = "503 5.5.1 Error: already authenticated"
    unknown_text = "502 5.5.2 Error: command not recognized"
    bad_arguments_text = "501 5.5.4 Syntax error in parameters"
    ehlo_domain_text = "501 5.5.4 Syntax: EHLO hostname"
    unknown_mechanism_text = "504 5.5.4 Unsupported authentication mechanism"
    cancelled_text = "501 5.0.0 Authentication aborted"
    auth_failed_text = "535 5.7.8 Authentication credentials invalid"
    auth_ok_text = "235 2.7.0 Authentication successful"
    not_authenticated_text = "530 5.7.0 Authentication required"
    no_mail_text = "550 5.7.1 The lab accepts no mail."
    too_many_errors_text = "421 4.7.0 Too many errors, closing connection"
    command_too_long_text = "500 5.5.2 Line too long"
    starttls_unavailable_text = "454 4.7.0 TLS not available"
    max_errors = 10

    def __init__(
        self, config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
    ) -> None:
        """Start a conversation; `tls` when it begins inside TLS (port 465)."""
        self.config = config
        self.tls = tls
        self.log = log if log is not None else ConnectionLog("submission")
        self.hostname = config.ntlm_names.dns_computer
        self.greeted = False
        self.authenticated = False
        # The mechanism whose 334 awaits the client's next line; "" when none does.
        self._sasl = ""
        self._login_user: str | None = None
        self.ntlm: NtlmServer | None = None
        self._commands: dict[str, Callable[[str], Reply]] = {
            "EHLO": self.cmd_ehlo,
            "HELO": self.cmd_helo,
            "STARTTLS": self.cmd_starttls,
            "AUTH": self.cmd_auth,
            "MAIL": self.cmd_mail,
            "RSET": lambda arg: Reply(("250 2.0.0 OK",)),
            "NOOP": lambda arg: Reply(("250 2.0.0 OK",)),
            "QUIT": lambda arg: Reply((self.quit_text,), Action.CLOSE),
        }

    # --- what a profile provides ------------------------------------------------------------

    def greeting(self) -> Reply:
        """The 220 line sent on connect (or after the handshake on 465)."""
        return Reply((f"220 {self.hostname} ESMTP",))

    def extensions(self) -> list[str]:
        """The EHLO lines after the first, in the profile's order."""
        raise NotImplementedError

    def mechanisms(self) -> list[str]:
        """The SASL mechanisms usable now, as EHLO's AUTH line lists them."""
        return ["PLAIN", "LOGIN"] if self.basic_allowed() else []

    def auth_refused(self, mechanism: str) -> Reply:
        """Reply to AUTH with a mechanism that is not usable now."""
        return self.reject(self.unknown_mechanism_text)

    def idle_timeout(self) -> Reply | None:
        """What to say to a client idle too long."""
        return Reply(("421 4.4.2 Timeout exceeded",), Action.CLOSE)

    def command_too_long(self) -> Reply:
        """Reply to a line over the handler's limit: the stream is lost, so hang up."""
        return Reply((self.command_too_long_text,), Action.CLOSE)

    # --- policy from the connector's AuthMechanism --------------------------------------------

    def basic_allowed(self) -> bool:
        """Whether a password (PLAIN, LOGIN) would be taken now."""
        auth = self.config.submission_auth
        return "BasicAuth" in auth and (self.tls or "BasicAuthRequireTLS" not in auth)

    def starttls_offered(self) -> bool:
        """STARTTLS needs `Tls` in AuthMechanism, a certificate, and no TLS yet."""
        return not self.tls and self.config.has_cert and "Tls" in self.config.submission_auth

    # --- the state machine --------------------------------------------------------------------

    def handle(self, line: bytes) -> Reply:
        """Answer one line (CRLF stripped)."""
        text = line.decode("latin-1").strip()
        if self._sasl:
            return self.sasl_response(text)
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if self.authenticated and verb not in ("EHLO", "HELO", "NOOP", "RSET", "QUIT"):
            self.log.commands_after_login.append(verb)
        command = self._commands.get(verb)
        if command is None:
            return self.reject(self.unknown_text)
        return command(arg.strip())

    def tls_started(self) -> None:
        """RFC 3207 4.2: forget everything, the client must say EHLO again."""
        self.tls = True
        self.greeted = False
        self._sasl = ""

    @property
    def errors(self) -> int:
        """Commands held against the client so far (kept in the connection's log)."""
        return self.log.rejected_commands

    def reject(self, text: str) -> Reply:
        """An error reply that counts; past the limit the connection is closed instead."""
        self.log.rejected_commands += 1
        if self.errors > self.max_errors:
            return Reply((self.too_many_errors_text,), Action.CLOSE)
        return Reply((text,))

    # --- commands -----------------------------------------------------------------------------

    def cmd_ehlo(self, arg: str) -> Reply:
        """EHLO: the greeting line, then the extensions usable in this state."""
        if not arg:
            return self.reject(self.ehlo_domain_text)
        self.greeted = True
        return multiline(250, [self.ehlo_first_line(), *self.extensions()])

    def ehlo_first_line(self) -> str:
        """The first EHLO line (the server's name)."""
        return self.hostname

    def cmd_helo(self, arg: str) -> Reply:
        """HELO: plain SMTP, no extensions."""
        if not arg:
            return self.reject(self.ehlo_domain_text)
        self.greeted = True
        return Reply((f"250 {self.ehlo_first_line()}",))

    def cmd_starttls(self, arg: str) -> Reply:
        """STARTTLS where offered; the client must EHLO again afterwards."""
        if not self.starttls_offered():
            return self.reject(self.starttls_unavailable_text)
        return Reply((self.ready_for_tls_text,), Action.START_TLS)

    def cmd_mail(self, arg: str) -> Reply:
        """The lab takes no mail: unauthenticated senders are told to log in first."""
        if not self.authenticated:
            return self.reject(self.not_authenticated_text)
        return Reply((self.no_mail_text,))

    def cmd_auth(self, arg: str) -> Reply:
        """AUTH mechanism [initial-response]: a usable mechanism starts its exchange."""
        if not self.greeted:
            return self.reject(self.need_hello_text)
        if self.authenticated:
            return self.reject(self.already_authenticated_text)
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if not mechanism:
            return self.reject(self.bad_arguments_text)
        if mechanism not in self.mechanisms():
            return self.auth_refused(mechanism)
        if mechanism == "NTLM":
            self.ntlm = NtlmServer(self.config.ntlm_names, self.config.ntlm_version)
        if initial and initial != "=":
            return self.sasl_answer(mechanism, initial)
        self._sasl = mechanism
        return Reply((USERNAME_PROMPT if mechanism == "LOGIN" else "334 ",))

    def sasl_response(self, text: str) -> Reply:
        """The client's answer to our 334: `*` cancels, anything else is its response."""
        mechanism, self._sasl = self._sasl, ""
        if text == "*":
            self._login_user = None
            return Reply((self.cancelled_text,))
        return self.sasl_answer(mechanism, text)

    def sasl_answer(self, mechanism: str, response: str) -> Reply:
        """One response: PLAIN's triple, LOGIN's user then password, NTLM's NEGOTIATE."""
        if mechanism == "NTLM" and self.ntlm is not None:
            challenge = self.ntlm.step(response)
            if challenge is not None:
                self._sasl = mechanism
                return Reply((f"334 {challenge}",))
        try:
            decoded = base64.b64decode(response, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return Reply((self.auth_failed_text,))
        if mechanism == "LOGIN" and self._login_user is None:
            self._login_user, self._sasl = decoded, mechanism
            return Reply((PASSWORD_PROMPT,))
        if mechanism == "LOGIN":
            user, self._login_user = self._login_user, None
            return self.log_in(user, decoded, "AUTH LOGIN")
        if mechanism == "PLAIN" and decoded.count("\0") == 2:
            _authzid, user, password = decoded.split("\0")
            return self.log_in(user, password, "AUTH PLAIN")
        return Reply((self.auth_failed_text,))

    def log_in(self, user: str | None, password: str, mechanism: str) -> Reply:
        """Check the password of `user`; record the attempt."""
        accepted = user is not None and self.config.password_of(user) == password
        self.log.logins.append(LoginAttempt(user or "", mechanism, self.tls, accepted))
        if not accepted:
            return Reply((self.auth_failed_text,))
        self.authenticated = True
        return Reply((self.auth_ok_text,))
