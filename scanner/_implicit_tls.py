"""Implicit TLS (RFC 8314) on a protocol's TLS port (995, 993, 465): the handshake, then the
greeting inside TLS."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from scanner._errors import ScanError, TlsHandshakeError, quote_reply, quoted
from scanner._facts import ImplicitTlsFacts, TlsFacts
from scanner._session import AddressSession, Dialect
from scanner._tls import probe_context, reconciled, tls_facts

# How long to listen for what a non-TLS server says on the TLS port, and how much of it to keep.
PLAINTEXT_LISTEN = 2.0
PLAINTEXT_KEEP = 512


async def probe_implicit_tls(session: AddressSession, dialect: Dialect) -> ImplicitTlsFacts:
    """Handshake and greeting on the protocol's implicit-TLS port; trouble is recorded."""
    _, port = session.target.ports(dialect.protocol)
    tls: list[TlsFacts] = []

    async def talk(connection: Any) -> str:
        assert connection.ssl_object is not None
        tls.append(tls_facts(connection.ssl_object))
        connection.step = "greeting after the TLS handshake"
        greeting = await dialect.read_greeting(connection)
        await dialect.say_goodbye(connection)
        return greeting

    try:
        greeting = await session.converse(
            port, talk, tls=probe_context(), kind=dialect.kind, record="implicit"
        )
    except TlsHandshakeError as exc:
        said = await _plaintext_reply(session.address, port, session.settings.timeout)
        if said:
            session.annotate(port, "implicit", f"in the clear, the port said {quoted(said)}")
        return ImplicitTlsFacts(port, "tls_error", _with_said(str(exc), said), plaintext_reply=said)
    except ScanError as exc:
        return ImplicitTlsFacts(port, exc.outcome, str(exc), tls=tls[0] if tls else None)  # type: ignore[arg-type]
    return ImplicitTlsFacts(port, "ok", tls=tls[0], greeting=greeting)


async def _plaintext_reply(address: str, port: int, timeout: float) -> str | None:
    """What the server sends in the clear on its TLS port, if anything.

    Exchange with no certificate bound to POP answers `-ERR Connection is closed. 13` there
    (IMAP: `* BYE Connection is closed. 14`); quoting it turns "handshake failed" into
    something an operator can act on.
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


async def with_implicit_tls_support(
    session: AddressSession, facts: ImplicitTlsFacts
) -> ImplicitTlsFacts:
    """The facts with what the port accepts, wherever it answered TLS (even when the local
    OpenSSL could not complete a handshake: an SSLv3-only server is still found)."""
    speaks_tls = facts.outcome == "tls_error" and facts.plaintext_reply is None
    if facts.tls is None and not speaks_tls:
        return facts
    support = await session.tls_support(facts.port, upgrade=None, session=facts.tls)
    return replace(facts, support=reconciled(support, facts.tls))
