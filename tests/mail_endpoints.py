"""What the tests of real IMAP and submission servers need to know about each one: where its two
entry points are, what it should say before TLS, and the one account every server knows.

A plain module, not a pytest plugin, so that the plugins that start the servers
(tests/dovecot.py, tests/imap_servers.py, tests/submission_servers.py) can share it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# The one mail account of every test server: logging in with it over TLS must work. The password
# is new in each test run and never crosses a cleartext connection.
ACCOUNT = ("popctest", secrets.token_urlsafe(12))


@dataclass(frozen=True)
class MailEndpoint:
    """One server's cleartext port (with STARTTLS) and implicit-TLS port for one protocol.

    `cleartext_auth`: whether it would read a password before TLS (IMAP `AUTHENTICATE PLAIN`
    answered with a `+` continuation; SMTP `AUTH PLAIN` with `334`). `logindisabled`: whether
    IMAP CAPABILITY says LOGINDISABLED before TLS, which is not the same question.
    """

    name: str
    host: str
    starttls_port: int
    tls_port: int
    cleartext_auth: bool
    logindisabled: bool = False

    def __str__(self) -> str:
        return self.name
