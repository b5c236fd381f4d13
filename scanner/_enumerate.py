"""What a TLS entry point accepts, asked the way testssl.sh asks it: protocol-level hellos.

For each version, offer every suite of the registry that version can carry; the server picks
one; remove it and offer the rest again, until the server refuses. The cost grows with the
suites the server accepts, not with the registry. Then, from what was accepted: whether the
server enforces its own order, its key exchange groups, its DH prime size. Every hello is a
fresh connection (after a fresh STLS on the cleartext port), within the session's deadline
and connection cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scanner._errors import ProbeTimeout, ProtocolError, ScanError
from scanner._facts import TlsSupport
from scanner._hello import (
    ALL_GROUPS,
    ELLIPTIC_GROUPS,
    GROUPS,
    Offer,
    ServerAnswer,
    client_hello,
    read_answer,
    read_sslv2_answer,
    sslv2_client_hello,
)
from scanner._suites import BY_CODE, PROTOCOLS, SSLV2_BY_CODE, SSLV2_CIPHERS, suites_for
from scanner._wire import LineConnection

# Opens a fresh connection ready for a ClientHello (after STLS where that is the way in), runs
# the exchange on it and closes it, all under the session's deadline and connection cap.
Exchange = Callable[[Callable[[LineConnection], Awaitable[object]]], Awaitable[object]]

_TLS_PROTOCOLS = PROTOCOLS[1:]


class _Stalled(Exception):
    """The entry point stopped answering while this hello waited for a connection."""


@dataclass
class _Enumeration:
    """One entry point's enumeration in progress: the hellos sent and the first error. Once
    a hello goes unanswered until the deadline, the rest are not sent: the entry point has
    stopped answering, and waiting out a deadline per hello would take minutes."""

    exchange: Exchange
    sni: str | None
    hellos: int = 0
    errors: list[str] = field(default_factory=list)
    answers: list[ServerAnswer] = field(default_factory=list)
    stalled: bool = False
    long_hello_answered: bool = False

    async def send(self, hello: Callable[[LineConnection], Awaitable[object]]) -> object | None:
        """Run one hello's exchange; None (and the error kept) when it broke off. A hello
        that got its connection only after the entry point stalled is dropped unsent."""

        async def unless_stalled(connection: LineConnection) -> object:
            if self.stalled:
                raise _Stalled
            return await hello(connection)

        if self.stalled:
            return None
        self.hellos += 1
        try:
            return await self.exchange(unless_stalled)
        except _Stalled:
            pass
        except ProbeTimeout as exc:
            self.stalled = True
            self.errors.append(str(exc))
        except ScanError as exc:
            self.errors.append(str(exc))
        return None

    async def ask(self, offer: Offer, *, want_key_exchange: bool = False) -> ServerAnswer | None:
        """The server's answer to one hello; None (and the error kept) when it broke off."""

        async def hello(connection: LineConnection) -> ServerAnswer:
            connection.step = f"{offer.protocol} hello"
            await _send_hello(connection, client_hello(offer))
            return await read_answer(connection.reader, offer, want_key_exchange=want_key_exchange)

        answer = await self.send(hello)
        if answer is None:
            return None
        assert isinstance(answer, ServerAnswer)
        self.answers.append(answer)
        return answer

    def offer(self, protocol: str, suites: list[int], **changes: object) -> Offer:
        values: dict[str, object] = {"sni": self.sni, "compression": protocol != "TLSv1.3"}
        values.update(changes)
        return Offer(protocol, tuple(suites), **values)  # type: ignore[arg-type]


async def enumerate_tls(exchange: Exchange, sni: str | None) -> TlsSupport:
    """Every version, suite and parameter the entry point accepts (see the module doc)."""
    # To the second, as the JSON keeps it: a result reused from storage is equal to the fresh.
    measured_at = datetime.now(UTC).replace(microsecond=0)
    clock = time.monotonic()
    run = _Enumeration(exchange, sni)
    listings = await asyncio.gather(
        _sslv2(run), *(_suites_of(run, protocol) for protocol in _TLS_PROTOCOLS)
    )
    by_version = dict(zip(PROTOCOLS, listings, strict=True))
    accepted = {name: listing.codes for name, listing in by_version.items()}
    server_order, groups, dh_bits = await asyncio.gather(
        _server_order(run, accepted), _groups(run, accepted), _dh_bits(run, accepted)
    )
    legacy = [a for a in run.answers if a.accepted and a.protocol not in (None, "TLSv1.3")]
    return TlsSupport(
        # A version whose listing broke off is "could not be tested", whatever it showed.
        accepted_versions={
            name: listing.spoken if listing.complete else None
            for name, listing in by_version.items()
        },
        cipher_suites={name: _names(name, codes) for name, codes in accepted.items() if codes},
        server_order=server_order,
        groups=groups,
        dh_bits=dh_bits,
        compression=any(a.compression for a in legacy) if legacy else None,
        secure_renegotiation=any(a.secure_renegotiation for a in legacy) if legacy else None,
        error=run.errors[0] if run.errors else None,
        hellos=run.hellos,
        duration_ms=round((time.monotonic() - clock) * 1000),
        measured_at=measured_at,
        answers_long_hellos=run.long_hello_answered,
    )


async def still_accurate(exchange: Exchange, sni: str | None, earlier: TlsSupport) -> bool:
    """Whether an earlier enumeration still holds, at a fraction of its cost: per version one
    hello offering every suite it did not accept then (and SSLv2 once, if it was refused).
    Any of them accepted, or any that could not be asked, means it no longer holds. A suite
    the server has dropped since is not noticed: the old list then fails where the server
    would pass, until the next full enumeration, never the other way round."""
    run = _Enumeration(exchange, sni)

    async def nothing_new(protocol: str) -> bool:
        listed = set(earlier.cipher_suites.get(protocol, ()))
        others = [suite.code for suite in suites_for(protocol) if suite.name not in listed]
        if not others:
            return True
        trusted = earlier.answers_long_hellos
        answer, _ = await _ask_any(run, protocol, others, in_parts=False, trust_refusal=trusted)
        return answer is not None and not (answer.accepted and answer.protocol == protocol)

    async def still_no_sslv2() -> bool:
        if earlier.accepted_versions.get("SSLv2") is True:
            return True
        listing = await _sslv2(run)
        return listing.complete and not listing.spoken

    checks = await asyncio.gather(still_no_sslv2(), *map(nothing_new, _TLS_PROTOCOLS))
    return all(checks)


def _names(protocol: str, codes: list[int]) -> tuple[str, ...]:
    if protocol == "SSLv2":
        return tuple(
            SSLV2_BY_CODE[code].name if code in SSLV2_BY_CODE else f"0x{code:06X}" for code in codes
        )
    return tuple(BY_CODE[code].name for code in codes)


async def _send_hello(connection: LineConnection, hello: bytes) -> None:
    """Write a hello; a server that resets the connection meanwhile is a ProtocolError."""
    connection.writer.write(hello)
    try:
        await connection.writer.drain()
    except OSError:
        raise ProtocolError(connection.step, "the server reset the connection") from None


@dataclass(frozen=True)
class Listing:
    """What one version accepts: the suites seen, in the order the server chose them,
    whether the version is spoken (None: could not tell), and whether the list is complete
    (False when the server broke off: there may be more)."""

    codes: list[int]
    spoken: bool | None
    complete: bool = True


# Some servers refuse a hello with 128 suites or more (testssl.sh splits its hellos for
# them); a refused hello that long is offered again in parts before the version counts as
# refused. 126, because the renegotiation SCSV rides along as one more.
MAX_SUITES_PER_HELLO = 126


async def _suites_of(run: _Enumeration, protocol: str) -> Listing:
    """The suites accepted at `protocol`; none when the version is refused."""
    remaining = [suite.code for suite in suites_for(protocol)]
    chosen: list[int] = []
    in_parts = False
    while remaining:
        answer, in_parts = await _ask_any(run, protocol, remaining, in_parts)
        if answer is None:
            return Listing(chosen, bool(chosen) or None, complete=False)
        if not answer.accepted or answer.protocol != protocol:
            break
        assert answer.suite is not None
        chosen.append(answer.suite)
        remaining.remove(answer.suite)
    return Listing(chosen, bool(chosen))


async def _ask_any(
    run: _Enumeration,
    protocol: str,
    codes: list[int],
    in_parts: bool,
    *,
    trust_refusal: bool = False,
) -> tuple[ServerAnswer | None, bool]:
    """The server's pick among `codes`: one hello with all of them, unless that long a hello
    was refused (then, and from then on, in parts of MAX_SUITES_PER_HELLO). A refusal is
    taken as it is with `trust_refusal`: the server is known to answer long hellos. Returns
    the answer and whether this version is now asked in parts."""
    if not in_parts:
        answer = await run.ask(run.offer(protocol, codes))
        refused = answer is not None and answer.suite is None
        long = len(codes) > MAX_SUITES_PER_HELLO
        if long and answer is not None and not refused:
            run.long_hello_answered = True
        if not refused or not long or trust_refusal:
            return answer, False
    for start in range(0, len(codes), MAX_SUITES_PER_HELLO):
        part = codes[start : start + MAX_SUITES_PER_HELLO]
        answer = await run.ask(run.offer(protocol, part, compression=False))
        if answer is None or answer.accepted:
            return answer, True
    return answer, True


async def _sslv2(run: _Enumeration) -> Listing:
    """SSL 2.0 lists every cipher it would use in one SERVER-HELLO."""
    offered = tuple(cipher.code for cipher in SSLV2_CIPHERS)

    async def hello(connection: LineConnection) -> tuple[list[int] | None]:
        connection.step = "SSLv2 hello"
        await _send_hello(connection, sslv2_client_hello(offered))
        return (await read_sslv2_answer(connection.reader),)

    result = await run.send(hello)
    if result is None:
        return Listing([], None, complete=False)
    assert isinstance(result, tuple)
    ciphers = result[0]
    return Listing(ciphers or [], ciphers is not None)


def _newest(accepted: dict[str, list[int]], wanted: Callable[[int], bool]) -> str | None:
    """The newest TLS version (up to 1.2) with an accepted suite that `wanted` picks."""
    for protocol in ("TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3"):
        if any(wanted(code) for code in accepted.get(protocol, ())):
            return protocol
    return None


async def _server_order(run: _Enumeration, accepted: dict[str, list[int]]) -> bool | None:
    """Offer the accepted suites of the newest version in reverse: a server that enforces its
    own order picks the same suite again, one that follows ours picks our new first."""
    for protocol in reversed(_TLS_PROTOCOLS):
        codes = accepted.get(protocol, [])
        if len(codes) >= 2:
            answer = await run.ask(run.offer(protocol, codes[::-1]))
            if answer is None or answer.suite not in (codes[0], codes[-1]):
                return None
            return answer.suite == codes[0]
    return None


async def _groups(run: _Enumeration, accepted: dict[str, list[int]]) -> tuple[str, ...]:
    """The key exchange groups, by elimination like the suites: TLS 1.3 names its group in
    the ServerHello (or asks for it in a HelloRetryRequest); older versions in the
    ServerKeyExchange of an ECDHE suite."""
    protocol = "TLSv1.3"
    suites = accepted.get("TLSv1.3", [])
    remaining = list(ALL_GROUPS)
    if not suites:
        older = _newest(accepted, lambda code: BY_CODE[code].elliptic_curve)
        if older is None:
            return ()
        protocol = older
        suites = [code for code in accepted[protocol] if BY_CODE[code].elliptic_curve]
        remaining = list(ELLIPTIC_GROUPS)
    found: list[int] = []
    while remaining:
        offer = run.offer(protocol, suites, groups=tuple(remaining))
        answer = await run.ask(offer, want_key_exchange=True)
        if answer is None or answer.group not in remaining:
            break
        found.append(answer.group)
        remaining.remove(answer.group)
    return tuple(GROUPS[code] for code in found)


async def _dh_bits(run: _Enumeration, accepted: dict[str, list[int]]) -> int | None:
    """The size of the prime of a DHE exchange: first offered without RFC 7919 groups, so the
    server shows the parameters an older client gets; a server that has none of its own
    serves DHE only with those groups, and then their size is the answer."""
    protocol = _newest(accepted, lambda code: BY_CODE[code].sends_dh_prime)
    if protocol is None:
        return None
    suites = [code for code in accepted[protocol] if BY_CODE[code].sends_dh_prime]
    for groups in (ELLIPTIC_GROUPS, ALL_GROUPS):
        answer = await run.ask(run.offer(protocol, suites, groups=groups), want_key_exchange=True)
        if answer is not None and answer.dh_bits is not None:
            return answer.dh_bits
    return None
