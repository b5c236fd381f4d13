"""One exception hierarchy for the probes. Each error names the step that failed and, where
the server said something, quotes its reply trimmed to a readable length."""

from __future__ import annotations

REPLY_QUOTE_LIMIT = 120


def escape_controls(text: str) -> str:
    """`text` with every non-printable character shown as its Python escape (\\x1b, \\n)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def quote_reply(reply: bytes | str | None, limit: int = REPLY_QUOTE_LIMIT) -> str:
    """A server reply made safe to show: decoded, control bytes escaped, trimmed."""
    if reply is None:
        return ""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="backslashreplace")
    text = reply.rstrip("\r\n")
    return escape_controls(text[:limit]) + ("…" if len(text) > limit else "")


def quoted(reply: bytes | str | None, limit: int = REPLY_QUOTE_LIMIT) -> str:
    """A server reply as summaries and errors quote it: “+OK ready”. Curly quotes cannot be
    confused with the straight quotes replies often carry, and a sentence that already holds
    a quoted reply is never quoted again."""
    return f"“{quote_reply(reply, limit)}”"


class ScanError(Exception):
    """A probe step failed. `outcome` is the Outcome value recorded in the facts."""

    outcome = "protocol_error"

    def __init__(self, step: str, reason: str, reply: bytes | str | None = None) -> None:
        self.step = step
        self.reason = reason
        self.reply = quote_reply(reply) if reply is not None else None
        message = f"{step}: {reason}"
        if self.reply:
            message += f" (server said: “{self.reply}”)"
        super().__init__(message)


class ConnectionClosedPort(ScanError):
    """Nothing listens on the port: the connection was refused."""

    outcome = "closed"


class Unreachable(ScanError):
    """No route to the address, or the network is down."""

    outcome = "unreachable"


class ProbeTimeout(ScanError):
    """The server did not finish answering before the deadline."""

    outcome = "timeout"


class ProtocolError(ScanError):
    """The server answered, but not as a POP3 server should (no greeting, garbage, a line
    longer than the limit, the connection closed mid-reply)."""

    outcome = "protocol_error"


class TlsHandshakeError(ScanError):
    """The TLS handshake failed."""

    outcome = "tls_error"


class DnsError(ScanError):
    """A DNS lookup failed; `kind` is nxdomain, no_address, servfail, timeout or error."""

    def __init__(self, step: str, reason: str, kind: str) -> None:
        super().__init__(step, reason)
        self.kind = kind


class CleartextCredentialsError(RuntimeError):
    """A bug in the scanner: code tried to send credentials on a connection whose TLS handshake
    has not completed. Deliberately not a ScanError: it says nothing about the server, and it
    must stop the scan loudly instead of being recorded as a fact."""
