"""Line I/O over a TCP stream, in cleartext or through a server-side TLS layer we drive ourselves.

Why not `asyncio`'s own TLS (`start_server(ssl=...)`, `StreamWriter.start_tls`)? When a server
handshake fails, asyncio drops the connection without flushing OpenSSL's alert, so a client
offering a refused TLS version sees a bare reset instead of the `protocol_version` alert a real
server sends. The scanner must be tested against the realistic answer, so the lab runs TLS
over memory BIOs and always flushes what OpenSSL has to say, alerts included.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from pop3lab._tls import TlsSetup
from pop3lab.journal import ConnectionLog

READ_SIZE = 65536


class LineTooLong(Exception):
    """The peer sent more than the line limit without a newline."""


class Channel:
    """One connection's byte stream, optionally wrapped in TLS after `start_tls`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        line_limit: int,
        log: ConnectionLog,
    ) -> None:
        """Wrap an accepted connection; it starts in cleartext. `log` learns when TLS starts."""
        self.reader, self.writer = reader, writer
        self.line_limit = line_limit
        self.log = log
        self._buffer = bytearray()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # An ssl.SSLObject, or an engine with the same methods (pop3lab._engines).
        self._tls: Any = None

    async def start_tls(self, tls: TlsSetup, timeout: float) -> None:
        """Run the server handshake; on failure the alert is sent before the error propagates."""
        # Anything the client pipelined after STLS was sent in clear: RFC 2595 says discard it.
        self._buffer.clear()
        async with asyncio.timeout(timeout):
            self._tls = await tls.wrap(self.reader, self.writer, self._incoming, self._outgoing)
            while True:
                try:
                    self._tls.do_handshake()
                    self.log.tls_established()
                    break
                except ssl.SSLWantReadError:
                    await self._flush()
                    await self._feed()
                except ssl.SSLError:
                    await self._flush()
                    raise
        await self._flush()

    async def readline(self) -> bytes:
        """The next line including its newline; b"" or a partial line at end of stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self.line_limit:
                raise LineTooLong
            chunk = await self._receive()
            if not chunk:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self._buffer += chunk

    async def read_exactly(self, size: int) -> bytes:
        """The next `size` bytes (the caller has capped `size`); IncompleteReadError at end of
        stream."""
        while len(self._buffer) < size:
            chunk = await self._receive()
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self._buffer), size)
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def write(self, data: bytes) -> None:
        """Send application data and wait until the transport buffer has drained."""
        if self._tls is None:
            self.writer.write(data)
        else:
            self._tls.write(data)
            self.writer.write(self._outgoing.read())
        await self.writer.drain()

    def close(self) -> None:
        """Send TLS close_notify when possible, then close the socket."""
        if self._tls is not None:
            # unwrap() writes close_notify, then wants the peer's; we do not wait for it.
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._tls.unwrap()
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write(self._outgoing.read())
        self.writer.close()

    async def _receive(self) -> bytes:
        """Next plaintext bytes from the peer; b"" at end of stream or TLS close."""
        if self._tls is None:
            return await self.reader.read(READ_SIZE)
        while True:
            try:
                data: bytes = self._tls.read(READ_SIZE)
                return data
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._feed():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    async def _feed(self) -> bool:
        """Move ciphertext from the socket into OpenSSL; False at end of stream."""
        data = await self.reader.read(READ_SIZE)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        """Send whatever OpenSSL has queued (handshake records, tickets, alerts)."""
        pending = self._outgoing.read()
        if pending:
            self.writer.write(pending)
            await self.writer.drain()
