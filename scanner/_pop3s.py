"""Implicit TLS on the POP3S port: the handshake, then the greeting inside TLS."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from scanner._errors import ScanError, TlsHandshakeError, quote_reply, quoted
from scanner._facts import Pop3sFacts, TlsFacts
from scanner._session import AddressSession, quit_politely, read_greeting
from scanner._tls import probe_context, reconciled, tls_facts
from scanner._wire import Pop3Connection

# How long to listen for what a non-TLS server says on the TLS port, and how much of it to keep.
PLAINTEXT_LISTEN = 2.0
PLAINTEXT_KEEP = 512


async def probe_implicit_tls(session: AddressSession) -> Pop3sFacts:
    """Handshake and greeting on the POP3S port; trouble is recorded, not raised."""
    port = session.target.pop3s_port
    tls: list[TlsFacts] = []
    try:
        greeting = await session.converse(
            port, lambda connection: _conversation(connection, tls), tls=probe_context()
        )
    except TlsHandshakeError as exc:
        said = await _plaintext_reply(session.address, port, session.settings.timeout)
        return Pop3sFacts(port, "tls_error", _with_said(str(exc), said), plaintext_reply=said)
    except ScanError as exc:
        return Pop3sFacts(port, exc.outcome, str(exc), tls=tls[0] if tls else None)  # type: ignore[arg-type]
    return Pop3sFacts(port, "ok", tls=tls[0], greeting=greeting)


async def _conversation(connection: Pop3Connection, tls: list[TlsFacts]) -> str:
    assert connection.ssl_object is not None
    tls.append(tls_facts(connection.ssl_object))
    connection.step = "greeting after the TLS handshake"
    greeting = await read_greeting(connection)
    await quit_politely(connection)
    return greeting.line


async def _plaintext_reply(address: str, port: int, timeout: float) -> str | None:
    """What the server sends in the clear on its TLS port, if anything.

    Exchange with no certificate bound to POP answers `-ERR Connection is closed. 13` there;
    quoting it turns "handshake failed" into something an operator can act on.
    """
    writer = None
    try:
        async with asyncio.timeout(min(PLAINTEXT_LISTEN, timeout)):
            reader, writer = await asyncio.open_connection(address, port)
            data = await reader.read(PLAINTEXT_KEEP)
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()
    return quote_reply(data) or None


def _with_said(error: str, said: str | None) -> str:
    return f"{error} (in the clear it said: {quoted(said)})" if said else error


async def with_implicit_tls_support(session: AddressSession, facts: Pop3sFacts) -> Pop3sFacts:
    """The POP3S facts with what the port accepts, wherever it answered TLS (even when the
    local OpenSSL could not complete a handshake: an SSLv3-only server is still found)."""
    speaks_tls = facts.outcome == "tls_error" and facts.plaintext_reply is None
    if facts.tls is None and not speaks_tls:
        return facts
    support = await session.tls_support(facts.port, after_stls=False, session=facts.tls)
    return replace(facts, support=reconciled(support, facts.tls))
