"""What clients did to an endpoint, for tests to assert on: the bytes of every connection as
they arrived, where TLS took over, and every login attempt.

The point is to check what crossed the wire in the clear ("the scanner never sent the password
before TLS"), so the bytes are taken where the socket delivers them, before the handler reads
(or ignores) them; a client that pipelines a secret after a command the server closes on is
caught too. Records are appended on the lab's event loop and read by tests once a scan is over.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoginAttempt:
    """One password check by the server (PASS, or a SASL PLAIN response); never the password."""

    username: str
    mechanism: str
    tls: bool
    accepted: bool


@dataclass
class ConnectionLog:
    """One connection: `tls_at` is how many bytes had arrived when the TLS handshake completed
    (None while it has not), so `before_tls` is everything the client sent outside TLS
    (handshake records included, which never carry application data). `rejected_commands`
    is the server's count of commands it held against the client (Exchange hangs up at the
    third), the one its session reads to decide when to hang up. `service` names the listener
    the connection came in on (pop3lab.config.SERVICES), `peer` the client's address."""

    service: str = "pop3"
    peer: str = ""
    received: bytearray = field(default_factory=bytearray)
    tls_at: int | None = None
    logins: list[LoginAttempt] = field(default_factory=list)
    commands_after_login: list[str] = field(default_factory=list)
    rejected_commands: int = 0

    def tap(self, reader: asyncio.StreamReader) -> None:
        """Record every byte the socket hands to `reader` from now on.

        StreamReaderProtocol delivers data by calling `reader.feed_data`; wrapping that one
        bound method on this instance is the only hook asyncio offers below the handler.
        """
        feed = reader.feed_data

        def recorded(data: bytes) -> None:
            self.received += data
            feed(data)

        reader.feed_data = recorded  # type: ignore[method-assign,assignment]

    def tls_established(self) -> None:
        self.tls_at = len(self.received)

    @property
    def before_tls(self) -> bytes:
        return bytes(self.received if self.tls_at is None else self.received[: self.tls_at])


@dataclass
class Journal:
    """Every connection an endpoint accepted, in order."""

    connections: list[ConnectionLog] = field(default_factory=list)

    def open(self, service: str = "pop3") -> ConnectionLog:
        log = ConnectionLog(service)
        self.connections.append(log)
        return log

    def on(self, service: str) -> list[ConnectionLog]:
        """The connections that came in on one listener, in order."""
        return [log for log in self.connections if log.service == service]

    @property
    def logins(self) -> list[LoginAttempt]:
        return [attempt for log in self.connections for attempt in log.logins]

    @property
    def before_tls(self) -> list[bytes]:
        """What each connection carried outside TLS, in connection order."""
        return [log.before_tls for log in self.connections]
