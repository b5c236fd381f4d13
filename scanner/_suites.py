"""Cipher suites as the protocol-level probes offer them and the profiles judge them.

Every suite of the IANA registry (scanner._iana_suites) with what its name says: the key
exchange, whether it is forward secret, its bulk cipher and MAC, the oldest protocol version
that can negotiate it, and the weaknesses a profile may forbid. Names are IANA's, so a finding
reads the same as in testssl.sh, sslyze and Microsoft's `Get-TlsCipherSuite`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from scanner._iana_suites import REGISTRY

# Protocol versions from oldest to newest, as the facts name them; SSLv2 has its own hello.
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# How summaries name them.
PROTOCOL_LABEL = {
    "SSLv2": "SSLv2",
    "SSLv3": "SSLv3",
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}
# The record-layer version of each protocol after SSLv2.
WIRE_VERSION = {"SSLv3": 0x0300, "TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303}
TLS13_WIRE_VERSION = 0x0304
PROTOCOL_BY_WIRE = {code: name for name, code in WIRE_VERSION.items()} | {
    TLS13_WIRE_VERSION: "TLSv1.3"
}

# What a profile can hold against a suite. The words are the ones its findings print.
WEAKNESSES = (
    "NULL encryption",
    "anonymous key exchange",
    "EXPORT-grade",
    "RC4",
    "DES",
    "3DES",
    "64-bit block cipher",
    "MD5 MAC",
    "no forward secrecy",
    "CBC mode",
)

_AEAD = ("_GCM", "_CCM", "CHACHA20_POLY1305")
# Key exchanges whose secret is thrown away after the handshake.
_EPHEMERAL = ("DHE", "ECDHE", "DHE_PSK", "ECDHE_PSK", "ECCPWD")


@dataclass(frozen=True)
class Suite:
    """One cipher suite: its code on the wire, its IANA name and what the name tells."""

    code: int
    name: str
    key_exchange: str
    cipher: str
    mac: str

    @property
    def tls13(self) -> bool:
        return self.key_exchange == "TLS 1.3"

    @property
    def aead(self) -> bool:
        return any(mode in self.cipher for mode in _AEAD)

    @property
    def exchange(self) -> str:
        """The key exchange without the certificate type: ECDHE for ECDHE_RSA, DH (static)
        for DH_DSS; PSK, anonymous and TLS 1.3 exchanges as named."""
        name = self.key_exchange
        if name.endswith("_PSK") or "anon" in name or "_" not in name:
            return name
        return "SRP" if name.startswith("SRP") else name.split("_")[0]

    @property
    def forward_secret(self) -> bool:
        return self.tls13 or self.exchange in _EPHEMERAL or self.exchange == "DH_anon"

    @property
    def diffie_hellman(self) -> bool:
        """An ephemeral finite-field Diffie-Hellman exchange, whose group size matters."""
        return self.exchange in ("DHE", "DHE_PSK", "DH_anon")

    @property
    def sends_dh_prime(self) -> bool:
        """A DHE exchange whose ServerKeyExchange starts with the prime (DHE_PSK's starts
        with the PSK identity hint instead): the one whose prime size can be read and judged."""
        return self.exchange in ("DHE", "DH_anon")

    @property
    def elliptic_curve(self) -> bool:
        """An ephemeral elliptic-curve exchange, whose curve the server picks."""
        return self.exchange in ("ECDHE", "ECDHE_PSK", "ECDH_anon")

    @property
    def oldest_protocol(self) -> str:
        """The oldest version that can negotiate it: AEAD and SHA-2 MACs came with TLS 1.2."""
        if self.tls13:
            return "TLSv1.3"
        if self.aead or self.mac in ("SHA256", "SHA384"):
            return "TLSv1.2"
        return "SSLv3"

    @functools.cached_property
    def weaknesses(self) -> frozenset[str]:
        return frozenset(_weaknesses(self))


def _weaknesses(suite: Suite) -> list[str]:
    found = []
    if suite.cipher in ("NULL", "") or suite.name in ("TLS_SHA256_SHA256", "TLS_SHA384_SHA384"):
        found.append("NULL encryption")
    if "anon" in suite.key_exchange or suite.key_exchange == "NULL":
        found.append("anonymous key exchange")
    if "EXPORT" in suite.name:
        found.append("EXPORT-grade")
    if suite.cipher.startswith("RC4"):
        found.append("RC4")
    if suite.cipher.startswith(("DES", "DES40")):
        found.append("DES")
    if suite.cipher.startswith("3DES"):
        found.append("3DES")
    if suite.cipher.startswith(("IDEA", "RC2")):
        # As weak as 3DES to SWEET32's birthday attack, and long deprecated (RFC 5469).
        found.append("64-bit block cipher")
    if suite.mac == "MD5":
        found.append("MD5 MAC")
    if not suite.forward_secret:
        found.append("no forward secrecy")
    if "CBC" in suite.cipher:
        found.append("CBC mode")
    return found


def parse_suite(code: int, name: str) -> Suite:
    """A Suite from its IANA name: `TLS_<kx>_WITH_<cipher>_<mac>`, or TLS 1.3's
    `TLS_<aead>_<hash>` (the integrity-only TLS_SHA256_SHA256 included)."""
    if "_WITH_" not in name:
        cipher, _, mac = name.removeprefix("TLS_").rpartition("_")
        return Suite(code, name, "TLS 1.3", cipher, mac)
    key_exchange, _, rest = name.removeprefix("TLS_").partition("_WITH_")
    cipher, mac = _split_cipher_and_mac(rest)
    key_exchange = key_exchange.replace("_EXPORT1024", "").replace("_EXPORT", "")
    return Suite(code, name, key_exchange, cipher, mac)


def _split_cipher_and_mac(rest: str) -> tuple[str, str]:
    """'AES_128_GCM_SHA256' → ('AES_128_GCM', 'SHA256'); CCM suites name no hash ('AES_128_CCM'
    → AEAD); 'NULL_NULL' → ('NULL', 'NULL')."""
    if rest.endswith(("_CCM", "_CCM_8")):
        return rest, "AEAD"
    cipher, _, mac = rest.rpartition("_")
    if any(mode in cipher for mode in _AEAD):
        return cipher, "AEAD"
    return cipher, mac


SUITES: tuple[Suite, ...] = tuple(parse_suite(code, name) for code, name in REGISTRY)
BY_CODE: dict[int, Suite] = {suite.code: suite for suite in SUITES}
BY_NAME: dict[str, Suite] = {suite.name: suite for suite in SUITES}


@functools.cache
def suites_for(protocol: str) -> tuple[Suite, ...]:
    """The suites a client of `protocol` may offer: TLS 1.3 has its own, older versions take
    those their record layer can carry."""
    if protocol == "TLSv1.3":
        return tuple(suite for suite in SUITES if suite.tls13)
    rank = PROTOCOLS.index(protocol)
    return tuple(
        suite
        for suite in SUITES
        if not suite.tls13 and PROTOCOLS.index(suite.oldest_protocol) <= rank
    )


def suite_name(code: int) -> str:
    """The IANA name of a code, or its hex form for a code the registry does not know."""
    suite = BY_CODE.get(code)
    return suite.name if suite else f"0x{code:04X}"


@dataclass(frozen=True)
class Sslv2Cipher:
    """An SSL 2.0 cipher kind: three bytes on the wire, every one of them weak."""

    code: int
    name: str
    weaknesses: frozenset[str]


_SSL2_BASE = frozenset({"no forward secrecy", "MD5 MAC"})
SSLV2_CIPHERS: tuple[Sslv2Cipher, ...] = (
    Sslv2Cipher(0x010080, "SSL_CK_RC4_128_WITH_MD5", _SSL2_BASE | {"RC4"}),
    Sslv2Cipher(0x020080, "SSL_CK_RC4_128_EXPORT40_WITH_MD5", _SSL2_BASE | {"RC4", "EXPORT-grade"}),
    Sslv2Cipher(0x030080, "SSL_CK_RC2_128_CBC_WITH_MD5", _SSL2_BASE | {"CBC mode"}),
    Sslv2Cipher(
        0x040080, "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5", _SSL2_BASE | {"EXPORT-grade", "CBC mode"}
    ),
    Sslv2Cipher(0x050080, "SSL_CK_IDEA_128_CBC_WITH_MD5", _SSL2_BASE | {"CBC mode"}),
    Sslv2Cipher(0x060040, "SSL_CK_DES_64_CBC_WITH_MD5", _SSL2_BASE | {"DES", "CBC mode"}),
    Sslv2Cipher(0x0700C0, "SSL_CK_DES_192_EDE3_CBC_WITH_MD5", _SSL2_BASE | {"3DES", "CBC mode"}),
)
SSLV2_BY_CODE: dict[int, Sslv2Cipher] = {cipher.code: cipher for cipher in SSLV2_CIPHERS}
_SSLV2_BY_NAME: dict[str, Sslv2Cipher] = {cipher.name: cipher for cipher in SSLV2_CIPHERS}


def weaknesses_of(name: str) -> frozenset[str]:
    """The weaknesses of a suite or SSL 2.0 cipher by name; none for a name we do not know."""
    if name in BY_NAME:
        return BY_NAME[name].weaknesses
    if name in _SSLV2_BY_NAME:
        return _SSLV2_BY_NAME[name].weaknesses
    return frozenset()
