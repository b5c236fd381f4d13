"""Connection handlers: read lines, ask the session, write replies, switch to TLS on request.

One pair of handlers serves every protocol: a cleartext port (POP3 110, IMAP 143, submission
587) that may upgrade, and an implicit-TLS port (995, 993, 465). The protocol lives entirely in
the session (pop3lab.profiles, imap_profiles, smtp_profiles).

These are the only places in the emulator that do I/O. Every read is bounded in time (the
endpoint's idle timeout) and size (`LINE_LIMIT`), and every network error simply ends the
connection, because a client hanging up mid-conversation is normal, not a lab failure.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

from pop3lab._channel import Channel, LineTooLong
from pop3lab._session import Action, Reply
from pop3lab._tls import TlsSetup
from pop3lab.config import EndpointConfig
from pop3lab.imap_profiles import make_imap_session
from pop3lab.journal import ConnectionLog
from pop3lab.profiles import make_session
from pop3lab.smtp_profiles import make_smtp_session

# Longest command line accepted (RFC 2449 says 255 octets; SASL blobs may be longer).
LINE_LIMIT = 4096
TLS_HANDSHAKE_TIMEOUT = 10.0
# What Exchange sends, in plaintext, on its implicit-TLS ports when no certificate is bound.
NO_CERT_POP3S_REPLY = b"-ERR Connection is closed. 13\r\n"
NO_CERT_IMAPS_REPLY = b"* BYE Connection is closed. 14\r\n"
# Errors that mean "the peer went away or broke the protocol": end quietly.
PEER_ERRORS = (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, OSError)

# The lab hands each connection's handler the log its bytes are being recorded in.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ConnectionLog], Awaitable[None]]


class Conversation(Protocol):
    """What a handler needs of a session: POP3's, IMAP's and SMTP's all have this shape."""

    config: EndpointConfig

    def greeting(self) -> Reply: ...
    def handle(self, line: bytes) -> Reply: ...
    def command_too_long(self) -> Reply: ...
    def idle_timeout(self) -> Reply | None: ...
    def tls_started(self) -> None: ...


class SessionFactory(Protocol):
    """make_session, make_imap_session or make_smtp_session."""

    def __call__(
        self, config: EndpointConfig, *, tls: bool = ..., log: ConnectionLog | None = ...
    ) -> Conversation: ...


def handlers(config: EndpointConfig, tls: TlsSetup | None) -> dict[str, Handler]:
    """The handler of every service (pop3lab.config.SERVICES) of one endpoint."""
    exchange = config.is_exchange
    return {
        "pop3": cleartext_handler(config, tls, make_session),
        "pop3s": implicit_tls_handler(
            config, tls, make_session, NO_CERT_POP3S_REPLY if exchange else b""
        ),
        "imap": cleartext_handler(config, tls, make_imap_session),
        "imaps": implicit_tls_handler(
            config, tls, make_imap_session, NO_CERT_IMAPS_REPLY if exchange else b""
        ),
        "submission": cleartext_handler(config, tls, make_smtp_session),
        "submissions": implicit_tls_handler(config, tls, make_smtp_session, b""),
    }


def cleartext_handler(
    config: EndpointConfig, tls: TlsSetup | None, new_session: SessionFactory
) -> Handler:
    """Handler for a cleartext port: greeting, commands, an upgrade to TLS if possible."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        channel = Channel(reader, writer, LINE_LIMIT, log)
        await _converse(channel, new_session(config, log=log), tls)

    return handle


def implicit_tls_handler(
    config: EndpointConfig, tls: TlsSetup | None, new_session: SessionFactory, no_cert: bytes
) -> Handler:
    """Handler for an implicit-TLS port: handshake, then the greeting inside TLS.

    With no certificate bound the handshake cannot happen: the server sends `no_cert` in
    plaintext (Exchange says why; others send nothing) and hangs up.
    """

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        channel = Channel(reader, writer, LINE_LIMIT, log)
        try:
            if tls is None:
                if no_cert:
                    await channel.write(no_cert)
                channel.close()
                return
            await channel.start_tls(tls, TLS_HANDSHAKE_TIMEOUT)
        except PEER_ERRORS:
            channel.close()
            return
        await _converse(channel, new_session(config, tls=True, log=log), tls)

    return handle


async def _converse(channel: Channel, session: Conversation, tls: TlsSetup | None) -> None:
    """Run one conversation to its end, whatever the peer does."""
    try:
        await channel.write(session.greeting().encode())
        while await _step(channel, session, tls):
            pass
    except PEER_ERRORS:
        pass
    finally:
        channel.close()


async def _step(channel: Channel, session: Conversation, tls: TlsSetup | None) -> bool:
    """Answer one line; False when the conversation is over."""
    try:
        line = await asyncio.wait_for(channel.readline(), session.config.idle_timeout)
    except LineTooLong:
        await channel.write(session.command_too_long().encode())
        return False
    except TimeoutError:
        farewell = session.idle_timeout()
        if farewell is not None:
            await channel.write(farewell.encode())
        return False
    if not line.endswith(b"\n"):
        return False  # end of stream, possibly in the middle of a line
    reply = session.handle(line.rstrip(b"\r\n"))
    await channel.write(reply.encode())
    if reply.action is Action.CLOSE:
        return False
    if reply.action is Action.LITERAL:
        # Only IMAP sessions ask for literals, and they cap `reply.literal` first.
        data = await asyncio.wait_for(
            channel.read_exactly(reply.literal), session.config.idle_timeout
        )
        session.literal(data)  # type: ignore[attr-defined]
    if reply.action is Action.START_TLS:
        assert tls is not None, "a session offers TLS only when a certificate is bound"
        await channel.start_tls(tls, TLS_HANDSHAKE_TIMEOUT)
        session.tls_started()
    return True
