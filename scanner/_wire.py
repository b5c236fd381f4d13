"""Mail protocols on the wire: a line connection whose every read is bounded, and POP3's
replies on it (IMAP's and SMTP's are in scanner._imap and scanner._submission).

Reads are bounded in bytes here (a line may not exceed MAX_LINE, a multi-line reply
MAX_MULTILINE) and in time by the caller, which wraps each whole conversation in one deadline.
Together they keep a hostile server from hanging a scan or growing its memory.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import dataclass
from typing import Self

from scanner._errors import (
    CleartextCredentialsError,
    ConnectionClosedPort,
    ProtocolError,
    ScanError,
    TlsHandshakeError,
    Unreachable,
    quoted,
)
from scanner._transcript import Transcript, handshake_line

# RFC 2449 limits a reply line to 512 octets; allow slack for servers that stretch it, but no
# more: a server that sends longer lines is broken or hostile.
MAX_LINE = 4096
# CAPA is the only multi-line reply we read; real ones are a few hundred bytes.
MAX_MULTILINE = 64 * 1024

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


@dataclass(frozen=True)
class Reply:
    """A POP3 status line: `+OK text`, `-ERR text`, or a SASL continuation `+ data`."""

    ok: bool
    continuation: bool
    text: str
    line: str


def parse_reply(line: bytes) -> Reply:
    """Parse one status line; raise ValueError when it is not a POP3 reply at all."""
    text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
    upper = text.upper()
    if upper == "+OK" or upper.startswith("+OK "):
        return Reply(ok=True, continuation=False, text=text[4:], line=text)
    if upper == "-ERR" or upper.startswith("-ERR "):
        return Reply(ok=False, continuation=False, text=text[5:], line=text)
    if text == "+" or text.startswith("+ "):
        return Reply(ok=True, continuation=True, text=text[2:], line=text)
    raise ValueError(f"not a POP3 reply: {quoted(text, 80)}")


def parse_capabilities(lines: list[bytes]) -> tuple[str, ...]:
    """The CAPA body as capability lines: dot-unstuffed, whitespace folded, blanks dropped."""
    capabilities = []
    for raw in lines:
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if line.startswith(".."):
            line = line[1:]
        folded = " ".join(line.split())
        if folded:
            capabilities.append(folded)
    return tuple(capabilities)


def capability_names(capabilities: tuple[str, ...] | None) -> set[str]:
    """The capability keywords (first word of each line), upper-cased."""
    return {line.split()[0].upper() for line in capabilities or () if line.split()}


def sasl_mechanisms(capabilities: tuple[str, ...] | None) -> set[str]:
    """The mechanisms of the `SASL` capability line (RFC 2449, 5034), upper-cased."""
    for line in capabilities or ():
        words = line.upper().split()
        if words and words[0] == "SASL":
            return set(words[1:])
    return set()


class LineConnection:
    """One line-based conversation over a stream (POP3, IMAP, SMTP). `step` names what we are
    doing, so a timeout or a protocol error can say where the conversation stopped."""

    # What the protocol calls its upgrade, for the step names of the TLS handshake.
    upgrade_command = "STARTTLS"
    # Where the conversation is recorded, when it is (scanner._transcript); None for the TLS
    # enumeration's many hellos, whose findings the facts already hold.
    transcript: Transcript | None = None

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.step = "connect"

    @classmethod
    async def open(
        cls,
        address: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        transcript: Transcript | None = None,
    ) -> Self:
        """Connect (and for implicit TLS, handshake), recording into `transcript` if given.
        Maps socket errors to ScanErrors."""
        step = f"connect to {address} port {port}" + (" with TLS" if tls else "")
        try:
            reader, writer = await asyncio.open_connection(
                address,
                port,
                ssl=tls,
                server_hostname=server_hostname if tls else None,
                limit=MAX_LINE,
            )
        except ssl.SSLError as exc:
            raise TlsHandshakeError(step, describe_tls_error(exc)) from exc
        except ConnectionResetError as exc:
            if tls is None:
                raise connect_error(step, exc) from exc
            raise TlsHandshakeError(step, "the server reset the connection mid-handshake") from exc
        except OSError as exc:
            raise connect_error(step, exc) from exc
        connection = cls(reader, writer)
        connection.transcript = transcript
        if tls is not None and transcript is not None:
            transcript.note(handshake_line(connection.ssl_object))
        return connection

    async def read_line(self) -> bytes:
        """One line, at most MAX_LINE bytes, ending in LF."""
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError(self.step, f"reply line longer than {MAX_LINE} bytes") from exc
        except asyncio.IncompleteReadError as exc:
            raise closed_mid_reply(self.step, exc.partial) from exc
        except ssl.SSLError as exc:
            raise TlsHandshakeError(self.step, describe_tls_error(exc)) from exc
        except ConnectionError as exc:
            raise ProtocolError(self.step, "the server reset the connection") from exc
        if self.transcript is not None:
            self.transcript.received(line)
        return line

    async def send_line(self, line: bytes, step: str, *, secret: bool = False) -> None:
        """Send one command line (CRLF added); the step is what we then wait for. A `secret`
        line (one carrying credentials) is recorded redacted."""
        self.step = step
        if self.transcript is not None:
            self.transcript.sent(line.decode("utf-8", errors="replace"), secret=secret)
        self.writer.write(line + b"\r\n")
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            raise ProtocolError(self.step, "the server closed the connection") from exc

    def require_tls(self, step: str) -> None:
        """Raise CleartextCredentialsError unless the TLS handshake has completed."""
        ssl_object = self.ssl_object
        # asyncio publishes the SSL object only once the handshake is done, and version() is
        # None until then; checking both keeps this true whatever asyncio does in the future.
        if ssl_object is None or ssl_object.version() is None:
            raise CleartextCredentialsError(f"{step}: refusing to send credentials without TLS")

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade this connection in place (STLS, STARTTLS)."""
        self.step = f"TLS handshake after {self.upgrade_command}"
        # Bytes that arrived after the upgrade's reply sit in the plaintext buffer, where the
        # TLS layer never sees them, and the handshake would wait for a ServerHello forever. A
        # server must send nothing before the client's hello (RFC 2595, 3207), so this is an
        # error. (The buffer is private; no public API tells whether a StreamReader holds data.)
        early = bytes(self.reader._buffer)  # type: ignore[attr-defined]
        if early:
            raise TlsHandshakeError(self.step, "the server sent data instead of TLS", early)
        try:
            await self.writer.start_tls(context, server_hostname=server_hostname)
        except ssl.SSLError as exc:
            raise TlsHandshakeError(self.step, describe_tls_error(exc)) from exc
        except ConnectionError as exc:
            raise TlsHandshakeError(self.step, "the server reset the connection") from exc
        if self.transcript is not None:
            self.transcript.note(handshake_line(self.ssl_object))

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        ssl_object: ssl.SSLObject | None = self.writer.get_extra_info("ssl_object")
        return ssl_object

    def close(self) -> None:
        """Close without waiting: a polite QUIT was already sent where it matters, and
        waiting for a hostile peer to acknowledge the close would only cost time."""
        self.writer.transport.abort()


class Pop3Connection(LineConnection):
    """A POP3 conversation: status lines, CAPA's multi-line body, commands."""

    upgrade_command = "STLS"

    async def read_reply(self) -> Reply:
        line = await self.read_line()
        try:
            return parse_reply(line)
        except ValueError:
            raise ProtocolError(self.step, "the reply is not POP3", line) from None

    async def read_multiline(self) -> list[bytes]:
        """The body of a multi-line reply up to the terminating `.` line."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = await self.read_line()
            if line.rstrip(b"\r\n") == b".":
                return lines
            total += len(line)
            if total > MAX_MULTILINE:
                raise ProtocolError(
                    self.step, f"multi-line reply longer than {MAX_MULTILINE} bytes"
                )
            lines.append(line)

    async def command(self, command: str, step: str | None = None) -> Reply:
        """Send one command line and read its status line."""
        step = step or f"reply to {command.split()[0]}"
        await self.send_line(command.encode("ascii"), step)
        return await self.read_reply()

    async def credentials_command(self, command: str, step: str) -> Reply:
        """Send a line that carries credentials (a real user name, a password, or a SASL blob
        made from them), only inside an established TLS session; anything else is a bug and
        raises CleartextCredentialsError before a byte is sent. `step` names the command
        without its argument, since step names end up in error messages and facts."""
        self.require_tls(step)
        await self.send_line(command.encode("utf-8"), step, secret=True)
        return await self.read_reply()


def connect_error(step: str, exc: OSError) -> ScanError:
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionClosedPort(step, "connection refused: nothing listens on that port")
    if exc.errno in _UNREACHABLE_ERRNOS:
        return Unreachable(step, f"address unreachable ({exc.strerror})")
    return Unreachable(step, f"could not connect ({exc.strerror or exc})")


def closed_mid_reply(step: str, partial: bytes) -> ProtocolError:
    if partial:
        return ProtocolError(step, "the server closed the connection mid-reply", partial)
    return ProtocolError(step, "the server closed the connection without replying")


def describe_tls_error(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words an operator can act on."""
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if "wrong version number" in reason or "record layer failure" in reason:
        return "the server did not answer with TLS (it sent something else)"
    if "unsupported protocol" in reason or "protocol version" in reason:
        return "no TLS protocol version in common"
    if "handshake failure" in reason or "no shared cipher" in reason:
        return "the server refused the TLS handshake"
    if "eof" in reason or "unexpected eof" in reason:
        return "the server closed the connection during the TLS handshake"
    return f"TLS handshake failed ({reason})"
