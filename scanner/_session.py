"""One address being probed: its connection cap, its deadline per connection, and the steps
every probe shares (the greeting, the STLS upgrade, CAPA, QUIT, the TLS version handshakes)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from scanner._enumerate import Exchange, enumerate_tls, still_accurate
from scanner._errors import ProbeTimeout, ProtocolError, ScanError
from scanner._facts import TlsFacts, TlsSupport
from scanner._target import Settings, Target
from scanner._tls import sni_name
from scanner._wire import Pop3Connection, Reply, parse_capabilities

T = TypeVar("T")


@dataclass
class LoginGate:
    """The login test's turnstile, shared by the addresses of one target in one scan: their
    logins go one at a time, and once one address rejected the login the others are not
    tried. The addresses of one name are one service on one account database (an Exchange
    CAS array, a Dovecot cluster), so one rejection tells the password is wrong, while one per
    address, and as many again at the confirmation re-probe, could lock the account out. The
    price: logins that all hang take one timeout each, so a name with N addresses can spend
    N × --timeout on its logins."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rejected_by: str | None = None


@dataclass
class AddressSession:
    """The shared state of the probes of one address. `slots` caps the connections open to
    it at once, because mail servers throttle clients that open many in parallel."""

    address: str
    target: Target
    settings: Settings
    login_gate: LoginGate
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.connections_per_address)

    @functools.cached_property
    def sni(self) -> str | None:
        return sni_name(self.target.service_name)

    async def converse(
        self,
        port: int,
        talk: Callable[[Pop3Connection], Awaitable[T]],
        *,
        tls: ssl.SSLContext | None = None,
    ) -> T:
        """Open a connection, run `talk` on it, close it; all within one deadline, so a
        server that trickles bytes is cut off like one that sends nothing."""
        timeout = self.settings.timeout
        connection: Pop3Connection | None = None
        async with self.slots:
            try:
                async with asyncio.timeout(timeout):
                    connection = await Pop3Connection.open(
                        self.address, port, tls=tls, server_hostname=self.sni
                    )
                    return await talk(connection)
            except TimeoutError:
                step = connection.step if connection else f"connect to {self.address} port {port}"
                raise ProbeTimeout(step, f"no answer within {timeout:g} s") from None
            finally:
                if connection is not None:
                    connection.close()

    async def tls_support(
        self, port: int, *, after_stls: bool, session: TlsFacts | None = None
    ) -> TlsSupport:
        """What the TLS entry point on `port` accepts: an earlier scan's enumeration when the
        target offers one and the full handshake (`session`) still negotiates what it did
        then, else a fresh one (scanner._enumerate), each hello on a new connection: straight
        away on an implicit-TLS port, after STLS on the POP3 one."""
        negotiated = f"{session.version} {session.cipher}" if session else None
        earlier = self._earlier_support(port, after_stls)
        exchange = self._exchange(port, after_stls)
        if (
            earlier is not None
            and negotiated is not None
            and earlier.negotiated == negotiated
            and await still_accurate(exchange, self.sni, earlier)
        ):
            return earlier
        support = await enumerate_tls(exchange, self.sni)
        return replace(support, negotiated=negotiated)

    def _earlier_support(self, port: int, after_stls: bool) -> TlsSupport | None:
        """The target's earlier enumeration of this address's entry point, if it has one."""
        wanted = (self.address, port, after_stls)
        earlier = self.target.earlier_support
        found = (e.support for e in earlier if (e.address, e.port, e.after_stls) == wanted)
        return next(found, None)

    def _exchange(self, port: int, after_stls: bool) -> Exchange:
        """How the enumeration reaches the entry point: each hello on a new connection,
        straight away on an implicit-TLS port, after STLS on the POP3 one."""

        async def exchange(hello: Callable[[Pop3Connection], Awaitable[T]]) -> T:
            async def talk(connection: Pop3Connection) -> T:
                if after_stls:
                    await _request_stls(connection)
                return await hello(connection)

            return await self.converse(port, talk)

        return exchange


async def read_greeting(connection: Pop3Connection) -> Reply:
    """The server's first line; it must be `+OK`."""
    connection.step = "greeting"
    reply = await connection.read_reply()
    if not reply.ok:
        raise ProtocolError("greeting", "the server refused the session", reply.line)
    return reply


async def upgrade_with_stls(
    connection: Pop3Connection, context: ssl.SSLContext, sni: str | None
) -> None:
    """The greeting, STLS and the TLS handshake, for a probe that needs TLS on the POP3 port.
    A refused STLS is a ProtocolError: callers come after the STLS probe saw it work."""
    await _request_stls(connection)
    await connection.start_tls(context, sni)


async def _request_stls(connection: Pop3Connection) -> None:
    """The greeting and an accepted STLS: the cleartext port is then ready for a TLS hello."""
    await read_greeting(connection)
    reply = await connection.command("STLS")
    if not reply.ok:
        raise ProtocolError("reply to STLS", "STLS was refused this time", reply.line)


async def read_capabilities(connection: Pop3Connection) -> tuple[str, ...] | None:
    """CAPA (RFC 2449); None when the server does not support it."""
    reply = await connection.command("CAPA")
    if not reply.ok:
        return None
    return parse_capabilities(await connection.read_multiline())


# A server that does not answer QUIT has still answered everything we needed; waiting for it
# longer than this would only slow the scan.
QUIT_WAIT = 2.0


async def quit_politely(connection: Pop3Connection) -> str | None:
    """QUIT and its reply (Exchange names its version there), or None if there is none."""
    try:
        async with asyncio.timeout(QUIT_WAIT):
            reply = await connection.command("QUIT")
    except (ScanError, TimeoutError):
        return None
    return reply.line
