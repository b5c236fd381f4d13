"""Reading a client's ClientHello off the wire, before any TLS engine sees it.

The lab decides what to answer from the hello alone (pop3lab.schannel.choose), then hands the
very bytes it read to the engine that can serve that choice. Reads are bounded: one hello of
at most MAX_HELLO bytes, in records of at most a TLS record's size.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from pop3lab.schannel import Offer
from scanner._suites import PROTOCOL_BY_WIRE, PROTOCOLS

MAX_HELLO = 64 * 1024
_MAX_RECORD = 2**14 + 2048
_HANDSHAKE, _CLIENT_HELLO = 22, 1
_EXT_SUPPORTED_GROUPS, _EXT_SUPPORTED_VERSIONS, _EXT_KEY_SHARE = 10, 43, 51


class NotAHello(Exception):
    """The client sent something other than a TLS ClientHello (or an SSL 2.0 one)."""


@dataclass(frozen=True)
class Hello:
    """The bytes read (to replay to an engine) and what they offer; `sslv2` for an SSL 2.0
    CLIENT-HELLO, whose offer is not parsed."""

    raw: bytes
    offer: Offer | None
    sslv2: bool = False


async def read_hello(reader: asyncio.StreamReader) -> Hello:
    """The client's first flight up to the end of its ClientHello."""
    first = await reader.readexactly(2)
    if first[0] & 0x80:  # SSL 2.0 framing: a two-byte length with the high bit set
        length = ((first[0] & 0x7F) << 8) | first[1]
        return Hello(first + await reader.readexactly(length), None, sslv2=True)
    raw, body, pending = bytearray(), bytearray(), first
    while not _whole_message(body):
        header = pending + await reader.readexactly(5 - len(pending))
        pending = b""
        kind, _version, length = struct.unpack("!BHH", header)
        if kind != _HANDSHAKE or length > _MAX_RECORD:
            raise NotAHello("the client did not start with a TLS handshake")
        fragment = await reader.readexactly(length)
        raw += header + fragment
        body += fragment
        if len(raw) > MAX_HELLO:
            raise NotAHello("the ClientHello is too long")
    if body[0] != _CLIENT_HELLO:
        raise NotAHello("the client's first handshake message is not a ClientHello")
    return Hello(bytes(raw), parse_offer(bytes(body[4 : 4 + int.from_bytes(body[1:4], "big")])))


def _whole_message(body: bytearray) -> bool:
    return len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big")


def parse_offer(body: bytes) -> Offer:
    """The versions, suites and groups of a ClientHello body."""
    try:
        legacy = struct.unpack("!H", body[:2])[0]
        at = 34
        at += 1 + body[at]  # session id
        suites_length = struct.unpack("!H", body[at : at + 2])[0]
        suites = body[at + 2 : at + 2 + suites_length]
        at += 2 + suites_length
        at += 1 + body[at]  # compression methods
        extensions = _extensions(body[at:])
    except (struct.error, IndexError):
        raise NotAHello("the ClientHello is malformed") from None
    codes = frozenset(struct.unpack(f"!{len(suites) // 2}H", suites[: len(suites) // 2 * 2]))
    return Offer(
        versions=_versions(legacy, extensions.get(_EXT_SUPPORTED_VERSIONS)),
        suites=codes,
        groups=_groups(extensions.get(_EXT_SUPPORTED_GROUPS)),
        key_shares=_key_shares(extensions.get(_EXT_KEY_SHARE)),
    )


def _versions(legacy: int, supported: bytes | None) -> tuple[str, ...]:
    """Highest first: the supported_versions list when sent, else every version up to the
    legacy one (TLS 1.2 and older negotiate downwards from the client's highest)."""
    if supported:
        codes = struct.unpack(f"!{(len(supported) - 1) // 2}H", supported[1:])
        named = [PROTOCOL_BY_WIRE[c] for c in codes if c in PROTOCOL_BY_WIRE]
        return tuple(sorted(set(named), key=PROTOCOLS.index, reverse=True))
    highest = PROTOCOL_BY_WIRE.get(min(legacy, 0x0303))
    if highest is None:
        return ()
    return tuple(reversed(PROTOCOLS[1 : PROTOCOLS.index(highest) + 1]))


def _groups(data: bytes | None) -> tuple[int, ...] | None:
    if data is None or len(data) < 2:
        return None
    return struct.unpack(f"!{(len(data) - 2) // 2}H", data[2 : 2 + (len(data) - 2) // 2 * 2])


def _key_shares(data: bytes | None) -> tuple[int, ...]:
    shares, at = [], 2
    while data is not None and at + 4 <= len(data):
        group, length = struct.unpack("!HH", data[at : at + 4])
        shares.append(group)
        at += 4 + length
    return tuple(shares)


def _extensions(data: bytes) -> dict[int, bytes]:
    extensions: dict[int, bytes] = {}
    if len(data) < 2:
        return extensions
    data = data[2 : 2 + struct.unpack("!H", data[:2])[0]]
    while len(data) >= 4:
        kind, length = struct.unpack("!HH", data[:4])
        extensions[kind] = data[4 : 4 + length]
        data = data[4 + length :]
    return extensions
