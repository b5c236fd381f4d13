"""Server-side TLS for lab endpoints: either one OpenSSL context for the whole endpoint, or a
Windows profile that answers each ClientHello as SChannel would (pop3lab.schannel).

Both are set-ups a connection's channel asks to `wrap` its memory BIOs once the client is
about to speak TLS. Contexts and PEM files are made once per distinct set-up and cached: a
fleet of 1,000 endpoints typically uses a dozen; the PEM files live in a private temporary
directory that disappears at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import ssl
import struct
import tempfile
import threading
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from pop3lab import _engines
from pop3lab._clienthello import Hello, NotAHello, read_hello
from pop3lab.certs import make_cert, write_cert
from pop3lab.config import EndpointConfig
from pop3lab.schannel import TlsProfile, choose

_lock = threading.Lock()
_tempdir: tempfile.TemporaryDirectory[str] | None = None

# TLS alert descriptions SChannel's refusals use (RFC 8446 §6).
_ALERT_CODES = {"handshake_failure": 40, "protocol_version": 70}


class TlsSetup(Protocol):
    """What a channel needs to start TLS: an engine over its BIOs, ready to handshake."""

    async def wrap(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> Any: ...


class OpenSslTls:
    """One OpenSSL context serves every handshake (the endpoint's versions, any suite)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    async def wrap(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> ssl.SSLObject:
        return self.context.wrap_bio(incoming, outgoing, server_side=True)


class SchannelTls:
    """Reads the ClientHello, chooses as SChannel would, then hands the hello to OpenSSL
    narrowed to that choice, or to tlslite-ng when OpenSSL cannot serve it. A refusal is the
    alert SChannel sends; SSL 2.0 is answered only where the profile says so."""

    def __init__(self, profile: TlsProfile, cert_kind: str, cert_name: str) -> None:
        self.profile = profile
        self.cert_kind, self.cert_name = cert_kind, cert_name
        self.ecdsa_key = cert_kind == "ec256"

    async def wrap(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> Any:
        try:
            hello = await read_hello(reader)
        except NotAHello as exc:
            raise ssl.SSLError(str(exc)) from None
        if hello.offer is None:
            await self._answer_sslv2(hello, writer)
            raise ssl.SSLError("an SSL 2.0 hello: answered at most, never completed")
        choice = choose(self.profile, hello.offer, ecdsa_key=self.ecdsa_key)
        if choice.alert is not None:
            writer.write(_alert(_ALERT_CODES[choice.alert]))
            await writer.drain()
            raise ssl.SSLError(f"refused as SChannel does: {choice.alert}")
        incoming.write(hello.raw)
        if _engines.openssl_serves(choice, hello.offer):
            dh_file = _dh_file(choice.dh_bits) if choice.dh_bits else None
            files = _cert_files(self.cert_kind, self.cert_name)
            context = _engines.openssl_context(choice, files, dh_file)
            return context.wrap_bio(incoming, outgoing, server_side=True)
        return _engines.TlsliteObject(choice, self.cert_kind, self.cert_name, incoming, outgoing)

    async def _answer_sslv2(self, hello: Hello, writer: asyncio.StreamWriter) -> None:
        if not self.profile.sslv2:
            return  # SChannel without SSL 2.0 drops such a hello without a word
        writer.write(_sslv2_server_hello(hello.raw, make_cert(self.cert_kind, self.cert_name)))
        await writer.drain()


def server_tls(config: EndpointConfig) -> TlsSetup | None:
    """The endpoint's TLS set-up, or None when it has no certificate bound."""
    if config.cert_kind is None:
        return None
    if config.tls_profile is not None:
        return SchannelTls(config.tls_profile, config.cert_kind, config.cert_name)
    return OpenSslTls(_context(config.cert_kind, config.cert_name, config.tls_min, config.tls_max))


@cache
def _context(kind: str, name: str, low: ssl.TLSVersion, high: ssl.TLSVersion) -> ssl.SSLContext:
    """A context serving certificate `kind` for `name`, accepting versions `low`..`high`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Security level 0 for two reasons: OpenSSL 3 refuses to load the rsa1024 and sha1 test
    # chains otherwise, and TLS 1.0/1.1 handshakes need the SHA-1 based suites it unlocks.
    # The lab must be able to *be* a weak server; the scanner is what judges it. The suites
    # are a well-kept server's (forward secret AEAD), plus the CBC ones TLS 1.0/1.1 need.
    legacy = ":ECDHE+AES" if low < ssl.TLSVersion.TLSv1_2 else ""
    context.set_ciphers(f"ECDHE+AESGCM:ECDHE+CHACHA20{legacy}:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 constants; emulating such servers is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = low
        context.maximum_version = high
    cert_path, key_path = _cert_files(kind, name)
    context.load_cert_chain(cert_path, key_path)
    return context


def _alert(code: int) -> bytes:
    """A fatal alert record, in the TLS 1.0 record version every client reads."""
    return struct.pack("!BHHBB", 21, 0x0301, 2, 2, code)


# SSL 2.0 ciphers in SChannel's default list for 2008 R2 (Microsoft marks both "only used
# when application explicitly requests", so a profile offers SSL 2.0 only when told to).
_SSLV2_CIPHERS = (0x010080, 0x0700C0)


def _sslv2_server_hello(client_hello: bytes, bundle: Any) -> bytes:
    """An SSL 2.0 SERVER-HELLO naming the ciphers both sides share, with the certificate."""
    specs_length = struct.unpack("!H", client_hello[5:7])[0]
    specs = client_hello[11 : 11 + specs_length]
    offered = {int.from_bytes(specs[i : i + 3], "big") for i in range(0, len(specs) - 2, 3)}
    shared = b"".join(c.to_bytes(3, "big") for c in _SSLV2_CIPHERS if c in offered)
    der = ssl.PEM_cert_to_DER_cert(bundle.leaf_pem.decode())
    body = struct.pack("!BBBHHHH", 4, 0, 1, 0x0002, len(der), len(shared), 16)
    body += der + shared + bytes(16)
    return struct.pack("!H", 0x8000 | len(body)) + body


@cache
def _cert_files(kind: str, name: str) -> tuple[Path, Path]:
    """Write the chain and key for (kind, name) once per process."""
    return write_cert(make_cert(kind, name), _directory() / f"{kind}-{name}")


@cache
def _dh_file(bits: int) -> Path:
    """The DH parameters of that size as a PEM file OpenSSL can load."""
    path = _directory() / f"dh{bits}.pem"
    path.write_bytes(_engines.dh_pem(bits))
    return path


def _directory() -> Path:
    """The process-wide temporary directory for PEM files, created on first use."""
    global _tempdir
    with _lock:
        if _tempdir is None:
            _tempdir = tempfile.TemporaryDirectory(prefix="pop3lab-")
            atexit.register(_tempdir.cleanup)
        return Path(_tempdir.name)
