"""TLS profiles: named standards as data, each citing its source and edition.

A profile says which protocol versions may be accepted, which suite weaknesses fail a server
(`forbidden`) and which only warn (`discouraged`), which suites it recommends (any other
accepted suite is "not in the profile's list": a warning), and its minimum DH prime, RSA key
and elliptic-curve key sizes. `tls.protocols`, `tls.ciphers` and `cert.strength` judge by the
policy's profile and name it in their summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner._suites import BY_NAME as SUITES_BY_NAME
from scanner._suites import PROTOCOLS

# What every profile here forbids: broken or no confidentiality, or no authentication.
_BROKEN = frozenset(
    {
        "NULL encryption",
        "anonymous key exchange",
        "EXPORT-grade",
        "RC4",
        "DES",
        "64-bit block cipher",
        "MD5 MAC",
    }
)
_TLS13_AES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")
_TLS13_AEAD = (*_TLS13_AES, "TLS_CHACHA20_POLY1305_SHA256")
_ECDHE_AEAD = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
_DHE_AEAD = (
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)


@dataclass(frozen=True)
class TlsProfile:
    """One named standard. `recommended` None means every suite not forbidden is fine."""

    name: str
    title: str
    source: str
    versions: tuple[str, ...]
    forbidden: frozenset[str]
    discouraged: frozenset[str]
    recommended: frozenset[str] | None
    min_dh_bits: int
    min_rsa_bits: int
    min_ec_bits: int

    def __post_init__(self) -> None:
        unknown = set(self.versions) - set(PROTOCOLS)
        unknown |= set(self.recommended or ()) - set(SUITES_BY_NAME)
        if unknown:
            raise ValueError(f"profile {self.name}: unknown versions or suites {sorted(unknown)}")


def _suites(key_exchanges: tuple[str, ...], ciphers: tuple[str, ...]) -> tuple[str, ...]:
    """`TLS_<kx>_WITH_<cipher>` for each pair, to write a standard's table compactly."""
    return tuple(f"TLS_{kx}_WITH_{cipher}" for kx in key_exchanges for cipher in ciphers)


_AES_CBC = ("AES_128_CBC_SHA", "AES_256_CBC_SHA", "AES_128_CBC_SHA256")
_AES_AEAD = ("AES_128_GCM_SHA256", "AES_256_GCM_SHA384")
_AES_CCM = ("AES_128_CCM", "AES_256_CCM", "AES_128_CCM_8", "AES_256_CCM_8")
# SP 800-52r2 §3.3.1.1: ephemeral (EC)DH with AES, by certificate type.
_NIST_TLS12 = (
    _suites(("ECDHE_ECDSA",), _AES_AEAD + _AES_CCM + _AES_CBC + ("AES_256_CBC_SHA384",))
    + _suites(("ECDHE_RSA",), _AES_AEAD + _AES_CBC + ("AES_256_CBC_SHA384",))
    + _suites(("DHE_RSA",), _AES_AEAD + _AES_CCM + _AES_CBC + ("AES_256_CBC_SHA256",))
    + _suites(("DHE_DSS",), _AES_AEAD + _AES_CBC + ("AES_256_CBC_SHA256",))
)
# TR-02102-2 §3.3.1: forward secret suites with AES and SHA-2 only.
_BSI_TLS12 = (
    _suites(("ECDHE_ECDSA",), (*_AES_AEAD, "AES_128_CCM", "AES_256_CCM"))
    + _suites(("ECDHE_ECDSA", "ECDHE_RSA"), ("AES_128_CBC_SHA256", "AES_256_CBC_SHA384"))
    + _suites(("ECDHE_RSA", "DHE_DSS"), _AES_AEAD)
    + _suites(("DHE_DSS", "DHE_RSA"), ("AES_128_CBC_SHA256", "AES_256_CBC_SHA256"))
    + _suites(("DHE_RSA",), (*_AES_AEAD, "AES_128_CCM", "AES_256_CCM"))
)

_MOZILLA = "Mozilla Server Side TLS guidelines, version 5.7 (ssl-config.mozilla.org)"

PROFILES: tuple[TlsProfile, ...] = (
    TlsProfile(
        name="mozilla-modern",
        title="Mozilla modern",
        source=f"{_MOZILLA}, “modern” configuration",
        versions=("TLSv1.3",),
        forbidden=_BROKEN | {"3DES"},
        discouraged=frozenset({"no forward secrecy", "CBC mode"}),
        recommended=frozenset(_TLS13_AEAD),
        min_dh_bits=2048,
        min_rsa_bits=2048,
        min_ec_bits=256,
    ),
    TlsProfile(
        name="mozilla-intermediate",
        title="Mozilla intermediate",
        source=f"{_MOZILLA}, “intermediate” configuration",
        versions=("TLSv1.2", "TLSv1.3"),
        forbidden=_BROKEN | {"3DES"},
        discouraged=frozenset({"no forward secrecy", "CBC mode"}),
        recommended=frozenset(_TLS13_AEAD + _ECDHE_AEAD + _DHE_AEAD),
        min_dh_bits=2048,
        min_rsa_bits=2048,
        min_ec_bits=256,
    ),
    TlsProfile(
        name="mozilla-old",
        title="Mozilla old",
        source=f"{_MOZILLA}, “old” configuration (legacy clients only)",
        versions=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
        forbidden=_BROKEN,
        discouraged=frozenset(),
        recommended=frozenset(
            _TLS13_AEAD
            + _ECDHE_AEAD
            + _DHE_AEAD
            + (
                "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
                "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
                "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_RSA_WITH_AES_128_CBC_SHA256",
                "TLS_RSA_WITH_AES_256_CBC_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_RSA_WITH_AES_256_CBC_SHA",
                "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            )
        ),
        min_dh_bits=1024,
        min_rsa_bits=2048,
        min_ec_bits=256,
    ),
    TlsProfile(
        name="nist-sp800-52r2",
        title="NIST SP 800-52 Rev. 2",
        source=(
            "NIST SP 800-52 Rev. 2, Guidelines for the Selection, Configuration, and Use of TLS "
            "Implementations (August 2019), §3.1 versions and §3.3.1 cipher suites"
        ),
        versions=("TLSv1.2", "TLSv1.3"),
        forbidden=_BROKEN | {"3DES"},
        discouraged=frozenset({"no forward secrecy"}),
        recommended=frozenset(
            (
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_AES_128_CCM_SHA256",
                "TLS_AES_128_CCM_8_SHA256",
                *_NIST_TLS12,
            )
        ),
        min_dh_bits=2048,
        min_rsa_bits=2048,
        min_ec_bits=256,
    ),
    TlsProfile(
        name="bsi-tr-02102-2",
        title="BSI TR-02102-2",
        source=(
            "BSI TR-02102-2, Cryptographic Mechanisms: Recommendations and Key Lengths, Part 2: "
            "Use of TLS, version 2025-01, §3.2 versions, §3.3.1 cipher suites, §3.6 key sizes"
        ),
        versions=("TLSv1.2", "TLSv1.3"),
        forbidden=_BROKEN | {"3DES"},
        discouraged=frozenset({"no forward secrecy"}),
        recommended=frozenset(
            (
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_AES_128_CCM_SHA256",
                *_BSI_TLS12,
            )
        ),
        min_dh_bits=3000,
        min_rsa_bits=3000,
        min_ec_bits=250,
    ),
    TlsProfile(
        name="pci-dss-4",
        title="PCI DSS 4.0",
        source=(
            "PCI DSS v4.0, requirement 4.2.1 and the glossary's “strong cryptography” (at least "
            "112 bits of effective key strength; no SSL or early TLS)"
        ),
        versions=("TLSv1.2", "TLSv1.3"),
        forbidden=_BROKEN | {"3DES"},
        discouraged=frozenset(),
        recommended=None,
        min_dh_bits=2048,
        min_rsa_bits=2048,
        min_ec_bits=224,
    ),
)

BY_NAME: dict[str, TlsProfile] = {profile.name: profile for profile in PROFILES}
DEFAULT_PROFILE = "mozilla-intermediate"


def profile_named(name: str) -> TlsProfile:
    """The profile of that name; ValueError naming the choices otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        choices = ", ".join(BY_NAME)
        raise ValueError(f"unknown TLS profile {name!r}; choose one of {choices}") from None
