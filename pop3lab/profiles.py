"""Product profiles: how Exchange, a Dovecot-like server and a generic server word things.

Exchange reproduces what Exchange 2010-2019 answer (the CAPA table, replies, the
two-rejections rule). The Dovecot-like and generic profiles are plausible, not exact: they
exist so the scanner meets servers that phrase the same facts differently.
"""

from __future__ import annotations

from pop3lab._session import Action, Reply, Session
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog
from pop3lab.ntlm import NtlmServer


class ExchangeSession(Session):
    """Microsoft Exchange Client Access POP3 (2010 to 2019) before login.

    Exchange checks each command's state first, then its arguments, then processes it. One
    counter per connection holds invalid-state replies, argument errors and unknown verbs
    against the client; the third hangs up. Failed logins have their own limit.
    """

    greeting_text = "+OK The Microsoft Exchange POP3 service is ready."
    stls_text = "+OK Begin TLS negotiation."
    capa_header = "+OK"
    invalid_state_text = "-ERR Command is not valid in this state."
    unknown_text = "-ERR Protocol error. 19"
    last_unknown_text = "-ERR Protocol error. 20"
    # Exchange's two argument errors: a value it does not know, a wrong number of arguments.
    bad_argument_text = "-ERR Protocol error. 14"
    wrong_arguments_text = "-ERR Protocol error. 16"
    # The second line of a reply after which Exchange hangs up.
    closing_line = "Connection is closed. 21"
    idle_text = "-ERR Connection is closed. 12"
    command_too_long_text = "-ERR Protocol error. Connection is closed. 10"
    max_command_line = 512
    logon_failed_text = "-ERR Logon failure: unknown user name or bad password."
    logged_in_text = "+OK User successfully logged on."
    auth_failed_text = "-ERR Authentication failure: unknown user name or bad password."
    authenticated_text = "+OK User successfully authenticated."
    no_user_text = invalid_state_text
    user_disallowed_text = invalid_state_text
    unknown_mech_text = bad_argument_text
    cancelled_text = "-ERR The AUTH protocol exchange was canceled by the client."
    max_errors = 2
    # MaxFailedLoginAttempts (Set-PopSettings), whose default lets the fourth failure hang up.
    max_failed_logins = 4
    user_locks_state = True
    # The mechanisms Exchange knows; NTLM and GSSAPI only while EnableGSSAPIAndNTLMAuth is on.
    known_mechanisms = ("PLAIN", "NTLM", "GSSAPI")

    def __init__(
        self, config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
    ) -> None:
        """Exchange signs off with its product year, taken from the profile name."""
        super().__init__(config, tls=tls, log=log)
        year = config.profile.removeprefix("exchange")
        self.quit_text = f"+OK Microsoft Exchange Server {year} POP3 server signing off."
        self.failed_logins = 0
        self.ntlm: NtlmServer | None = None

    def sasl_mechanisms(self) -> list[str]:
        """NTLM/GSSAPI unless SecureLogin before TLS; PLAIN only where passwords may flow."""
        mechanisms = []
        if self.config.ntlm and (self.tls or self.config.login_type != "SecureLogin"):
            mechanisms += ["NTLM", "GSSAPI"]
        if self.plaintext_allowed():
            mechanisms.append("PLAIN")
        return mechanisms

    def capabilities(self) -> list[str]:
        """Exchange's CAPA list: TOP, UIDL, then SASL, USER, STLS as applicable."""
        lines = ["TOP", "UIDL"]
        mechanisms = self.sasl_mechanisms()
        if mechanisms:
            lines.append("SASL " + " ".join(mechanisms))
        if self.user_pass_allowed():
            lines.append("USER")
        if self.stls_offered():
            lines.append("STLS")
        return lines

    def unknown_command(self, verb: str) -> Reply:
        """An unknown verb counts too; the third says so with its own code, on one line."""
        self.log.rejected_commands += 1
        if self.errors > self.max_errors:
            return Reply((self.last_unknown_text,), Action.CLOSE)
        return Reply((self.unknown_text,))

    def too_many_errors(self, text: str) -> Reply:
        """The third rejection is answered as usual, then a closing line, then the hang-up."""
        return Reply((text, self.closing_line), Action.CLOSE)

    def idle_timeout(self) -> Reply:
        """Exchange says why before it drops an idle client."""
        return Reply((self.idle_text,), Action.CLOSE)

    def login_failed(self, text: str) -> Reply:
        """A failed or cancelled login; the last one allowed adds the closing line."""
        self.failed_logins += 1
        if self.failed_logins >= self.max_failed_logins:
            return Reply((text, self.closing_line), Action.CLOSE)
        return Reply((text,))

    def cmd_user(self, arg: str) -> Reply:
        """USER: the state decides first (invalid-state), then a missing name (error 16)."""
        if not self.plaintext_allowed():
            return self.user_disallowed()
        if not arg:
            return self.reject(self.wrong_arguments_text)
        return super().cmd_user(arg)

    def auth_allowed(self) -> bool:
        """Whether AUTH is a valid command here: inside TLS, under PlainTextLogin, or under
        PlainTextAuthentication while NTLM is on (so that NTLM can run in the clear)."""
        if self.tls or self.config.login_type == "PlainTextLogin":
            return True
        return self.config.ntlm and self.config.login_type == "PlainTextAuthentication"

    def cmd_auth(self, arg: str) -> Reply:
        """AUTH where it is invalid counts; a mechanism Exchange does not know (LOGIN
        included) or has switched off is error 14, and PLAIN before TLS under
        PlainTextAuthentication is refused; neither of those two counts."""
        if not self.auth_allowed():
            return self.reject(self.invalid_state_text)
        mechanism = arg.partition(" ")[0].upper()
        if not mechanism:
            return super().cmd_auth(arg)
        if mechanism not in self.known_mechanisms or (
            mechanism != "PLAIN" and not self.config.ntlm
        ):
            return Reply((self.bad_argument_text,))
        if mechanism == "PLAIN" and not self.plaintext_allowed():
            return Reply((self.invalid_state_text,))
        if mechanism == "NTLM":
            self.ntlm = NtlmServer(self.config.ntlm_names, self.config.ntlm_version)
        return super().cmd_auth(arg)

    def sasl_answer(self, mechanism: str, response: str) -> Reply:
        """NTLM's NEGOTIATE earns a `+ <CHALLENGE>`; what follows it fails as usual."""
        if mechanism == "NTLM" and self.ntlm is not None:
            challenge = self.ntlm.step(response)
            if challenge is not None:
                self.sasl_pending = mechanism
                return Reply((f"+ {challenge}",))
        return super().sasl_answer(mechanism, response)


class DovecotSession(Session):
    """A Dovecot pop3-login with `disable_plaintext_auth = yes` unless PlainTextLogin."""

    greeting_text = "+OK Dovecot ready."
    quit_text = "+OK Logging out."
    capa_header = "+OK"
    unknown_text = "-ERR Unknown command."
    invalid_state_text = "-ERR Unknown command."
    logon_failed_text = "-ERR [AUTH] Authentication failed."
    user_disallowed_text = (
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    )
    cancelled_text = "-ERR Authentication aborted by client."

    def capabilities(self) -> list[str]:
        """Dovecot always sends a SASL line, bare when no mechanism is usable."""
        lines = ["CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"]
        if self.stls_offered():
            lines.append("STLS")
        if self.user_pass_allowed():
            lines.append("USER")
        lines.append(" ".join(["SASL", *self.sasl_mechanisms()]))
        return lines

    def user_disallowed(self) -> Reply:
        """Dovecot refuses with a reason and does not count it as a bad command."""
        return Reply((self.user_disallowed_text,))

    def auth_refused(self, mechanism: str) -> Reply:
        """PLAIN before TLS gets the same [AUTH] reason as USER."""
        if mechanism == "PLAIN" and not self.plaintext_allowed():
            return Reply((self.user_disallowed_text,))
        return Reply((self.unknown_mech_text,))

    def cmd_stls(self, arg: str) -> Reply:
        """Dovecot explains why STLS cannot happen instead of a generic error."""
        if self.tls:
            return Reply(("-ERR TLS is already active.",))
        if not self.stls_offered():
            return Reply(("-ERR TLS support isn't enabled.",))
        return super().cmd_stls(arg)


class GenericSession(Session):
    """An unnamed POP3 server; optionally one that says +OK to USER and refuses at PASS."""

    user_disallowed_text = "-ERR Plaintext authentication not allowed without TLS."

    def sasl_mechanisms(self) -> list[str]:
        """PLAIN and LOGIN where cleartext passwords are allowed, nothing otherwise."""
        return ["PLAIN", "LOGIN"] if self.plaintext_allowed() else []

    def capabilities(self) -> list[str]:
        """RFC 2449 style; USER is listed only when it would work, as the RFC asks."""
        lines = ["TOP", "UIDL", "RESP-CODES"]
        if self.user_pass_allowed():
            lines.append("USER")
        mechanisms = self.sasl_mechanisms()
        if mechanisms:
            lines.append("SASL " + " ".join(mechanisms))
        if self.stls_offered():
            lines.append("STLS")
        return lines

    def cmd_user(self, arg: str) -> Reply:
        """The lenient variant accepts USER and refuses only at PASS, as some servers do."""
        if arg and self.config.generic_accepts_user_rejects_pass:
            self.user = arg
            return Reply(("+OK",))
        return super().cmd_user(arg)


def make_session(
    config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
) -> Session:
    """A fresh session for the endpoint's profile; `tls` when it starts inside TLS; login
    attempts go to `log`."""
    if config.is_exchange:
        return ExchangeSession(config, tls=tls, log=log)
    if config.profile == "dovecot_like":
        return DovecotSession(config, tls=tls, log=log)
    return GenericSession(config, tls=tls, log=log)
