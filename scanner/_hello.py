"""TLS at the protocol level: ClientHellos that offer exactly what is under test, and a bounded
reading of the server's answer (its ServerHello and key exchange, or its alert).

The local OpenSSL cannot offer SSLv2, SSLv3, RC4 or 3DES, so a server that accepts them would
look clean through it. These hellos are built byte by byte instead; no handshake is completed,
and nothing secret is ever sent. Every read is bounded in bytes here and in time by the caller.
"""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from scanner._errors import ProtocolError
from scanner._suites import PROTOCOL_BY_WIRE, WIRE_VERSION

# A record's body is at most 2^14 bytes plus expansion (RFC 5246 §6.2.3); more is hostile.
MAX_RECORD = 2**14 + 2048
# Up to the end of the server's first flight: certificate chains are a few kilobytes.
MAX_FLIGHT = 128 * 1024
# Warning alerts a server may send before it answers; more is a storm, not a conversation.
MAX_WARNINGS = 8

# Named groups (RFC 8422, RFC 7919, RFC 8446), by code.
GROUPS: dict[int, str] = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
    6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
    11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1", 15: "secp160k1",
    16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1", 20: "secp224k1",
    21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
    26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519",
    30: "x448", 0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096",
    0x0103: "ffdhe6144", 0x0104: "ffdhe8192",
}  # fmt: skip
ELLIPTIC_GROUPS = tuple(code for code in GROUPS if code < 0x0100)
ALL_GROUPS = tuple(GROUPS)
X25519 = 29

# Every signature scheme a server of any age might insist on (RFC 5246 pairs, RFC 8446 names).
_SIGNATURE_SCHEMES = (
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0808, 0x0809, 0x080A, 0x080B,
    0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602, 0x0203, 0x0201,
    0x0202, 0x0101, 0x0102, 0x0103,
)  # fmt: skip

_EXT_SERVER_NAME = 0
_EXT_STATUS_REQUEST = 5
_EXT_SUPPORTED_GROUPS = 10
_EXT_POINT_FORMATS = 11
_EXT_SIGNATURE_ALGORITHMS = 13
_EXT_PADDING = 21
_EXT_SUPPORTED_VERSIONS = 43
_EXT_KEY_SHARE = 51
_EXT_RENEGOTIATION_INFO = 0xFF01
_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF

_HANDSHAKE = 22
_ALERT = 21
_RECORD_TYPES = {20, 21, 22, 23}
_SERVER_HELLO = 2
_CERTIFICATE = 11
_SERVER_KEY_EXCHANGE = 12
_SERVER_HELLO_DONE = 14
_CERTIFICATE_STATUS = 22
# status_request (RFC 6066 §8): type ocsp, no responder ids, no request extensions.
_OCSP_STATUS_REQUEST = b"\x01\x00\x00\x00\x00"

# Alert descriptions (RFC 8446 §6), for messages an operator reads.
_ALERTS = {
    10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
    47: "illegal_parameter", 50: "decode_error", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 109: "missing_extension", 112: "unrecognized_name",
}  # fmt: skip


@dataclass(frozen=True)
class Offer:
    """What one ClientHello offers. `groups` go in supported_groups, the RFC 7919 finite
    field ones included: a server without DH parameters of its own (GnuTLS's default) serves
    DHE only to a client that lists them. For TLS 1.3, x25519 also gets a key share when
    offered (any other group makes the server ask again). `status_request` asks the server
    to staple an OCSP response (RFC 6066), which TLS 1.2 sends in the clear."""

    protocol: str
    suites: tuple[int, ...]
    groups: tuple[int, ...] = ALL_GROUPS
    sni: str | None = None
    compression: bool = False
    status_request: bool = False


@dataclass(frozen=True)
class ServerAnswer:
    """What the server chose, or why it refused (`alert`, or a close with no word).

    `group` is the key exchange group of an ECDHE or TLS 1.3 exchange, `dh_bits` the size of
    the prime of a finite-field DHE one (only when the key exchange was read)."""

    protocol: str | None = None
    suite: int | None = None
    compression: int = 0
    secure_renegotiation: bool = False
    group: int | None = None
    dh_bits: int | None = None
    alert: str | None = None

    @property
    def accepted(self) -> bool:
        return self.suite is not None


def client_hello(offer: Offer) -> bytes:
    """The ClientHello record for `offer`. SSLv3 gets no extensions (servers of its day
    choke on them) and signals secure renegotiation with the SCSV instead."""
    tls13 = offer.protocol == "TLSv1.3"
    legacy = WIRE_VERSION["TLSv1.2"] if tls13 else WIRE_VERSION[offer.protocol]
    suites = offer.suites + (() if tls13 else (_EMPTY_RENEGOTIATION_INFO_SCSV,))
    compression = b"\x01\x00" if offer.compression and not tls13 else b"\x00"
    body = (
        struct.pack("!H", legacy)
        + os.urandom(32)
        + _vector(1, os.urandom(32))
        + _vector(2, _codes(suites))
        + _vector(1, compression)
    )
    if offer.protocol != "SSLv3":
        body += _vector(2, _extensions(offer, tls13, len(body)))
    handshake = bytes([1]) + _length3(len(body)) + body
    record_version = WIRE_VERSION["SSLv3"] if offer.protocol == "SSLv3" else WIRE_VERSION["TLSv1"]
    return struct.pack("!BHH", _HANDSHAKE, record_version, len(handshake)) + handshake


def _extensions(offer: Offer, tls13: bool, body_length: int) -> bytes:
    parts = []
    if offer.sni:
        try:
            name = offer.sni.encode("idna")
        except UnicodeError:
            raise ProtocolError(
                "TLS hello", f"{offer.sni!r} is not a name to send as SNI"
            ) from None
        entry = b"\x00" + _vector(2, name)
        parts.append(_extension(_EXT_SERVER_NAME, _vector(2, entry)))
    if offer.groups:
        parts.append(_extension(_EXT_SUPPORTED_GROUPS, _vector(2, _codes(offer.groups))))
        parts.append(_extension(_EXT_POINT_FORMATS, _vector(1, b"\x00")))
    if offer.protocol in ("TLSv1.2", "TLSv1.3"):
        parts.append(_SIGNATURE_ALGORITHMS)
    if offer.status_request:
        parts.append(_extension(_EXT_STATUS_REQUEST, _OCSP_STATUS_REQUEST))
    if tls13:
        parts.append(_extension(_EXT_SUPPORTED_VERSIONS, _vector(1, b"\x03\x04")))
        parts.append(_extension(_EXT_KEY_SHARE, _vector(2, _key_share(offer.groups))))
    else:
        parts.append(_extension(_EXT_RENEGOTIATION_INFO, b"\x00"))
    extensions = b"".join(parts)
    # Some TLS terminators hang on hellos of 256 to 511 bytes; padding past them is harmless.
    # The padding extension's own 4-byte header counts too, so pad at least one byte.
    hello_length = 4 + body_length + 2 + len(extensions)
    if 256 <= hello_length < 512:
        parts.append(_extension(_EXT_PADDING, bytes(max(1, 512 - hello_length - 4))))
    return b"".join(parts)


def _key_share(groups: tuple[int, ...]) -> bytes:
    """An x25519 share when x25519 is offered (a fresh key: any other point is refused by
    careful servers), else none: the server then names its group in a HelloRetryRequest."""
    if X25519 not in groups:
        return b""
    public = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return struct.pack("!H", X25519) + _vector(2, public)


def _codes(codes: tuple[int, ...]) -> bytes:
    """Two-byte codes back to back, in one call (hellos carry hundreds of them)."""
    return struct.pack(f"!{len(codes)}H", *codes)


def _vector(length_bytes: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!H", kind) + _vector(2, data)


# The same in every TLS 1.2 and 1.3 hello, so built once.
_SIGNATURE_ALGORITHMS = _extension(
    _EXT_SIGNATURE_ALGORITHMS, _vector(2, _codes(_SIGNATURE_SCHEMES))
)


def _length3(value: int) -> bytes:
    return value.to_bytes(3, "big")


async def read_answer(
    reader: asyncio.StreamReader, offer: Offer, *, want_key_exchange: bool = False
) -> ServerAnswer:
    """The server's answer to `offer`: its ServerHello, read up to the key exchange when
    `want_key_exchange` (TLS 1.2 and older: the group or DH prime size live there), or the
    alert it sent, or a refusal when it closed without a word. A ServerHello that picks
    something we did not offer is a ProtocolError: the server is broken or hostile."""
    messages = _HandshakeMessages(reader)
    answer = await _server_hello(messages, offer)
    if want_key_exchange and answer.accepted and answer.protocol != "TLSv1.3":
        return await _with_key_exchange(messages, answer)
    return answer


async def read_stapled(
    reader: asyncio.StreamReader, offer: Offer
) -> tuple[ServerAnswer, bytes | None]:
    """The server's answer to a TLS 1.2 `offer` with `status_request`, and the OCSP response
    (DER) it stapled in its CertificateStatus, or None when its flight ended without one."""
    messages = _HandshakeMessages(reader)
    answer = await _server_hello(messages, offer)
    while answer.accepted:
        message = await messages.next()
        if isinstance(message, ServerAnswer):
            break
        kind, body = message
        if kind == _CERTIFICATE_STATUS and len(body) >= 4 and body[0] == 1:
            return answer, body[4 : 4 + int.from_bytes(body[1:4], "big")]
        if kind == _SERVER_HELLO_DONE:
            break
    return answer, None


async def _server_hello(messages: _HandshakeMessages, offer: Offer) -> ServerAnswer:
    """The ServerHello's choice, or the refusal (alert, close) that came instead."""
    first = await messages.next()
    if isinstance(first, ServerAnswer):
        return first
    kind, body = first
    if kind != _SERVER_HELLO:
        raise ProtocolError("TLS hello", f"the server's first handshake message was type {kind}")
    return _parse_server_hello(body, offer)


async def _with_key_exchange(messages: _HandshakeMessages, answer: ServerAnswer) -> ServerAnswer:
    """Read on to the ServerKeyExchange (after the Certificate) for its group or prime."""
    while True:
        message = await messages.next()
        if isinstance(message, ServerAnswer):
            return answer  # an alert or close after the hello: the choice still stands
        kind, body = message
        if kind == _SERVER_KEY_EXCHANGE:
            return _with_key_exchange_params(answer, body)
        if kind == _SERVER_HELLO_DONE:
            return answer


def _with_key_exchange_params(answer: ServerAnswer, body: bytes) -> ServerAnswer:
    """ECDHE: `curve_type(3) named_curve(2) ...`; DHE: `dh_p<1..2^16-1> ...`."""
    if len(body) >= 3 and body[0] == 3:
        return replace(answer, group=struct.unpack("!H", body[1:3])[0])
    if len(body) >= 2:
        length = struct.unpack("!H", body[:2])[0]
        prime = body[2 : 2 + length]
        if len(prime) == length and length:
            return replace(answer, dh_bits=int.from_bytes(prime, "big").bit_length())
    return answer


class _HandshakeMessages:
    """Handshake messages out of TLS records, one at a time, within MAX_FLIGHT bytes. An
    alert or a close ends the flight: `next()` then returns a refusing ServerAnswer."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = b""
        self.total = 0
        self.warnings = 0

    async def next(self) -> tuple[int, bytes] | ServerAnswer:
        while True:
            if len(self.buffer) >= 4:
                kind = self.buffer[0]
                length = int.from_bytes(self.buffer[1:4], "big")
                if length > MAX_FLIGHT:
                    raise ProtocolError("TLS hello", f"a handshake message claims {length} bytes")
                if len(self.buffer) >= 4 + length:
                    body = self.buffer[4 : 4 + length]
                    self.buffer = self.buffer[4 + length :]
                    return kind, body
            record = await self._record()
            if isinstance(record, ServerAnswer):
                return record
            self.buffer += record

    async def _record(self) -> bytes | ServerAnswer:
        header = await self._read(5, allow_close=True)
        if header is None:
            return ServerAnswer(alert="closed the connection")
        kind, _version, length = struct.unpack("!BHH", header)
        if kind not in _RECORD_TYPES:
            raise ProtocolError("TLS hello", "the server did not answer with TLS", header)
        if length > MAX_RECORD:
            raise ProtocolError("TLS hello", f"a TLS record claims {length} bytes")
        body = await self._read(length, allow_close=False)
        assert body is not None
        if kind == _ALERT:
            return self._alert(body)
        if kind != _HANDSHAKE:
            raise ProtocolError("TLS hello", f"the server sent record type {kind} before its hello")
        return body

    async def _read(self, count: int, *, allow_close: bool) -> bytes | None:
        self.total += count
        if self.total > MAX_FLIGHT:
            raise ProtocolError("TLS hello", f"the server sent more than {MAX_FLIGHT} bytes")
        try:
            return await self.reader.readexactly(count)
        except asyncio.IncompleteReadError as exc:
            if allow_close and not exc.partial:
                return None
            raise ProtocolError("TLS hello", "the server cut a TLS record short") from None
        except OSError:
            if allow_close:
                return None
            raise ProtocolError("TLS hello", "the server reset the connection") from None

    def _alert(self, body: bytes) -> bytes | ServerAnswer:
        """A fatal alert (or close_notify) is the server's no; a warning is read past, a few
        times: a server that sends nothing but warnings is broken or hostile."""
        warning = len(body) >= 2 and body[0] == 1 and body[1] != 0
        if not warning:
            return ServerAnswer(alert=_alert_name(body))
        self.warnings += 1
        if self.warnings > MAX_WARNINGS:
            raise ProtocolError("TLS hello", "the server sent alert after alert, never a hello")
        return b""


def _alert_name(body: bytes) -> str:
    if len(body) < 2:
        return "a malformed alert"
    return _ALERTS.get(body[1], f"alert {body[1]}")


def _parse_server_hello(body: bytes, offer: Offer) -> ServerAnswer:
    """The version, suite and extensions a ServerHello chose. A TLS 1.3 HelloRetryRequest
    is a ServerHello too: it names the suite (and the group it wants), which is all we ask."""
    try:
        version = struct.unpack("!H", body[:2])[0]
        session_length = body[34]
        at = 35 + session_length
        suite, compression = struct.unpack("!HB", body[at : at + 3])
        extensions = _parse_extensions(body[at + 3 :])
    except (struct.error, IndexError):
        raise ProtocolError("TLS hello", "the server's ServerHello is malformed") from None
    selected = extensions.get(_EXT_SUPPORTED_VERSIONS)
    if selected is not None and len(selected) == 2:
        version = struct.unpack("!H", selected)[0]
    protocol = PROTOCOL_BY_WIRE.get(version)
    _require_offered(protocol, suite, offer, version)
    group = None
    share = extensions.get(_EXT_KEY_SHARE)
    if protocol == "TLSv1.3" and share is not None and len(share) >= 2:
        group = struct.unpack("!H", share[:2])[0]
    return ServerAnswer(
        protocol=protocol,
        suite=suite,
        compression=compression,
        secure_renegotiation=_EXT_RENEGOTIATION_INFO in extensions,
        group=group,
    )


def _require_offered(protocol: str | None, suite: int, offer: Offer, version: int) -> None:
    """A server may answer with an older version than offered (that is how it says no), never
    with a newer one or one unknown, and never with a suite that was not offered."""
    offered = offer.protocol
    if protocol is None or _rank(protocol) > _rank(offered):
        raise ProtocolError(
            "TLS hello", f"the server chose version 0x{version:04X}, which we did not offer"
        )
    if protocol == offered and suite not in offer.suites:
        raise ProtocolError(
            "TLS hello", f"the server chose suite 0x{suite:04X}, which we did not offer"
        )


def _rank(protocol: str) -> int:
    return list(PROTOCOL_BY_WIRE.values()).index(protocol)


def _parse_extensions(data: bytes) -> dict[int, bytes]:
    if len(data) < 2:
        return {}
    total = struct.unpack("!H", data[:2])[0]
    data = data[2 : 2 + total]
    extensions = {}
    while len(data) >= 4:
        kind, length = struct.unpack("!HH", data[:4])
        extensions[kind] = data[4 : 4 + length]
        data = data[4 + length :]
    return extensions


# SSL 2.0 (draft-hickman-netscape-ssl-00): a two-byte header with the high bit set.
_SSL2_CLIENT_HELLO = 1
_SSL2_SERVER_HELLO = 4
_SSL2_VERSION = 0x0002


def sslv2_client_hello(cipher_codes: tuple[int, ...]) -> bytes:
    """An SSL 2.0 CLIENT-HELLO offering `cipher_codes` (three bytes each)."""
    specs = b"".join(code.to_bytes(3, "big") for code in cipher_codes)
    challenge = os.urandom(16)
    body = struct.pack("!BHHHH", _SSL2_CLIENT_HELLO, _SSL2_VERSION, len(specs), 0, len(challenge))
    body += specs + challenge
    return struct.pack("!H", 0x8000 | len(body)) + body


async def read_sslv2_answer(reader: asyncio.StreamReader) -> list[int] | None:
    """The SSL 2.0 ciphers a SERVER-HELLO lists (the server sends all it would use at once;
    some list ones it has disabled, or none), or None when it answers anything else or
    closes: any SERVER-HELLO at all means SSL 2.0 is spoken."""
    try:
        header = await reader.readexactly(2)
    except (asyncio.IncompleteReadError, OSError):
        return None
    if not header[0] & 0x80:
        return None  # a TLS record (an alert): this server does not speak SSL 2.0
    length = ((header[0] & 0x7F) << 8) | header[1]
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, OSError):
        raise ProtocolError("SSLv2 hello", "the server cut its SSL 2.0 reply short") from None
    if len(body) < 11 or body[0] != _SSL2_SERVER_HELLO:
        return None
    _, _, _, version, cert_length, specs_length, _ = struct.unpack("!BBBHHHH", body[:11])
    if version != _SSL2_VERSION:
        return None
    specs = body[11 + cert_length : 11 + cert_length + specs_length]
    return [int.from_bytes(specs[i : i + 3], "big") for i in range(0, len(specs) - 2, 3)]
