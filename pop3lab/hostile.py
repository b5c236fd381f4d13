"""Hostile servers: small misbehaviours that a robust scanner must survive and report.

Each behaviour is one coroutine over (reader, writer), selected by name through
`HostileConfig(behaviour)` and started with the same `Lab.start` as emulated endpoints. The
same behaviour answers on every port it is switched on for, in that port's protocol (POP3,
IMAP4 or SMTP submission: its greeting, its capability list, its upgrade; pop3lab._mini);
point the scanner at the one that makes sense (e.g. `reset_mid_handshake` on a TLS port,
`stls_refused` on a cleartext one). Every behaviour ends by itself after `MAX_SECONDS`, so a
forgotten client cannot pin a connection forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from pop3lab import _mini, ntlm
from pop3lab._clienthello import parse_offer
from pop3lab._mini import Hook, Turn
from pop3lab.journal import ConnectionLog
from pop3lab.server import Handler

# A behaviour gets the connection, its config and the protocol of the port (pop3, imap or
# submission).
Behaviour = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, "HostileConfig", str], Awaitable[None]
]

MAX_SECONDS = 600.0
HUGE_LINE_BYTES = 10 * 1024 * 1024
# The NTLM challenge of ntlm_huge: far more than any real one (a few hundred bytes).
HUGE_NTLM_BYTES = 1024 * 1024
# endless_line streams CHUNK bytes every `interval / 100` seconds: ~100 KB/s at the default.
CHUNK = 1024


@dataclass(frozen=True)
class HostileConfig:
    """A misbehaving endpoint. `interval` paces the slow behaviours (seconds per step)."""

    behaviour: str
    pop3: bool = True
    pop3s: bool = True
    # The same behaviour on the IMAP and submission ports, in those protocols.
    imap: bool = False
    imaps: bool = False
    submission: bool = False
    submissions: bool = False
    interval: float = 1.0
    # The tls_* behaviours answer the ClientHello straight away (an implicit-TLS port), or
    # with `after_stls` once the port's dialogue has accepted STLS or STARTTLS.
    after_stls: bool = False

    def __post_init__(self) -> None:
        """Fail on a typo at construction, not when the first client connects."""
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; known: {sorted(BEHAVIOURS)}")
        if self.interval <= 0:
            raise ValueError("interval must be positive")


def handler(config: HostileConfig, service: str) -> Handler:
    """The connection handler for `config` on `service` (pop3lab.config.SERVICES): its
    behaviour in that service's protocol, bounded in time, errors swallowed."""
    behaviour = BEHAVIOURS[config.behaviour]
    # pop3s, imaps and submissions speak pop3, imap and submission inside TLS.
    protocol = service.removesuffix("s")

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        # The log records every byte (none of these behaviours ever completes TLS); it needs
        # nothing from the behaviour itself.
        try:
            async with asyncio.timeout(MAX_SECONDS):
                await behaviour(reader, writer, config, protocol)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


def _noise() -> bytes:
    """CHUNK random bytes whose first byte (0xFF) is no TLS record type, ending in a newline.

    Pure randomness would sometimes look like a TLS record header announcing a long record,
    and the client would wait for the rest instead of failing; and about one chunk in fifty
    holds no newline, so a client reading a line would wait for more noise that comes only
    when it speaks. Tests want the failure, every time.
    """
    return b"\xff" + os.urandom(CHUNK - 2) + b"\n"


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Swallow whatever the client sends until it hangs up."""
    while await reader.read(4096):
        pass


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


def _greeting(protocol: str) -> bytes:
    return f"{_mini.GREETINGS[protocol]}\r\n".encode()


async def no_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Accept and say nothing at all."""
    await _until_eof(reader)


async def slow_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Send a valid greeting one byte per `interval`."""
    greeting = _greeting(protocol)
    for index in range(len(greeting)):
        await _send(writer, greeting[index : index + 1])
        await asyncio.sleep(config.interval)
    await _until_eof(reader)


async def endless_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A greeting that never ends: bytes without a newline, throttled to spare the CPU."""
    await _send(writer, _mini.OPENINGS[protocol].encode())
    chunk = b"A" * CHUNK
    while not writer.is_closing():
        await _send(writer, chunk)
        await asyncio.sleep(config.interval / 100)


async def huge_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A 10 MB greeting line, then silence."""
    await _send(writer, _mini.OPENINGS[protocol].encode())
    chunk = b"x" * 65536
    for _ in range(HUGE_LINE_BYTES // len(chunk)):
        await _send(writer, chunk)
    await _send(writer, b"\r\n")
    await _until_eof(reader)


async def garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Random binary instead of a greeting, and more of it for every line the client sends."""
    await _send(writer, _noise())
    while await reader.read(4096):
        await _send(writer, _noise())


async def close_after_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A normal greeting, then a hang-up at the client's first command, or after a second
    when none comes. Closing at once raced that command: arriving after the close, it drew a
    reset instead of the end of the stream, so the client saw "reset" one time, "closed"
    the next."""
    await _send(writer, _greeting(protocol))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.readline(), timeout=1.0)


async def non_tls_on_tls_port(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A plaintext greeting where a TLS handshake is expected; the ClientHello is refused as
    a command would be."""
    await _send(writer, _greeting(protocol))
    if await reader.read(4096):
        await Turn(reader, writer, protocol, "*").say("refused")


async def reset_mid_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Read the ClientHello, then reset the connection (SO_LINGER 0 makes close send RST)."""
    await reader.read(4096)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def stls_refused(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """CAPA, CAPABILITY or EHLO lists STLS or STARTTLS, but the upgrade itself is refused."""
    await _mini.converse(reader, writer, protocol, {"upgrade": _mini.refuse_upgrade})


async def stls_garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """STLS or STARTTLS is accepted, then random bytes answer the ClientHello instead of a
    ServerHello."""
    if await _mini.converse(reader, writer, protocol, {}):
        # Wait for the ClientHello: noise sent earlier could share a segment with the +OK
        # and be swallowed by the client's line reader, hanging it instead of failing it.
        if await reader.read(4096):
            await _send(writer, _noise())
        await _until_eof(reader)


# --- Capability lists and NTLM challenges a robust client must survive: each behaviour is
# the port's normal dialogue with one step spoilt.


async def huge_capabilities(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """CAPA, CAPABILITY or EHLO answered with one 10 MB capability line."""

    async def answer(turn: Turn) -> bool:
        head, prefix, tail = turn.frame
        await turn.send(head + prefix)
        chunk = b"X" * 65536
        for _ in range(HUGE_LINE_BYTES // len(chunk)):
            await _send(writer, chunk)
        await turn.send("\r\n" + tail)
        return True

    await _mini.converse(reader, writer, protocol, {"capabilities": answer})


async def endless_capabilities(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """CAPA, CAPABILITY or EHLO answered with capability lines that never end: CAPA's body
    without its dot, untagged IMAP lines and never the tagged OK, `250-` lines and never the
    last `250 `. Throttled like endless_line."""

    async def answer(turn: Turn) -> bool:
        head, prefix, _ = turn.frame
        await turn.send(head)
        lines = f"{prefix}{'A' * 60}\r\n" * (CHUNK // 64)
        while not writer.is_closing():
            await turn.send(lines)
            await asyncio.sleep(config.interval / 100)
        return False

    await _mini.converse(reader, writer, protocol, {"capabilities": answer})


def _ntlm_behaviour(name: str, challenge: Callable[[], Iterable[str]], doc: str) -> Behaviour:
    """The behaviour `name`, whose port lists NTLM and answers the client's NEGOTIATE with
    the parts of `challenge()` (base64 text, or something else) on one line; the upgrade is
    refused, since these ports speak no TLS."""

    async def answer(turn: Turn) -> bool:
        await turn.say("continue")
        if not await turn.reader.readline():  # the NEGOTIATE
            return False
        await turn.send(turn.continuation)
        for part in challenge():
            await turn.send(part)
        await turn.send("\r\n")
        if not await turn.reader.readline():  # `*`, cancelling the exchange
            return False
        await turn.say("cancelled")
        return True

    async def behaviour(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: HostileConfig,
        protocol: str,
    ) -> None:
        hooks: dict[str, Hook] = {"ntlm": answer, "upgrade": _mini.refuse_upgrade}
        await _mini.converse(reader, writer, protocol, hooks)

    behaviour.__name__ = behaviour.__qualname__ = name
    behaviour.__doc__ = doc
    return behaviour


def _windows_challenge() -> bytes:
    """A well-formed CHALLENGE as Windows sends it, for the behaviours to spoil."""
    return ntlm.challenge(
        ntlm.NtlmNames(),
        (10, 0, 17763),
        ntlm.UNICODE,
        now=time.time(),
        server_challenge=os.urandom(8),
    )


def _absurd_offsets() -> bytes:
    """The CHALLENGE with its target name and target info fields claiming 64 KB each, at
    offsets 4 GB into the message (MS-NLMP 2.2.1.2: lengths at bytes 12 and 40)."""
    message = bytearray(_windows_challenge())
    struct.pack_into("<HHI", message, 12, 0xFFFF, 0xFFFF, 0xFFFFFFF0)
    struct.pack_into("<HHI", message, 40, 0xFFFF, 0xFFFF, 0xFFFFFFFF)
    return bytes(message)


def _b64(blob: bytes) -> list[str]:
    return [base64.b64encode(blob).decode("ascii")]


def _huge_zeros() -> Iterator[str]:
    """HUGE_NTLM_BYTES (rounded up to whole base64 groups) of zeros in base64, streamed in
    64 KB parts so that the lab never holds it whole."""
    groups = -(-HUGE_NTLM_BYTES // 3)
    for start in range(0, 4 * groups, 65536):
        yield "A" * min(65536, 4 * groups - start)


ntlm_not_base64 = _ntlm_behaviour(
    "ntlm_not_base64",
    lambda: ["TlRMTVNTUAACAAAA%%not*base64%%"],
    "An NTLM challenge that is not base64.",
)
ntlm_truncated = _ntlm_behaviour(
    "ntlm_truncated",
    lambda: _b64(_windows_challenge()[:80]),
    "A real NTLM challenge cut short: its target info lies past the end of the message.",
)
ntlm_absurd_offsets = _ntlm_behaviour(
    "ntlm_absurd_offsets",
    lambda: _b64(_absurd_offsets()),
    "An NTLM challenge whose fields claim absurd lengths and offsets.",
)
ntlm_huge = _ntlm_behaviour(
    "ntlm_huge",
    _huge_zeros,
    "An NTLM challenge of 1 MB (one line of 1.4 MB in base64).",
)


# --- TLS answers a robust client must survive: each replies to the ClientHello on the TLS
# port (implicit TLS), or after an accepted STLS or STARTTLS on the cleartext one.


async def _client_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> bytes:
    """The client's hello (read after an accepted STLS or STARTTLS when `config.after_stls`);
    empty when none came."""
    if config.after_stls and not await _mini.converse(reader, writer, protocol, {}):
        return b""
    return await reader.read(65536)


def _server_hello(version: int, suite: int) -> bytes:
    """A TLS 1.2-shaped ServerHello record naming `version` and `suite`."""
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00" + struct.pack("!HB", suite, 0)
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0x0303, len(message)) + message


async def tls_suite_not_offered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A ServerHello that picks a suite no client offers (0x1337 is unassigned)."""
    if await _client_hello(reader, writer, config, protocol):
        await _send(writer, _server_hello(0x0303, 0x1337))
        await _until_eof(reader)


async def tls_version_not_offered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A ServerHello with a version nobody offers (0x7F7F) and a real suite."""
    if await _client_hello(reader, writer, config, protocol):
        await _send(writer, _server_hello(0x7F7F, 0xC02F))
        await _until_eof(reader)


async def tls_truncated_record(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A handshake record header announcing 100 bytes, 10 of them, then the hang-up."""
    if await _client_hello(reader, writer, config, protocol):
        await _send(writer, struct.pack("!BHH", 22, 0x0303, 100) + os.urandom(10))


async def tls_huge_message(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A handshake message claiming 16 MB, then records of filler for as long as the client
    listens: a client that believed the length would wait for, and hold, all of it."""
    if await _client_hello(reader, writer, config, protocol):
        await _send(writer, struct.pack("!BHH", 22, 0x0303, 4) + b"\x02\xff\xff\xff")
        filler = struct.pack("!BHH", 22, 0x0303, 16384) + bytes(16384)
        while not writer.is_closing():
            await _send(writer, filler)
            await asyncio.sleep(config.interval / 100)


async def tls_alert_storm(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Warning alerts, one after another, and never a ServerHello."""
    if await _client_hello(reader, writer, config, protocol):
        alert = struct.pack("!BHHBB", 21, 0x0303, 2, 1, 90)
        while not writer.is_closing():
            await _send(writer, alert * 64)
            await asyncio.sleep(config.interval / 100)


async def tls_silent_after_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """Read the ClientHello and never answer it."""
    if await _client_hello(reader, writer, config, protocol):
        await _until_eof(reader)


async def tls_small_hellos_only(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """A TLS 1.2-only server that refuses any hello offering 128 suites or more (as some
    terminators do), and serves ECDHE-RSA-AES128-GCM and RSA-3DES to shorter ones."""
    hello = await _client_hello(reader, writer, config, protocol)
    if not hello or hello[0] != 22:
        return
    offer = parse_offer(hello[9:])  # past the record and handshake headers
    served = [code for code in (0xC02F, 0x000A) if code in offer.suites]
    if offer.versions[:1] != ("TLSv1.2",) or len(offer.suites) >= 128 or not served:
        await _send(writer, struct.pack("!BHHBB", 21, 0x0303, 2, 2, 40))
    else:
        await _send(writer, _server_hello(0x0303, served[0]))
    await _until_eof(reader)


async def sslv2_without_ciphers(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig, protocol: str
) -> None:
    """An SSL 2.0 SERVER-HELLO listing no cipher (an OpenSSL with SSLv2's ciphers disabled
    but the protocol on, CVE-2015-3197); every TLS hello gets handshake_failure."""
    hello = await reader.read(65536)
    if hello[:1] and hello[0] & 0x80:
        body = struct.pack("!BBBHHHH", 4, 0, 1, 0x0002, 0, 0, 16) + os.urandom(16)
        await _send(writer, struct.pack("!H", 0x8000 | len(body)) + body)
    elif hello:
        await _send(writer, struct.pack("!BHHBB", 21, 0x0303, 2, 2, 40))
    await _until_eof(reader)


BEHAVIOURS: dict[str, Behaviour] = {
    behaviour.__name__: behaviour
    for behaviour in (
        no_banner,
        slow_banner,
        endless_line,
        huge_line,
        garbage,
        close_after_banner,
        non_tls_on_tls_port,
        reset_mid_handshake,
        stls_refused,
        stls_garbage,
        huge_capabilities,
        endless_capabilities,
        ntlm_not_base64,
        ntlm_truncated,
        ntlm_absurd_offsets,
        ntlm_huge,
        tls_suite_not_offered,
        tls_version_not_offered,
        tls_truncated_record,
        tls_huge_message,
        tls_alert_storm,
        tls_silent_after_hello,
        tls_small_hellos_only,
        sslv2_without_ciphers,
    )
}
