"""One address being probed: its connection cap, its deadline per connection, the TLS
enumeration of its entry points, and POP3's shared steps (the greeting, the STLS upgrade, CAPA,
QUIT). `Dialect` is what the protocol-generic probes need to know of a protocol."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from scanner._enumerate import Exchange, enumerate_tls, still_accurate
from scanner._errors import ProbeTimeout, ProtocolError, ScanError
from scanner._facts import (
    Certainty,
    CleartextFacts,
    LoginVerdict,
    StlsFacts,
    TlsFacts,
    TlsSupport,
    TranscriptFacts,
)
from scanner._services import CLIENT_PROTOCOLS, ClientProtocol
from scanner._target import Settings, Target
from scanner._tls import probe_context, reconciled, sni_name, tls_facts
from scanner._transcript import NOTE, Transcript, error_line, trimmed
from scanner._wire import LineConnection, Pop3Connection, Reply, parse_capabilities

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """How the protocol-generic probes (the upgrade, implicit TLS, the TLS enumeration, NTLM)
    speak one protocol. `read_greeting` returns the greeting line and raises ProtocolError
    when the server refuses the session; `ask_upgrade`, after the greeting, asks for TLS
    (STLS; SMTP's EHLO and STARTTLS) and returns whether it was granted and the reply;
    `read_capabilities` asks what the server offers (CAPA, CAPABILITY, EHLO); `say_goodbye`
    ends politely and returns the reply, or None; `ntlm_challenge` starts AUTH NTLM after the
    greeting, sends the base64 NEGOTIATE it is given, returns the base64 CHALLENGE and
    cancels; `lists_ntlm` reads the cleartext port's capabilities for NTLM. Each takes a
    connection of class `kind`. `probe_cleartext` is the protocol's own login probe of its
    cleartext port."""

    protocol: ClientProtocol
    kind: type[LineConnection]
    read_greeting: Callable[[Any], Awaitable[str]]
    ask_upgrade: Callable[[Any], Awaitable[tuple[bool, str]]]
    read_capabilities: Callable[[Any], Awaitable[tuple[str, ...] | None]]
    say_goodbye: Callable[[Any], Awaitable[str | None]]
    ntlm_challenge: Callable[[Any, str], Awaitable[str]]
    lists_ntlm: Callable[[tuple[str, ...] | None], bool]
    probe_cleartext: Callable[[AddressSession], Awaitable[Any]]

    async def request_upgrade(self, connection: Any) -> str:
        """The greeting and a granted upgrade: the port is then ready for a TLS hello. A
        refused upgrade is a ProtocolError: callers come after the upgrade probe saw it work."""
        await self.read_greeting(connection)
        granted, reply = await self.ask_upgrade(connection)
        if not granted:
            command = self.protocol.upgrade_command
            raise ProtocolError(f"reply to {command}", f"{command} was refused this time", reply)
        return reply


@dataclass
class LoginNotes:
    """What the login probe of an IMAP4 or submission port learnt so far; kept when a later
    step fails. Its fields are exactly CleartextFacts's conversation fields."""

    greeting: str | None = None
    capabilities: tuple[str, ...] | None = None
    auth_replies: dict[str, str] = field(default_factory=dict)
    plaintext_login: LoginVerdict = "unknown"
    certainty: Certainty = "unknown"
    evidence: str | None = None
    goodbye: str | None = None

    def decide(self, verdict: LoginVerdict, evidence: str) -> None:
        """The verdict, shown by what the server did (so always confirmed)."""
        self.plaintext_login, self.certainty, self.evidence = verdict, "confirmed", evidence

    def facts(self, port: int, error: ScanError | None = None) -> CleartextFacts:
        """The notes as facts: outcome ok, or the error's outcome and reason."""
        if error is None:
            return CleartextFacts(port, "ok", **vars(self))
        return CleartextFacts(port, error.outcome, str(error), **vars(self))  # type: ignore[arg-type]


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
    """The shared state of the probes of one address. Its slots cap the connections open to
    each service of it at once, because mail servers throttle clients that open many in
    parallel. A service is one protocol on both its ports: Exchange limits connections per
    client address in each of its POP3, IMAP4 and transport services separately, so the
    protocols of one address do not wait for each other. `transcripts` collects the
    conversations of the connections opened with a `record` purpose, as they end."""

    address: str
    target: Target
    settings: Settings
    login_gate: LoginGate
    _slots: dict[str, asyncio.Semaphore] = field(init=False, default_factory=dict)
    transcripts: list[TranscriptFacts] = field(init=False, default_factory=list)

    def slots(self, port: int) -> asyncio.Semaphore:
        """The connection cap of the service listening on `port`."""
        service = next(
            (p.name for p in CLIENT_PROTOCOLS if port in self.target.ports(p)), str(port)
        )
        if service not in self._slots:
            self._slots[service] = asyncio.Semaphore(self.settings.connections_per_address)
        return self._slots[service]

    @functools.cached_property
    def sni(self) -> str | None:
        return sni_name(self.target.service_name)

    def door(self, port: int) -> str:
        """The name of the door on `port` (pop3, pop3s, imap, …; the port number if none)."""
        for protocol in CLIENT_PROTOCOLS:
            cleartext, implicit = self.target.ports(protocol)
            if self.target.declares(protocol.name) and port in (cleartext, implicit):
                return protocol.name if port == cleartext else protocol.implicit_tls_name
        return str(port)

    def annotate(self, port: int, purpose: str, note: str) -> None:
        """Add a note to the last kept conversation of `purpose` on `port`: what was learnt
        about it afterwards, on a connection of its own."""
        door = self.door(port)
        for index in reversed(range(len(self.transcripts))):
            found = self.transcripts[index]
            if (found.door, found.purpose) == (door, purpose):
                lines = (*found.lines, f"{NOTE}: {trimmed(note)}")
                self.transcripts[index] = replace(found, lines=lines)
                return

    def _transcript(self, port: int, purpose: str | None) -> Transcript | None:
        return Transcript(self.address, self.door(port), port, purpose) if purpose else None

    def _keep(self, transcript: Transcript | None) -> None:
        """Store a finished conversation under an id unique in the scan: address, door and
        purpose (`#2` for a second connection of the same purpose)."""
        if transcript is None:
            return
        base = f"{self.address}/{transcript.door}/{transcript.purpose}"
        taken = {t.id for t in self.transcripts}
        number = 1
        while (found := base if number == 1 else f"{base}#{number}") in taken:
            number += 1
        self.transcripts.append(transcript.facts(found))

    async def converse(
        self,
        port: int,
        talk: Callable[[Any], Awaitable[T]],
        *,
        tls: ssl.SSLContext | None = None,
        kind: type[LineConnection] = Pop3Connection,
        record: str | None = None,
    ) -> T:
        """Open a connection of class `kind`, run `talk` on it, close it; all within one
        deadline, so a server that trickles bytes is cut off like one that sends nothing.
        With a `record` purpose (login, upgrade, …) its conversation is kept in
        `transcripts`, ending with the step that failed if one did."""
        timeout = self.settings.timeout
        connection: LineConnection | None = None
        transcript = self._transcript(port, record)
        async with self.slots(port):
            try:
                async with asyncio.timeout(timeout):
                    connection = await kind.open(
                        self.address, port, tls=tls, server_hostname=self.sni, transcript=transcript
                    )
                    return await talk(connection)
            except TimeoutError:
                step = connection.step if connection else f"connect to {self.address} port {port}"
                error = ProbeTimeout(step, f"no answer within {timeout:g} s")
                if transcript is not None:
                    transcript.note(error_line(error))
                raise error from None
            except ScanError as exc:
                if transcript is not None:
                    transcript.note(error_line(exc))
                raise
            finally:
                if connection is not None:
                    connection.close()
                self._keep(transcript)

    async def tls_support(
        self, port: int, *, upgrade: Dialect | None, session: TlsFacts | None = None
    ) -> TlsSupport:
        """What the TLS entry point on `port` accepts: an earlier scan's enumeration when the
        target offers one and the full handshake (`session`) still negotiates what it did
        then, else a fresh one (scanner._enumerate), each hello on a new connection: straight
        away on an implicit-TLS port, after `upgrade`'s STLS/STARTTLS on a cleartext one."""
        negotiated = f"{session.version} {session.cipher}" if session else None
        earlier = self._earlier_support(port, after_stls=upgrade is not None)
        exchange = self._exchange(port, upgrade)
        if (
            earlier is not None
            and negotiated is not None
            and earlier.negotiated == negotiated
            and await still_accurate(exchange, self.sni, earlier)
        ):
            return earlier
        support = await enumerate_tls(exchange, self.sni)
        return replace(support, negotiated=negotiated)

    def _earlier_support(self, port: int, *, after_stls: bool) -> TlsSupport | None:
        """The target's earlier enumeration of this address's entry point, if it has one."""
        wanted = (self.address, port, after_stls)
        earlier = self.target.earlier_support
        found = (e.support for e in earlier if (e.address, e.port, e.after_stls) == wanted)
        return next(found, None)

    def _exchange(self, port: int, upgrade: Dialect | None) -> Exchange:
        """How the enumeration reaches the entry point: each hello on a new connection,
        straight away on an implicit-TLS port, after the upgrade on a cleartext one."""

        async def exchange(hello: Callable[[LineConnection], Awaitable[T]]) -> T:
            async def talk(connection: LineConnection) -> T:
                if upgrade is not None:
                    await upgrade.request_upgrade(connection)
                return await hello(connection)

            kind = upgrade.kind if upgrade else LineConnection
            return await self.converse(port, talk, kind=kind)

        return exchange


async def probe_upgrade(session: AddressSession, dialect: Dialect) -> StlsFacts:
    """STLS/STARTTLS on the protocol's cleartext port, then its capabilities inside TLS;
    trouble is recorded, not raised."""
    port, _ = session.target.ports(dialect.protocol)
    said: list[str] = []

    async def talk(connection: Any) -> StlsFacts:
        await dialect.read_greeting(connection)
        granted, reply = await dialect.ask_upgrade(connection)
        said.append(reply)
        if not granted:
            await dialect.say_goodbye(connection)
            return StlsFacts(outcome="ok", reply=reply)
        await connection.start_tls(probe_context(), session.sni)
        tls = tls_facts(connection.ssl_object)
        connection.step = f"{dialect.protocol.capabilities_command} inside TLS"
        capabilities = await dialect.read_capabilities(connection)
        await dialect.say_goodbye(connection)
        return StlsFacts(outcome="ok", reply=reply, tls=tls, capabilities=capabilities)

    try:
        return await session.converse(port, talk, kind=dialect.kind, record="upgrade")
    except ScanError as exc:
        return StlsFacts(outcome=exc.outcome, error=str(exc), reply=said[0] if said else None)  # type: ignore[arg-type]


async def with_upgrade_support(
    session: AddressSession, upgrade: StlsFacts, dialect: Dialect
) -> StlsFacts:
    """The STLS/STARTTLS facts with what TLS after the upgrade accepts, wherever the upgrade
    was granted (even when the local OpenSSL could not complete a handshake: an SSLv3-only
    server is still found)."""
    if upgrade.tls is None and upgrade.outcome != "tls_error":
        return upgrade
    port, _ = session.target.ports(dialect.protocol)
    support = await session.tls_support(port, upgrade=dialect, session=upgrade.tls)
    return replace(upgrade, support=reconciled(support, upgrade.tls))


async def read_greeting(connection: Pop3Connection) -> Reply:
    """The server's first line; it must be `+OK`."""
    connection.step = "greeting"
    reply = await connection.read_reply()
    if not reply.ok:
        raise ProtocolError("greeting", "the server refused the session", reply.line)
    return reply


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
