"""The TLS engines behind a Windows profile: OpenSSL where it can serve exactly SChannel's
choice, tlslite-ng (pure Python, a development dependency) for the rest.

Both run over the connection's memory BIOs (pop3lab._channel), so the channel drives them
alike. OpenSSL serves a choice exactly when its context is narrowed to that one version,
suite and group (or DH prime): it is much the faster, so it takes everything the local build
can do. What Debian's OpenSSL 3 cannot do (SSL 3.0, RC4, 3DES) goes to tlslite-ng, narrowed
the same way.
"""

from __future__ import annotations

import base64
import errno
import functools
import ssl
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pop3lab.certs import make_cert
from pop3lab.schannel import P256, P384, X25519, Choice, Offer

_OPENSSL_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_OPENSSL_GROUPS = {X25519: "X25519", P256: "prime256v1", P384: "secp384r1"}
# OpenSSL's own TLS 1.3 preference, which Python cannot change: it serves SChannel's choice
# only when its pick among the offered suites is the same one.
_OPENSSL_TLS13_ORDER = (0x1302, 0x1303, 0x1301)


@functools.cache
def _openssl_names() -> dict[int, str]:
    """The suites of the local OpenSSL by IANA code, at the level that unlocks them all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return {cipher["id"] & 0xFFFF: cipher["name"] for cipher in context.get_ciphers()}


def openssl_serves(choice: Choice, offer: Offer) -> bool:
    """Whether a narrowed OpenSSL context answers `offer` exactly with `choice`."""
    assert choice.suite is not None and choice.protocol is not None
    if choice.protocol not in _OPENSSL_VERSIONS or choice.suite.code not in _openssl_names():
        return False
    if choice.protocol == "TLSv1.3":
        picked = next(code for code in _OPENSSL_TLS13_ORDER if code in offer.suites)
        return picked == choice.suite.code
    return True


@functools.cache
def openssl_context(choice: Choice, cert_files: tuple[Path, Path], dh_file: Path | None) -> Any:
    """A server context that can only agree on `choice` (cached: a profile has a few dozen)."""
    assert choice.suite is not None and choice.protocol is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = _OPENSSL_VERSIONS[choice.protocol]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    if choice.protocol != "TLSv1.3":
        context.set_ciphers(_openssl_names()[choice.suite.code] + ":@SECLEVEL=0")
    else:
        context.set_ciphers("ALL:@SECLEVEL=0")
    if choice.group is not None:
        context.set_ecdh_curve(_OPENSSL_GROUPS[choice.group])
    if dh_file is not None:
        context.load_dh_params(str(dh_file))
    context.load_cert_chain(*cert_files)
    return context


@functools.cache
def dh_group(bits: int) -> tuple[int, int]:
    """(generator, prime) of the well-known group of that size: RFC 2409's 1024-bit group 2,
    RFC 7919's ffdhe2048; SChannel's own primes are of those sizes too."""
    mathtls = _tlslite().mathtls
    generator, prime = {1024: mathtls.RFC2409_GROUP2, 2048: mathtls.FFDHE2048}[bits]
    return int(generator), int(prime)


def dh_pem(bits: int) -> bytes:
    """The DH parameters of `dh_group(bits)` as OpenSSL reads them: PKCS #3's DER
    SEQUENCE { prime, generator }, written here because `cryptography` deprecates its FFDH."""
    generator, prime = dh_group(bits)
    body = _der_integer(prime) + _der_integer(generator)
    der = b"\x30" + _der_length(len(body)) + body
    lines = textwrap.wrap(base64.b64encode(der).decode(), 64)
    return "\n".join(
        ["-----BEGIN DH PARAMETERS-----", *lines, "-----END DH PARAMETERS-----", ""]
    ).encode()


def _der_integer(value: int) -> bytes:
    encoded = value.to_bytes(value.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return b"\x02" + _der_length(len(encoded)) + encoded


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


# --- tlslite-ng ---------------------------------------------------------------------------

_TLSLITE_VERSIONS = {
    "SSLv3": (3, 0),
    "TLSv1": (3, 1),
    "TLSv1.1": (3, 2),
    "TLSv1.2": (3, 3),
    "TLSv1.3": (3, 4),
}
_TLSLITE_CIPHERS = {
    "AES_128_CBC": "aes128",
    "AES_256_CBC": "aes256",
    "AES_128_GCM": "aes128gcm",
    "AES_256_GCM": "aes256gcm",
    "3DES_EDE_CBC": "3des",
    "RC4_128": "rc4",
    "CHACHA20_POLY1305": "chacha20-poly1305",
}
_TLSLITE_MACS = {"SHA": "sha", "MD5": "md5", "SHA256": "sha256", "SHA384": "sha384"}
_TLSLITE_GROUPS = {X25519: "x25519", P256: "secp256r1", P384: "secp384r1"}


class _BioSocket:
    """The socket tlslite-ng expects, over the channel's memory BIOs: a read with nothing
    buffered says 'would block', which tlslite's generators turn into 'want read'."""

    def __init__(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self.incoming, self.outgoing = incoming, outgoing

    def recv(self, size: int) -> bytes:
        data = self.incoming.read(size)
        if not data and not self.incoming.eof:
            raise BlockingIOError(errno.EWOULDBLOCK, "no data buffered")
        return data

    def send(self, data: bytes) -> int:
        return self.outgoing.write(bytes(data))

    sendall = send

    def close(self) -> None:
        pass


class TlsliteObject:
    """The part of `ssl.SSLObject` the channel uses, served by tlslite-ng for one choice."""

    def __init__(
        self, choice: Choice, cert_kind: str, name: str, incoming: Any, outgoing: Any
    ) -> None:
        self._connection = _tlslite().TLSConnection(_BioSocket(incoming, outgoing))
        chain, key = _tlslite_credentials(cert_kind, name)
        self._pending: Iterator[Any] | None = self._connection.handshakeServerAsync(
            certChain=chain, privateKey=key, settings=_tlslite_settings(choice)
        )
        self._reading: Iterator[Any] | None = None

    def do_handshake(self) -> None:
        """Run the handshake until it needs bytes from the peer (SSLWantReadError)."""
        if self._pending is not None:
            self._drive(self._pending)
            self._pending = None

    def read(self, size: int) -> bytes:
        """Application data, b"" once the peer closed; SSLWantReadError when none is ready."""
        if self._reading is None:
            self._reading = self._connection.readAsync(size)
        result = self._drive(self._reading)
        self._reading = None
        return bytes(result or b"")

    def write(self, data: bytes) -> int:
        self._drive(self._connection.writeAsync(data))
        return len(data)

    def unwrap(self) -> None:
        """Send close_notify; the peer's is not awaited."""
        for step in self._connection.closeAsync():
            if step == 0:
                break

    def version(self) -> str | None:
        versions = {value: key for key, value in _TLSLITE_VERSIONS.items()}
        return versions.get(tuple(self._connection.version))

    @staticmethod
    def _drive(steps: Iterator[Any]) -> Any:
        """Advance a tlslite generator: 0 means it needs more bytes, 1 never waits here (the
        BIO takes every write), anything else is its result."""
        try:
            for step in steps:
                if step == 0:
                    raise ssl.SSLWantReadError("tlslite-ng wants more bytes")
                if step != 1:
                    return step
        except _tlslite().errors.TLSError as exc:
            raise ssl.SSLError(f"tlslite-ng: {exc!r}") from None
        return None


@functools.cache
def _tlslite() -> Any:
    """tlslite-ng, imported on first use and made as lenient as SChannel: it refuses a TLS 1.3
    hello that lists the old binary-field curves next to the modern ones (as protocol-level
    probes do), and any hello whose SNI is not a DNS name (testssl.sh sends the IP address it
    was given), both of which Windows answers, as OpenSSL does."""
    import tlslite  # type: ignore[import-untyped]
    import tlslite.errors  # type: ignore[import-untyped]
    import tlslite.mathtls  # type: ignore[import-untyped]
    import tlslite.tlsconnection  # type: ignore[import-untyped]

    tlslite.tlsconnection.TLS_1_3_FORBIDDEN_GROUPS = frozenset()
    tlslite.tlsconnection.is_valid_hostname = lambda name: True
    return tlslite


@functools.cache
def _tlslite_credentials(cert_kind: str, name: str) -> tuple[Any, Any]:
    tlslite = _tlslite()
    bundle = make_cert(cert_kind, name)
    chain = tlslite.X509CertChain()
    chain.parsePemList(bundle.chain_pem.decode())
    return chain, tlslite.parsePEMKey(bundle.key_pem.decode(), private=True)


@functools.cache
def _tlslite_settings(choice: Choice) -> Any:
    """Settings under which tlslite-ng can agree on nothing but `choice`."""
    assert choice.suite is not None and choice.protocol is not None
    suite = choice.suite
    settings = _tlslite().HandshakeSettings()
    settings.minVersion = settings.maxVersion = _TLSLITE_VERSIONS[choice.protocol]
    settings.cipherNames = [_TLSLITE_CIPHERS[suite.cipher]]
    settings.macNames = ["aead"] if suite.aead else [_TLSLITE_MACS[suite.mac]]
    if not suite.tls13:
        settings.keyExchangeNames = [suite.key_exchange.lower()]
    if choice.group is not None:
        settings.eccCurves = [_TLSLITE_GROUPS[choice.group]]
        settings.keyShares = [_TLSLITE_GROUPS[choice.group]]
    if choice.dh_bits is not None:
        settings.dhParams = dh_group(choice.dh_bits)
    # SChannel of these years sends neither; keeping them off keeps old clients happy.
    settings.useEncryptThenMAC = False
    settings.useExtendedMasterSecret = choice.protocol != "SSLv3"
    settings.use_heartbeat_extension = False
    return settings
