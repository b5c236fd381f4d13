"""Hostile servers: small misbehaviours that a robust scanner must survive and report.

Each behaviour is one coroutine over (reader, writer), selected by name through
`HostileConfig(behaviour)` and started with the same `Lab.start` as emulated endpoints. The
same behaviour answers on both ports; point the scanner at the one that makes sense (e.g.
`reset_mid_handshake` on the POP3S port, `stls_refused` on the POP3 port). Every behaviour
ends by itself after `MAX_SECONDS`, so a forgotten client cannot pin a connection forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pop3lab._clienthello import parse_offer
from pop3lab.journal import ConnectionLog
from pop3lab.server import Handler

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "HostileConfig"], Awaitable[None]]

GREETING = b"+OK The Microsoft Exchange POP3 service is ready.\r\n"
MAX_SECONDS = 600.0
HUGE_LINE_BYTES = 10 * 1024 * 1024
# endless_line streams CHUNK bytes every `interval / 100` seconds: ~100 KB/s at the default.
CHUNK = 1024


@dataclass(frozen=True)
class HostileConfig:
    """A misbehaving endpoint. `interval` paces the slow behaviours (seconds per step)."""

    behaviour: str
    pop3: bool = True
    pop3s: bool = True
    # The same behaviour on the IMAP and submission ports, for those protocols' probes.
    imap: bool = False
    imaps: bool = False
    submission: bool = False
    submissions: bool = False
    interval: float = 1.0
    # The tls_* behaviours answer the ClientHello straight away (an implicit-TLS port), or
    # with `after_stls` once a POP3 dialogue has accepted STLS.
    after_stls: bool = False

    def __post_init__(self) -> None:
        """Fail on a typo at construction, not when the first client connects."""
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; known: {sorted(BEHAVIOURS)}")
        if self.interval <= 0:
            raise ValueError("interval must be positive")


def handler(config: HostileConfig) -> Handler:
    """The connection handler for `config`: its behaviour, bounded in time, errors swallowed."""
    behaviour = BEHAVIOURS[config.behaviour]

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        # The log records every byte (none of these behaviours ever completes TLS); it needs
        # nothing from the behaviour itself.
        try:
            async with asyncio.timeout(MAX_SECONDS):
                await behaviour(reader, writer, config)
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


async def no_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Accept and say nothing at all."""
    await _until_eof(reader)


async def slow_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Send a valid greeting one byte per `interval`."""
    for index in range(len(GREETING)):
        await _send(writer, GREETING[index : index + 1])
        await asyncio.sleep(config.interval)
    await _until_eof(reader)


async def endless_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A greeting that never ends: bytes without a newline, throttled to spare the CPU."""
    await _send(writer, b"+OK ")
    chunk = b"A" * CHUNK
    while not writer.is_closing():
        await _send(writer, chunk)
        await asyncio.sleep(config.interval / 100)


async def huge_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A 10 MB greeting line, then silence."""
    await _send(writer, b"+OK ")
    chunk = b"x" * 65536
    for _ in range(HUGE_LINE_BYTES // len(chunk)):
        await _send(writer, chunk)
    await _send(writer, b"\r\n")
    await _until_eof(reader)


async def garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Random binary instead of a greeting, and more of it for every line the client sends."""
    await _send(writer, _noise())
    while await reader.read(4096):
        await _send(writer, _noise())


async def close_after_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A normal greeting, then a hang-up at the client's first command, or after a second
    when none comes. Closing at once raced that command: arriving after the close, it drew a
    reset instead of the end of the stream, so the client saw "reset" one time, "closed"
    the next."""
    await _send(writer, GREETING)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.readline(), timeout=1.0)


async def non_tls_on_tls_port(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A plaintext greeting where a TLS handshake is expected; the ClientHello gets an -ERR."""
    await _send(writer, GREETING)
    if await reader.read(4096):
        await _send(writer, b"-ERR Protocol error.\r\n")


async def reset_mid_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Read the ClientHello, then reset the connection (SO_LINGER 0 makes close send RST)."""
    await reader.read(4096)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def stls_refused(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """CAPA advertises STLS, but STLS itself is refused."""
    await _mini_pop3(reader, writer, b"-ERR Command is not valid in this state.\r\n")


async def stls_garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """STLS is accepted, then random bytes answer the ClientHello instead of a ServerHello."""
    if await _mini_pop3(reader, writer, b"+OK Begin TLS negotiation.\r\n"):
        # Wait for the ClientHello: noise sent earlier could share a segment with the +OK
        # and be swallowed by the client's line reader, hanging it instead of failing it.
        if await reader.read(4096):
            await _send(writer, _noise())
        await _until_eof(reader)


_MINI_REPLIES = {
    b"CAPA": b"+OK\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n",
    b"USER": b"-ERR Command is not valid in this state.\r\n",
}


async def _mini_pop3(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stls_reply: bytes
) -> bool:
    """A SecureLogin-like dialogue; True once STLS is accepted, False when the client leaves."""
    await _send(writer, GREETING)
    while line := await reader.readline():
        verb = line.strip().split(b" ", 1)[0].upper()
        if verb == b"STLS":
            await _send(writer, stls_reply)
            if stls_reply.startswith(b"+OK"):
                return True
            continue
        if verb == b"QUIT":
            await _send(writer, b"+OK Microsoft Exchange Server 2016 POP3 server signing off.\r\n")
            return False
        await _send(writer, _MINI_REPLIES.get(verb, b"-ERR Protocol error.\r\n"))
    return False


# --- TLS answers a robust client must survive: each replies to the ClientHello on the TLS
# port (implicit TLS), or after an accepted STLS on the POP3 port.


async def _client_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> bytes:
    """The client's hello (read after an accepted STLS when `config.after_stls`); empty when
    none came."""
    if config.after_stls and not await _mini_pop3(
        reader, writer, b"+OK Begin TLS negotiation.\r\n"
    ):
        return b""
    return await reader.read(65536)


def _server_hello(version: int, suite: int) -> bytes:
    """A TLS 1.2-shaped ServerHello record naming `version` and `suite`."""
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00" + struct.pack("!HB", suite, 0)
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0x0303, len(message)) + message


async def tls_suite_not_offered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A ServerHello that picks a suite no client offers (0x1337 is unassigned)."""
    if await _client_hello(reader, writer, config):
        await _send(writer, _server_hello(0x0303, 0x1337))
        await _until_eof(reader)


async def tls_version_not_offered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A ServerHello with a version nobody offers (0x7F7F) and a real suite."""
    if await _client_hello(reader, writer, config):
        await _send(writer, _server_hello(0x7F7F, 0xC02F))
        await _until_eof(reader)


async def tls_truncated_record(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A handshake record header announcing 100 bytes, 10 of them, then the hang-up."""
    if await _client_hello(reader, writer, config):
        await _send(writer, struct.pack("!BHH", 22, 0x0303, 100) + os.urandom(10))


async def tls_huge_message(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A handshake message claiming 16 MB, then records of filler for as long as the client
    listens: a client that believed the length would wait for, and hold, all of it."""
    if await _client_hello(reader, writer, config):
        await _send(writer, struct.pack("!BHH", 22, 0x0303, 4) + b"\x02\xff\xff\xff")
        filler = struct.pack("!BHH", 22, 0x0303, 16384) + bytes(16384)
        while not writer.is_closing():
            await _send(writer, filler)
            await asyncio.sleep(config.interval / 100)


async def tls_alert_storm(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Warning alerts, one after another, and never a ServerHello."""
    if await _client_hello(reader, writer, config):
        alert = struct.pack("!BHHBB", 21, 0x0303, 2, 1, 90)
        while not writer.is_closing():
            await _send(writer, alert * 64)
            await asyncio.sleep(config.interval / 100)


async def tls_silent_after_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """Read the ClientHello and never answer it."""
    if await _client_hello(reader, writer, config):
        await _until_eof(reader)


async def tls_small_hellos_only(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
) -> None:
    """A TLS 1.2-only server that refuses any hello offering 128 suites or more (as some
    terminators do), and serves ECDHE-RSA-AES128-GCM and RSA-3DES to shorter ones."""
    hello = await _client_hello(reader, writer, config)
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
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: HostileConfig
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
