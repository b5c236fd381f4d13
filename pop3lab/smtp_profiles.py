"""SMTP submission profiles: Exchange's Client Frontend receive connector, and two others.

Exchange's reply texts are those of its transport code (Microsoft.Exchange SmtpResponse): the
banner, the EHLO lines up to AUTH, 504 5.7.4 for a mechanism it does not offer, 501 5.5.4 for
a cancelled exchange, 535 5.7.3, 220 2.0.0 and 221 2.0.0. The EHLO lines after AUTH follow
published Exchange 2016 transcripts. Exchange has no AUTH PLAIN at all: basic authentication
is AUTH LOGIN, so a probe that tries only PLAIN reads every Exchange as refusing passwords.

Exchange receive connectors speak no implicit TLS; a 465 listener in front of Exchange is a
TLS-offloading device, which the lab models by serving the same session inside TLS.

The generic and Dovecot-like profiles are plausible rather than exact: they refuse AUTH before
TLS with RFC 3207's 530 and RFC 4954's 538 respectively, the other two refusals a scanner
meets in the wild.
"""

from __future__ import annotations

import datetime

from pop3lab._session import Action, Reply
from pop3lab._smtp_session import SmtpSession
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog


class ExchangeSmtpSession(SmtpSession):
    """Exchange 2013 to 2019 "Client Frontend <server>" on 587 before authentication."""

    ready_for_tls_text = "220 2.0.0 SMTP server ready"
    quit_text = "221 2.0.0 Service closing transmission channel"
    need_hello_text = "503 5.5.2 Send hello first"
    already_authenticated_text = "503 5.5.2 Auth command already specified"
    unknown_text = "500 5.3.3 Unrecognized command"
    bad_arguments_text = "501 5.5.4 Invalid arguments"
    ehlo_domain_text = "501 5.0.0 EHLO requires domain address"
    unknown_mechanism_text = "504 5.7.4 Unrecognized authentication type"
    cancelled_text = "501 5.5.4 Authentication cancelled"
    auth_failed_text = "535 5.7.3 Authentication unsuccessful"
    not_authenticated_text = "530 5.7.1 Client was not authenticated"
    too_many_errors_text = (
        "421 4.7.0 Too many errors on this connection, closing transmission channel"
    )
    command_too_long_text = "500 5.5.2 Command too long"
    # The connector's MaxProtocolErrors default.
    max_errors = 5
    # The connector's MaxMessageSize default (36 MB), as EHLO's SIZE states it.
    max_message_size = 37748736

    def greeting(self) -> Reply:
        """`220 <FQDN> Microsoft ESMTP MAIL Service ready at <RFC 5322 date>`."""
        now = datetime.datetime.now().astimezone()
        date = f"{now:%a}, {now.day} {now:%b %Y %H:%M:%S %z}"
        return Reply((f"220 {self.hostname} Microsoft ESMTP MAIL Service ready at {date}",))

    def ehlo_first_line(self) -> str:
        return f"{self.hostname} Hello [{self.log.peer}]"

    def mechanisms(self) -> list[str]:
        """Integrated gives GSSAPI and NTLM, even before TLS; BasicAuth gives LOGIN."""
        mechanisms = ["GSSAPI", "NTLM"] if "Integrated" in self.config.submission_auth else []
        if self.basic_allowed():
            mechanisms.append("LOGIN")
        return mechanisms

    def extensions(self) -> list[str]:
        """Exchange's EHLO lines, STARTTLS and AUTH only where they apply."""
        lines = [f"SIZE {self.max_message_size}", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
        if self.starttls_offered():
            lines.append("STARTTLS")
        if self.mechanisms():
            lines.append("AUTH " + " ".join(self.mechanisms()))
        return [*lines, "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]

    def auth_refused(self, mechanism: str) -> Reply:
        """Any mechanism not offered now, PLAIN always, is simply unrecognised."""
        return Reply((self.unknown_mechanism_text,))

    def idle_timeout(self) -> Reply:
        return Reply(("421 4.4.1 Connection timed out",), Action.CLOSE)

    def cmd_starttls(self, arg: str) -> Reply:
        """A second STARTTLS has its own reply; STARTTLS not offered is an unknown verb."""
        if self.tls and self.config.has_cert:
            return self.reject("503 5.5.2 Only one STARTTLS command can be issued per session")
        if not self.starttls_offered():
            return self.reject(self.unknown_text)
        return super().cmd_starttls(arg)


class GenericSmtpSession(SmtpSession):
    """A submission server that refuses AUTH before TLS with RFC 3207's 530."""

    def extensions(self) -> list[str]:
        lines = ["PIPELINING", "SIZE 10240000"]
        if self.starttls_offered():
            lines.append("STARTTLS")
        if self.mechanisms():
            lines.append("AUTH " + " ".join(self.mechanisms()))
        return [*lines, "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"]

    def auth_refused(self, mechanism: str) -> Reply:
        """PLAIN and LOGIN before TLS need STARTTLS first; others are unsupported."""
        if self.tls_required_for(mechanism):
            return self.reject("530 5.7.0 Must issue a STARTTLS command first")
        return self.reject(self.unknown_mechanism_text)

    def tls_required_for(self, mechanism: str) -> bool:
        """Whether `mechanism` would be usable inside TLS but is not before it."""
        auth = self.config.submission_auth
        return not self.tls and mechanism in ("PLAIN", "LOGIN") and "BasicAuth" in auth


class DovecotSmtpSession(GenericSmtpSession):
    """A Dovecot-like submission service: RFC 4954's 538 for AUTH before TLS."""

    def greeting(self) -> Reply:
        return Reply((f"220 {self.hostname} Dovecot ready.",))

    def extensions(self) -> list[str]:
        lines = ["8BITMIME"]
        if self.mechanisms():
            lines.append("AUTH " + " ".join(self.mechanisms()))
        lines += ["BURL imap", "CHUNKING", "ENHANCEDSTATUSCODES", "SIZE"]
        if self.starttls_offered():
            lines.append("STARTTLS")
        return [*lines, "PIPELINING"]

    def auth_refused(self, mechanism: str) -> Reply:
        if self.tls_required_for(mechanism):
            text = "538 5.7.11 Encryption required for requested authentication mechanism"
            return self.reject(text)
        return self.reject(self.unknown_mechanism_text)


def make_smtp_session(
    config: EndpointConfig, *, tls: bool = False, log: ConnectionLog | None = None
) -> SmtpSession:
    """A fresh submission session for the endpoint's profile; `tls` when inside TLS."""
    if config.is_exchange:
        return ExchangeSmtpSession(config, tls=tls, log=log)
    if config.profile == "dovecot_like":
        return DovecotSmtpSession(config, tls=tls, log=log)
    return GenericSmtpSession(config, tls=tls, log=log)
