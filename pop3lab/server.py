"""Connection handlers: read lines, ask the session, write replies, switch to TLS on STLS.

These are the only places in the emulator that do I/O. Every read is bounded in time (the
endpoint's idle timeout) and size (`LINE_LIMIT`), and every network error simply ends the
connection, because a client hanging up mid-conversation is normal, not a lab failure.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from pop3lab._channel import Channel, LineTooLong
from pop3lab._session import Action, Session
from pop3lab._tls import TlsSetup
from pop3lab.config import EndpointConfig
from pop3lab.journal import ConnectionLog
from pop3lab.profiles import make_session

# Longest command line accepted (RFC 2449 says 255 octets; SASL blobs may be longer).
LINE_LIMIT = 4096
TLS_HANDSHAKE_TIMEOUT = 10.0
# What Exchange sends, in plaintext, on the POP3S port when no certificate is bound.
NO_CERT_POP3S_REPLY = b"-ERR Connection is closed. 13\r\n"
# Errors that mean "the peer went away or broke the protocol": end quietly.
PEER_ERRORS = (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, OSError)

# The lab hands each connection's handler the log its bytes are being recorded in.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ConnectionLog], Awaitable[None]]


def pop3_handler(config: EndpointConfig, tls: TlsSetup | None) -> Handler:
    """Handler for the cleartext port: greeting, commands, STLS upgrade if possible."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        channel = Channel(reader, writer, LINE_LIMIT, log)
        await _converse(channel, make_session(config, log=log), tls)

    return handle


def pop3s_handler(config: EndpointConfig, tls: TlsSetup | None) -> Handler:
    """Handler for the implicit-TLS port: handshake, then the greeting inside TLS.

    With no certificate bound, Exchange says why in plaintext and hangs up; others just hang up.
    """

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        channel = Channel(reader, writer, LINE_LIMIT, log)
        try:
            if tls is None:
                if config.is_exchange:
                    await channel.write(NO_CERT_POP3S_REPLY)
                channel.close()
                return
            await channel.start_tls(tls, TLS_HANDSHAKE_TIMEOUT)
        except PEER_ERRORS:
            channel.close()
            return
        await _converse(channel, make_session(config, tls=True, log=log), tls)

    return handle


async def _converse(channel: Channel, session: Session, tls: TlsSetup | None) -> None:
    """Run one conversation to its end, whatever the peer does."""
    try:
        await channel.write(session.greeting().encode())
        while await _step(channel, session, tls):
            pass
    except PEER_ERRORS:
        pass
    finally:
        channel.close()


async def _step(channel: Channel, session: Session, tls: TlsSetup | None) -> bool:
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
    if reply.action is Action.START_TLS:
        assert tls is not None, "a session offers STLS only when a certificate is bound"
        await channel.start_tls(tls, TLS_HANDSHAKE_TIMEOUT)
        session.tls_started()
    return True
