"""A minimal line client for talking to the emulator's IMAP and SMTP ports byte by byte.

imaplib and smtplib hide exactly what these tests check (unsolicited BYE lines, what exactly
crossed before TLS), so the protocol-level tests speak raw lines; every read is bounded.
"""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

from pop3lab import BoundEndpoint, EndpointConfig, LabThread
from pop3lab.certs import make_cert
from tests.conftest import SERVICE_NAME, next_address

TIMEOUT = 5.0
MAX_LINE = 65536


def trusting(*, check_name: bool = True) -> ssl.SSLContext:
    """A client context that trusts the lab's test root. imaplib and smtplib name the server
    by the address they connected to, which the lab's certificate does not carry: they need
    `check_name=False` (the chain is still verified)."""
    context = ssl.create_default_context(cadata=make_cert().ca_pem.decode())
    context.check_hostname = check_name
    return context


def serve(lab: LabThread, config: EndpointConfig) -> BoundEndpoint:
    """Serve `config` on a fresh loopback address, every listener on an ephemeral port."""
    address = next_address()
    return lab.add([(address, config)])[address]


class LineClient:
    """One connection; `tls` wraps it in TLS from the start (implicit-TLS ports)."""

    def __init__(self, host: str, port: int | None, *, tls: bool = False) -> None:
        assert port is not None, "that listener is off"
        self.sock: socket.socket = socket.create_connection((host, port), timeout=TIMEOUT)
        if tls:
            self.sock = trusting().wrap_socket(self.sock, server_hostname=SERVICE_NAME)
        self.file = self.sock.makefile("rb")

    def line(self) -> str:
        """The next line without CRLF; "" at end of stream."""
        return self.file.readline(MAX_LINE).decode("utf-8").rstrip("\r\n")

    def send(self, text: str | bytes) -> None:
        """Send one line (CRLF added)."""
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendall(data + b"\r\n")

    def ask(self, text: str | bytes) -> str:
        """Send a line and read one line back."""
        self.send(text)
        return self.line()

    def until(self, prefix: str) -> list[str]:
        """Lines up to and including the first that starts with `prefix` (or end of stream)."""
        lines = [self.line()]
        while lines[-1] and not lines[-1].startswith(prefix):
            lines.append(self.line())
        return lines

    def starttls(self) -> None:
        """Wrap the connection in TLS once the server has agreed to STARTTLS/STLS."""
        self.file.close()
        self.sock = trusting().wrap_socket(self.sock, server_hostname=SERVICE_NAME)
        self.file = self.sock.makefile("rb")

    def at_eof(self) -> bool:
        """Whether the server has closed the connection (after what was read so far)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
