"""What Windows' SChannel serves by default, as data, and the choice it makes for a ClientHello.

Exchange has no TLS settings of its own: its POP3 and IMAP4 services take the protocols, cipher
suites and their order from the Windows Server it runs on. Each `WindowsTls` below is that
Windows' default, from Microsoft's win32 documentation: "Protocols in TLS/SSL (Schannel SSP)"
for the protocols, "TLS Cipher Suites in Windows 7" (2008 R2, after update 3042058), "... in
Windows 8.1" (2012 R2, after update 2919355), "... in Windows 10 v1607" (2016), "... in
Windows 10 v1809" (2019) and "... in Windows Server 2022" for the suites in priority order, and
"TLS Elliptic Curves in Windows 10 version 1607 and later" for the curve order from 2016 on.
Before Windows 10 a suite's curve is part of its name (`..._P256`), which is how 2008 R2 and
2012 R2 order curves and why some ECDSA suites there exist for P-384 only. Suites the lists
mark "only used when application explicitly requests" (the NULL ones) are left out.

SChannel enforces its own order: the server picks the first suite of its list that the client
offered and that the negotiated version can carry; `choose` does the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner._suites import BY_NAME, PROTOCOLS, Suite

# Named groups as the TLS registry codes them, under SChannel's names.
X25519, P256, P384 = 29, 23, 24
_CURVE_SUFFIX = {"_P256": P256, "_P384": P384}

# The pre-Windows 10 list (identical for Windows 7 and 8.1 once both are updated). The
# protocol column of Microsoft's table lists SSL 3.0 only for the suites in _SSL3_SUITES.
_WINDOWS_7_AND_8_1 = (
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA_P256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA_P384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA_P256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA_P384",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA_P384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA_P256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA_P384",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_RC4_128_MD5",
)
_SSL3_SUITES = frozenset(
    {"TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_RC4_128_MD5"}
)
# Windows 10 v1607 = Windows Server 2016.
_WINDOWS_2016 = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_RC4_128_MD5",
)
# Windows 10 v1809 = Windows Server 2019: DHE-CBC, DHE-DSS and RC4 left the default list.
_WINDOWS_2019 = (
    *_WINDOWS_2016[:14],
    *_WINDOWS_2016[16:23],
)
# Windows Server 2022: as 2019 (TLS 1.3 suites are kept apart, in TLS13_SUITES).
_WINDOWS_2022 = _WINDOWS_2019
_TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")


@dataclass(frozen=True)
class SuiteEntry:
    """One line of SChannel's list: a suite, and for pre-Windows 10 ECDHE the one curve it
    may use (None: any curve of the profile's curve order)."""

    suite: Suite
    curve: int | None = None


def _entries(names: tuple[str, ...]) -> tuple[SuiteEntry, ...]:
    entries = []
    for name in names:
        curve = next((c for s, c in _CURVE_SUFFIX.items() if name.endswith(s)), None)
        base = name[: -len("_P256")] if curve is not None else name
        entries.append(SuiteEntry(BY_NAME[base], curve))
    return tuple(entries)


@dataclass(frozen=True)
class WindowsTls:
    """One Windows Server's SChannel defaults as a server: protocols, suites in priority
    order, curves in priority order and the size of its DHE prime.

    `sslv2` is an option of 2008 R2 only: Microsoft's table says its SSL 2.0 server side is
    enabled, but whether it still answers depends on the update level, so it is never
    assumed. `build` is (major, minor, build) as NTLM's Version field reports it (2008 R2 with
    its service pack 1).
    """

    name: str
    protocols: tuple[str, ...]
    suites: tuple[SuiteEntry, ...]
    curves: tuple[int, ...]
    dh_bits: int
    build: tuple[int, int, int]
    tls13_suites: tuple[Suite, ...] = ()
    ssl3_suites: frozenset[str] = field(default=_SSL3_SUITES)
    sslv2_possible: bool = False


WINDOWS: dict[str, WindowsTls] = {
    # TLS 1.1 and 1.2 exist on 2008 R2 but are disabled on the server side by default.
    "2008r2": WindowsTls(
        "Windows Server 2008 R2",
        ("SSLv3", "TLSv1"),
        _entries(_WINDOWS_7_AND_8_1),
        (P256, P384),
        1024,
        build=(6, 1, 7601),
        sslv2_possible=True,
    ),
    "2012r2": WindowsTls(
        "Windows Server 2012 R2",
        ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"),
        _entries(_WINDOWS_7_AND_8_1),
        (P256, P384),
        1024,
        build=(6, 3, 9600),
    ),
    # From 2016 the DHE prime is 2048 bits (ServerMinKeyBitLength's default); SSL 3.0 is
    # disabled and SSL 2.0 removed.
    "2016": WindowsTls(
        "Windows Server 2016",
        ("TLSv1", "TLSv1.1", "TLSv1.2"),
        _entries(_WINDOWS_2016),
        (X25519, P256, P384),
        2048,
        build=(10, 0, 14393),
    ),
    "2019": WindowsTls(
        "Windows Server 2019",
        ("TLSv1", "TLSv1.1", "TLSv1.2"),
        _entries(_WINDOWS_2019),
        (X25519, P256, P384),
        2048,
        build=(10, 0, 17763),
    ),
    "2022": WindowsTls(
        "Windows Server 2022",
        ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
        _entries(_WINDOWS_2022),
        (X25519, P256, P384),
        2048,
        build=(10, 0, 20348),
        tls13_suites=tuple(BY_NAME[name] for name in _TLS13_SUITES),
    ),
}

# The Windows Server versions each Exchange release is supported on.
EXCHANGE_ON_WINDOWS: dict[str, tuple[str, ...]] = {
    "exchange2010": ("2008r2", "2012r2"),
    "exchange2013": ("2008r2", "2012r2"),
    "exchange2016": ("2012r2", "2016"),
    "exchange2019": ("2019", "2022"),
}


@dataclass(frozen=True)
class TlsProfile:
    """What one endpoint serves: a Windows' defaults, as Exchange's setup left them."""

    windows: WindowsTls
    protocols: tuple[str, ...]
    sslv2: bool = False


def exchange_tls(exchange: str, windows: str, *, sslv2: bool = False) -> TlsProfile:
    """The TLS an Exchange release serves on a Windows Server version. Exchange 2019's setup
    turns everything but TLS 1.2 (and 1.3, where Windows has it) off; older releases leave
    Windows' defaults alone."""
    if windows not in EXCHANGE_ON_WINDOWS.get(exchange, ()):
        raise ValueError(f"{exchange} does not run on Windows Server {windows}")
    defaults = WINDOWS[windows]
    if sslv2 and not defaults.sslv2_possible:
        raise ValueError(f"{defaults.name} has no SSL 2.0")
    protocols = defaults.protocols
    if exchange == "exchange2019":
        protocols = tuple(p for p in protocols if p in ("TLSv1.2", "TLSv1.3"))
    return TlsProfile(defaults, protocols, sslv2)


def served(profile: TlsProfile) -> dict[str, list[str]]:
    """The suites `profile` serves per version with the lab's RSA certificate, in SChannel's
    order, read from its lists rather than by asking it: what a complete enumeration finds."""
    data = profile.windows
    expected: dict[str, list[str]] = {}
    for protocol in profile.protocols:
        if protocol == "TLSv1.3":
            names = [suite.name for suite in data.tls13_suites]
        else:
            names = []
            for entry in data.suites:
                suite = entry.suite
                usable = _carries(data, protocol, suite) and _key_serves(suite, ecdsa_key=False)
                if usable and suite.name not in names:  # the P-256 and P-384 lines of one suite
                    names.append(suite.name)
        if names:
            expected[protocol] = names
    return expected


@dataclass(frozen=True)
class Offer:
    """What a ClientHello asks for: the versions it can speak (highest first), its suites,
    its groups (None when it sent no supported_groups) and the groups it sent shares for."""

    versions: tuple[str, ...]
    suites: frozenset[int]
    groups: tuple[int, ...] | None
    key_shares: tuple[int, ...] = ()


@dataclass(frozen=True)
class Choice:
    """What SChannel answers: a version, a suite and its group or DH size, or an alert."""

    protocol: str | None = None
    suite: Suite | None = None
    group: int | None = None
    dh_bits: int | None = None
    alert: str | None = None


def choose(profile: TlsProfile, offer: Offer, *, ecdsa_key: bool = False) -> Choice:
    """SChannel's answer to `offer` from a server whose certificate has an RSA key (or an
    ECDSA one): the highest common version, then the first suite of its list that the
    client offered, that version carries and the key can serve."""
    protocol = next((v for v in offer.versions if v in profile.protocols), None)
    if protocol is None:
        return Choice(alert="protocol_version")
    if protocol == "TLSv1.3":
        return _choose_tls13(profile, offer)
    windows = profile.windows
    for entry in windows.suites:
        suite = entry.suite
        if suite.code not in offer.suites or not _carries(windows, protocol, suite):
            continue
        if not _key_serves(suite, ecdsa_key):
            continue
        if suite.elliptic_curve:
            group = _curve(entry, windows, offer)
            if group is None:
                continue
            return Choice(protocol, suite, group=group)
        dh_bits = windows.dh_bits if suite.diffie_hellman else None
        return Choice(protocol, suite, dh_bits=dh_bits)
    return Choice(alert="handshake_failure")


def _choose_tls13(profile: TlsProfile, offer: Offer) -> Choice:
    suite = next((s for s in profile.windows.tls13_suites if s.code in offer.suites), None)
    groups = offer.groups or ()
    group = next((g for g in profile.windows.curves if g in groups), None)
    if suite is None or group is None:
        return Choice(alert="handshake_failure")
    return Choice("TLSv1.3", suite, group=group)


def _carries(windows: WindowsTls, protocol: str, suite: Suite) -> bool:
    if PROTOCOLS.index(protocol) < PROTOCOLS.index(suite.oldest_protocol):
        return False
    return protocol != "SSLv3" or suite.name in windows.ssl3_suites


def _key_serves(suite: Suite, ecdsa_key: bool) -> bool:
    """ECDSA suites need an ECDSA key, DSS ones a DSA key (the lab has none), the rest RSA."""
    if "_DSS" in suite.key_exchange:
        return False
    return ("ECDSA" in suite.key_exchange) == ecdsa_key


def _curve(entry: SuiteEntry, windows: WindowsTls, offer: Offer) -> int | None:
    """The curve of an ECDHE suite: its own (pre-Windows 10), else the first of Windows'
    order the client supports. A client without supported_groups is taken to support
    SChannel's first curve (RFC 4492 lets a server pick)."""
    if offer.groups is None:
        return entry.curve or windows.curves[0]
    candidates = (entry.curve,) if entry.curve is not None else windows.curves
    return next((c for c in candidates if c in offer.groups), None)
