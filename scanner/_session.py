"""One address being probed: its connection cap, its deadline per connection, and the steps
every probe shares (the greeting, the STLS upgrade, CAPA, QUIT, the TLS version handshakes)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from scanner._errors import ProbeTimeout, ProtocolError, ScanError, TlsHandshakeError
from scanner._target import Settings, Target
from scanner._tls import VERSION_ORDER, probe_context, sni_name, versions_to_probe
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

    async def accepted_versions(
        self, negotiated: str, handshake: Callable[[str], Awaitable[bool | None]]
    ) -> dict[str, bool | None]:
        """Which protocol versions the endpoint accepts: one short handshake per version
        not already known from the negotiated one. None = could not be determined."""
        to_probe, known = versions_to_probe(negotiated)
        results = await asyncio.gather(*(handshake(version) for version in to_probe))
        known.update(zip(to_probe, results, strict=True))
        return {version: known[version] for version in sorted(known, key=_version_rank)}

    async def implicit_tls_accepts(self, port: int, version: str) -> bool | None:
        """Does a handshake pinned to `version` succeed on the implicit-TLS port?"""

        async def nothing_more(connection: Pop3Connection) -> bool:
            return True

        return await _version_outcome(self.converse(port, nothing_more, tls=probe_context(version)))

    async def stls_accepts(self, port: int, version: str) -> bool | None:
        """Does an STLS upgrade pinned to `version` succeed on the cleartext port?"""

        async def upgrade(connection: Pop3Connection) -> bool:
            await upgrade_with_stls(connection, probe_context(version), self.sni)
            return True

        return await _version_outcome(self.converse(port, upgrade))


async def _version_outcome(handshake: Awaitable[bool]) -> bool | None:
    try:
        return await handshake
    except TlsHandshakeError:
        return False
    except ScanError:
        return None


def _version_rank(version: str) -> int:
    return VERSION_ORDER.index(version)


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
    await read_greeting(connection)
    reply = await connection.command("STLS")
    if not reply.ok:
        raise ProtocolError("reply to STLS", "STLS was refused this time", reply.line)
    await connection.start_tls(context, sni)


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
