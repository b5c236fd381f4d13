"""IMAP4 profiles: Exchange's Client Access IMAP4 service, and a Dovecot-like imap-login.

Exchange's texts, counters and CAPABILITY order are those of Exchange 2013's IMAP4 code (the
later releases keep them, the LOGOUT line names the release year). The Dovecot-like profile is
plausible rather than exact, so that the scanner meets the same facts worded differently; the
generic POP3 profile gets it too.
"""

from __future__ import annotations

from pop3lab._imap_session import PRE_LOGIN, ImapSession
from pop3lab._session import Action, Reply
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog


class ExchangeImapSession(ImapSession):
    """Microsoft Exchange IMAP4 (2010 to 2019) before login.

    Each command's state is checked before its arguments are read (so before any literal is
    asked for), then its arguments, then it runs. One counter per connection holds
    invalid-state and argument errors and unknown verbs against the client; the third adds
    `* BYE Connection closed. 14` and hangs up. Failed and cancelled logins have their own
    limit (MaxFailedLoginAttempts), whose last one adds `* BYE Connection is closed. 14`.
    """

    greeting_text = "* OK The Microsoft Exchange IMAP4 service is ready."
    invalid_state_text = "BAD Command received in Invalid state."
    unknown_text = "BAD Command Error. 12"
    bad_argument_text = "BAD Command Argument Error. 11"
    wrong_arguments_text = "BAD Command Argument Error. 12"
    too_many_errors_line = "* BYE Connection closed. 14"
    last_login_line = "* BYE Connection is closed. 14"
    idle_text = "* BYE Connection is closed. 13"
    cancelled_text = "NO The AUTH protocol exchange was canceled by the client."
    max_errors = 2
    max_failed_logins = 4
    # The mechanisms Exchange knows; NTLM and GSSAPI only while EnableGSSAPIAndNTLMAuth is on.
    known_mechanisms = ("PLAIN", "NTLM", "GSSAPI")

    def __init__(
        self, config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
    ) -> None:
        """Exchange signs off with its product year, taken from the profile name."""
        super().__init__(config, tls=tls, log=log)
        year = config.profile.removeprefix("exchange")
        self.logout_text = f"* BYE Microsoft Exchange Server {year} IMAP4 server signing off."

    def capabilities(self) -> list[str]:
        """Exchange's list: what LoginType allows in this state, then a fixed tail."""
        ntlm = ["AUTH=NTLM", "AUTH=GSSAPI"] if self.config.imap_ntlm else []
        starttls = ["STARTTLS"] if self.starttls_offered() else []
        login_type = self.config.imap_login_type
        if login_type == "PlainTextLogin":
            middle = ["AUTH=PLAIN", *ntlm, *starttls]
        elif self.tls:
            middle = ["AUTH=PLAIN", *ntlm]
        elif login_type == "PlainTextAuthentication":
            middle = ["LOGINDISABLED", *starttls, *ntlm]
        else:
            middle = ["LOGINDISABLED", *starttls]
        tail = ["UIDPLUS", "MOVE", "ID", "CHILDREN", "IDLE", "NAMESPACE", "LITERAL+"]
        return ["IMAP4", "IMAP4rev1", *middle, *tail]

    def authenticate_allowed(self) -> bool:
        """AUTHENTICATE is valid inside TLS, under PlainTextLogin, or under
        PlainTextAuthentication while NTLM is on (so that NTLM can run in the clear)."""
        if self.tls or self.config.imap_login_type == "PlainTextLogin":
            return True
        return bool(self.config.imap_ntlm) and (
            self.config.imap_login_type == "PlainTextAuthentication"
        )

    def refusal(self, tag: str, verb: str) -> Reply | None:
        """Unknown verbs, and known ones in the wrong state, count against the client."""
        if self.logged_in:
            return None
        if verb not in PRE_LOGIN:
            known_later = verb in _MAILBOX_COMMANDS
            return self.count(tag, self.invalid_state_text if known_later else self.unknown_text)
        allowed = {
            "LOGIN": self.plaintext_allowed(),
            "AUTHENTICATE": self.authenticate_allowed(),
            "STARTTLS": self.starttls_offered(),
        }
        if not allowed.get(verb, True):
            return self.count(tag, self.invalid_state_text)
        return None

    def count(self, tag: str, text: str) -> Reply:
        """A BAD that counts; the third adds the BYE line and hangs up."""
        self.log.rejected_commands += 1
        if self.errors > self.max_errors:
            return Reply((f"{tag} {text}", self.too_many_errors_line), Action.CLOSE)
        return Reply((f"{tag} {text}",))

    def untagged_bad(self) -> Reply:
        """A line without a tag or verb is an invalid command answered untagged."""
        return self.count("*", self.unknown_text)

    def bad_arguments(self, tag: str) -> Reply:
        """Too few or too many arguments (or an unparsable one) count too."""
        return self.count(tag, self.wrong_arguments_text)

    def idle_timeout(self) -> Reply:
        """Exchange says why before it drops an idle client."""
        return Reply((self.idle_text,), Action.CLOSE)

    def login_failed(self, tag: str, text: str) -> Reply:
        """A failed or cancelled login; the last one allowed adds the BYE line."""
        self.failed_logins += 1
        if self.failed_logins >= self.max_failed_logins:
            return Reply((f"{tag} {text}", self.last_login_line), Action.CLOSE)
        return Reply((f"{tag} {text}",))

    def cmd_logout(self, tag: str, args: list[str]) -> Reply:
        """LOGOUT names the Exchange release."""
        return Reply((self.logout_text, f"{tag} OK LOGOUT completed."), Action.CLOSE)

    def cmd_authenticate(self, tag: str, args: list[str]) -> Reply:
        """Exactly one argument (Exchange offers no SASL-IR); an unknown or switched-off
        mechanism is an argument error and PLAIN before TLS under PlainTextAuthentication an
        invalid state, and neither of those two counts."""
        if len(args) != 1:
            return self.bad_arguments(tag)
        mechanism = args[0].upper()
        if mechanism not in self.known_mechanisms or (
            mechanism != "PLAIN" and not self.config.imap_ntlm
        ):
            return Reply((f"{tag} {self.bad_argument_text}",))
        if mechanism == "PLAIN" and not self.plaintext_allowed():
            return Reply((f"{tag} {self.invalid_state_text}",))
        return self.start_sasl(tag, mechanism, None)


class DovecotImapSession(ImapSession):
    """A Dovecot imap-login with `disable_plaintext_auth = yes` unless PlainTextLogin.

    Dovecot reads a whole command (asking for literals with `+ OK`) before it judges it, so a
    LOGIN before TLS does carry its password, which the reply then reproaches.
    """

    continue_literal_text = "+ OK"
    unknown_text = "BAD Error in IMAP command received by server."
    privacy_text = (
        "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
        "connections."
    )
    alert_line = (
        "* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client "
        "did it anyway. If anyone was listening, the password was exposed."
    )
    login_failed_text = "NO [AUTHENTICATIONFAILED] Authentication failed."
    authenticate_failed_text = login_failed_text
    cancelled_text = "BAD Authentication aborted by client."
    max_errors = 10

    def capabilities(self) -> list[str]:
        """Dovecot's pre-login list: LOGINDISABLED, or AUTH=PLAIN where passwords may flow."""
        caps = ["IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+"]
        if self.starttls_offered():
            caps.append("STARTTLS")
        caps.append("AUTH=PLAIN" if self.plaintext_allowed() else "LOGINDISABLED")
        return caps

    def greeting(self) -> Reply:
        """Dovecot puts its capabilities in the greeting."""
        return Reply((f"* OK [CAPABILITY {' '.join(self.capabilities())}] Dovecot ready.",))

    def capability_done(self, tag: str) -> str:
        return f"{tag} OK Pre-login capabilities listed, post-login capabilities have more."

    def refusal(self, tag: str, verb: str) -> Reply | None:
        """Only verbs imap-login does not know are refused before their arguments."""
        if self.logged_in or verb in PRE_LOGIN:
            return None
        return self.count(tag, self.unknown_text)

    def count(self, tag: str, text: str) -> Reply:
        """A BAD that counts; the tenth ends the connection."""
        self.log.rejected_commands += 1
        if self.errors >= self.max_errors:
            return Reply(("* BYE Too many invalid IMAP commands.",), Action.CLOSE)
        return Reply((f"{tag} {text}",))

    def untagged_bad(self) -> Reply:
        return self.count("*", self.unknown_text)

    def bad_arguments(self, tag: str) -> Reply:
        return self.count(tag, "BAD Invalid arguments.")

    def idle_timeout(self) -> Reply:
        return Reply(("* BYE Disconnected for inactivity.",), Action.CLOSE)

    def cmd_logout(self, tag: str, args: list[str]) -> Reply:
        return Reply(("* BYE Logging out", f"{tag} OK Logout completed."), Action.CLOSE)

    def cmd_starttls(self, tag: str, args: list[str]) -> Reply:
        """Dovecot says why STARTTLS cannot happen."""
        if self.tls:
            return Reply((f"{tag} BAD TLS is already active.",))
        if not self.starttls_offered():
            return Reply((f"{tag} BAD TLS support isn't enabled.",))
        return super().cmd_starttls(tag, args)

    def cmd_login(self, tag: str, args: list[str]) -> Reply:
        """Before TLS the password has already crossed; Dovecot says so, then refuses."""
        if not self.plaintext_allowed():
            return Reply((self.alert_line, f"{tag} {self.privacy_text}"))
        return super().cmd_login(tag, args)

    def cmd_authenticate(self, tag: str, args: list[str]) -> Reply:
        """PLAIN (with or without SASL-IR) where passwords may flow; nothing else."""
        if not 1 <= len(args) <= 2:
            return self.bad_arguments(tag)
        mechanism = args[0].upper()
        if mechanism != "PLAIN":
            return Reply((f"{tag} NO Unsupported authentication mechanism.",))
        if not self.plaintext_allowed():
            return Reply((f"{tag} {self.privacy_text}",))
        return self.start_sasl(tag, mechanism, args[1] if len(args) == 2 else None)

    def logged_in_text(self, by_login: bool) -> str:
        return f"OK [CAPABILITY {' '.join(self.capabilities())}] Logged in"


# Commands of the authenticated and selected states, which Exchange knows but refuses before
# login as an invalid state rather than as an unknown command.
_MAILBOX_VERBS = (
    "SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK "
    "CLOSE EXPUNGE SEARCH FETCH STORE COPY MOVE UID IDLE NAMESPACE"
)
_MAILBOX_COMMANDS = frozenset(_MAILBOX_VERBS.split())


def make_imap_session(
    config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
) -> ImapSession:
    """A fresh IMAP session for the endpoint's profile; `tls` when it starts inside TLS."""
    if config.is_exchange:
        return ExchangeImapSession(config, tls=tls, log=log)
    return DovecotImapSession(config, tls=tls, log=log)
