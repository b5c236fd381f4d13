"""A bounded HTTP/1.0 client for revocation lookups: OCSP requests and CRL downloads.

OCSP responders and CRLs are served over plain http:// by design (the answers are signed by
the CA, and an https:// lookup would need the revocation status of the server it asks). The
names in a certificate are chosen by whoever issued it, so every fetch goes the way a probe
does: the name through the scanner's resolver (never the machine's), each address past the
scanner guard before anything connects, one deadline for the whole exchange, the answer
capped in bytes, and no redirect followed. HTTP/1.0 keeps the answer free of chunked
encoding: the body is whatever follows the headers until the server closes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from scanner._dns import lookup_addresses
from scanner._errors import DnsError, quote_reply
from scanner._target import Settings, is_ip_address

# The status line and headers of an answer: a real responder sends a few hundred bytes.
MAX_HEADERS = 16 * 1024


class FetchError(Exception):
    """Why a fetch gave no usable answer, in operator words (the URL is named by the caller)."""


@dataclass(frozen=True)
class Request:
    """One GET (no `body`) or POST of `body` with `content_type`; `limit` caps the answer."""

    url: str
    limit: int
    body: bytes | None = None
    content_type: str | None = None


async def fetch(request: Request, settings: Settings) -> bytes:
    """The body of a 200 answer to `request`. Raises FetchError for anything else: a URL
    that is not http://, a name that does not resolve, an address the guard refuses (then
    nothing connects), a timeout, a status other than 200, an answer over the limit."""
    host, port, path = _parse(request.url)
    address = await _allowed_address(host, settings)
    try:
        async with asyncio.timeout(settings.timeout):
            return await _exchange(
                address, port, _request_bytes(request, host, port, path), request
            )
    except TimeoutError:
        raise FetchError(f"no answer within {settings.timeout:g} s") from None
    except OSError as error:
        raise FetchError(f"could not connect to {address} port {port}: {error}") from None


def _parse(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        raise FetchError(f"only http:// is fetched, not {parts.scheme or 'a relative'} URL")
    try:
        port = parts.port or 80
    except ValueError:
        raise FetchError("the URL's port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise FetchError("the URL names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path


async def _allowed_address(host: str, settings: Settings) -> str:
    """The first address of `host` the scanner guard allows; the guard's reason otherwise."""
    if is_ip_address(host):
        addresses: tuple[str, ...] = (host,)
    else:
        try:
            addresses = await lookup_addresses(host, settings)
        except DnsError as error:
            raise FetchError(error.reason) from None
    refusals = [settings.refusal(address) for address in addresses]
    allowed = [a for a, refusal in zip(addresses, refusals, strict=True) if refusal is None]
    if not allowed:
        raise FetchError(next(r for r in refusals if r))
    return allowed[0]


def _request_bytes(request: Request, host: str, port: int, path: str) -> bytes:
    name = f"[{host}]" if ":" in host else host
    lines = [
        f"{'POST' if request.body is not None else 'GET'} {path} HTTP/1.0",
        f"Host: {name}" + ("" if port == 80 else f":{port}"),
        "User-Agent: PopCompliance",
        "Accept: */*",
    ]
    if request.body is not None:
        lines += [f"Content-Type: {request.content_type}", f"Content-Length: {len(request.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (request.body or b"")


async def _exchange(address: str, port: int, sent: bytes, request: Request) -> bytes:
    reader, writer = await asyncio.open_connection(address, port, limit=MAX_HEADERS)
    try:
        writer.write(sent)
        await writer.drain()
        length = await _read_head(reader)
        if length is not None and length > request.limit:
            raise FetchError(f"the answer is {length} bytes, over the {request.limit} byte limit")
        body = bytearray()
        while len(body) <= request.limit and (more := await reader.read(request.limit + 1)):
            body += more
        if len(body) > request.limit:
            raise FetchError(f"the answer is over the {request.limit} byte limit")
        return bytes(body)
    finally:
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> int | None:
    """Read the status line and headers; the Content-Length, if given. A status other than
    200 is a FetchError quoting it (a redirect says so, and is not followed)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise FetchError(f"the answer's headers are over {MAX_HEADERS} bytes") from None
    except asyncio.IncompleteReadError as error:
        closed = f"the server closed without an HTTP answer: {_quote(error.partial)}"
        raise FetchError(closed) from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    words = status_line.split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise FetchError(f"not an HTTP answer: {_quote(head)}")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    if words[1] != "200":
        where = " (a redirect, not followed)" if "location" in headers else ""
        raise FetchError(f"HTTP {quote_reply(status_line, 200)}{where}")
    length = headers.get("content-length", "")
    # ASCII digits only, and few of them: str.isdigit() also takes "²", which int() refuses.
    return int(length) if length.isascii() and length.isdigit() and len(length) < 19 else None


def _quote(data: bytes) -> str:
    return quote_reply(data.decode("latin-1"), 120)
