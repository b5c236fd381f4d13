"""Connection handlers: read lines, ask the session, write replies, switch to TLS on STLS.

These are the only places in the emulator that do I/O. Every read is bounded in time (the
endpoint's idle timeout) and size (`LINE_LIMIT`), and every network error simply ends the
connection, because a client hanging up mid-conversation is normal, not a lab failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from pop3lab._session import Action, Session
from pop3lab.config import EndpointConfig
from pop3lab.profiles import make_session

# Longest command line accepted (RFC 2449 says 255 octets; SASL blobs may be longer).
LINE_LIMIT = 4096
TLS_HANDSHAKE_TIMEOUT = 10.0
# What Exchange sends, in plaintext, on the POP3S port when no certificate is bound.
NO_CERT_POP3S_REPLY = b"-ERR Connection is closed. 13\r\n"
# Errors that mean "the peer went away or broke the protocol": end quietly.
PEER_ERRORS = (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, OSError)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def pop3_handler(config: EndpointConfig, context: ssl.SSLContext | None) -> Handler:
    """Handler for the cleartext port: greeting, commands, STLS upgrade if possible."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = make_session(config)
        await _converse(reader, writer, session, context)

    return handle


def pop3s_handler(config: EndpointConfig) -> Handler:
    """Handler for the implicit-TLS port; the listener has already done the handshake."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = make_session(config, tls=True)
        await _converse(reader, writer, session, None)

    return handle


def no_cert_pop3s_handler(config: EndpointConfig) -> Handler:
    """POP3S with no certificate bound: Exchange says why in plaintext, then hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if config.is_exchange:
            writer.write(NO_CERT_POP3S_REPLY)
            with contextlib.suppress(*PEER_ERRORS):
                await writer.drain()
        writer.close()

    return handle


async def _converse(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    session: Session,
    context: ssl.SSLContext | None,
) -> None:
    """Run one conversation to its end, whatever the peer does."""
    try:
        await _send(writer, session.greeting().encode())
        while await _step(reader, writer, session, context):
            pass
    except PEER_ERRORS:
        pass
    finally:
        writer.close()


async def _step(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    session: Session,
    context: ssl.SSLContext | None,
) -> bool:
    """Answer one line; False when the conversation is over."""
    try:
        line = await asyncio.wait_for(reader.readline(), session.config.idle_timeout)
    except ValueError:
        # StreamReader raises ValueError when a line exceeds LINE_LIMIT.
        await _send(writer, b"-ERR Input line too long.\r\n")
        return False
    if not line.endswith(b"\n"):
        return False  # EOF, possibly in the middle of a line
    reply = session.handle(line.rstrip(b"\r\n"))
    await _send(writer, reply.encode())
    if reply.action is Action.CLOSE:
        return False
    if reply.action is Action.START_TLS:
        assert context is not None, "a session offers STLS only when a certificate is bound"
        await writer.start_tls(context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        session.tls_started()
    return True


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write and wait for the buffer to drain, so a slow reader cannot bloat our memory."""
    writer.write(data)
    await writer.drain()
