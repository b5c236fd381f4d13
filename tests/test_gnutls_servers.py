"""Real TLS stacks: Courier's and GNU Mailutils' pop3d on GnuTLS (tests/gnutls_servers.py), each
in the five configurations of CONFIGS. First that every one serves POP3 on both entry points,
then that gnutls-cli's ground truth (tests/gnutls_truth.py) is what the configuration means,
and last that the scanner's own enumeration says exactly what gnutls-cli found.

Every server, scan and ground truth is made once and shared: the scans of all ten servers run
at once on first use, and each ground truth (a few hundred handshakes) once per entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop3lab.certs import root_ca_pem
from scanner import Policy, ScanReport, Settings, scan
from scanner._facts import EndpointFacts, TlsSupport
from scanner._suites import BY_NAME, PROTOCOLS
from tests import gnutls_servers, gnutls_truth
from tests.dnsserver import DnsServer
from tests.gnutls_servers import (
    CONFIGS,
    HOST,
    MODERN,
    RC4_ON_TLS12,
    REMEDIED,
    SERVER_KINDS,
    SERVICE_NAME,
    STATIC_RSA_ONLY,
    WINDOWS_2008_R2,
    WINDOWS_2016,
    CourierPop3,
    GnutlsConfig,
    GnutlsPop3Server,
    GnutlsServerError,
    GnutlsServerFactory,
)

pytestmark = pytest.mark.gnutls

Kind = type[GnutlsPop3Server]
Truth = dict[str, frozenset[str]]
ENTRY_POINTS = ("pop3s", "stls")
POLICY = Policy(ca_bundle_pem=root_ca_pem().decode(), use_system_trust=False)


def _servers(*configs: GnutlsConfig) -> list[object]:
    return [
        pytest.param(kind, config, id=f"{kind.kind}-{config}")
        for kind in SERVER_KINDS
        for config in configs
    ]


def _entries(*configs: GnutlsConfig) -> list[object]:
    return [
        pytest.param(kind, config, entry, id=f"{kind.kind}-{config}-{entry}")
        for kind in SERVER_KINDS
        for config in configs
        for entry in ENTRY_POINTS
    ]


@pytest.fixture(scope="module")
def report_of(gnutls_server: GnutlsServerFactory) -> Iterator[Callable[..., ScanReport]]:
    """`report_of(kind, config)`: the scanner's report on that server. The first call scans
    every server at once, with a DNS server on loopback naming the service."""
    dns = DnsServer({SERVICE_NAME: {"A": [HOST]}}).start()
    reports: dict[tuple[Kind, GnutlsConfig], ScanReport] = {}

    def report(kind: Kind, config: GnutlsConfig) -> ScanReport:
        if not reports:
            servers = {(k, c): gnutls_server(k, c) for k in SERVER_KINDS for c in CONFIGS}
            settings = Settings(allow_networks=("127.0.0.0/8",), timeout=5, resolver=dns.address)
            found = scan([server.target() for server in servers.values()], settings, POLICY)
            reports.update(zip(servers, found, strict=True))
        return reports[kind, config]

    yield report
    dns.stop()


@pytest.fixture(scope="module")
def endpoint_of(report_of: Callable[..., ScanReport]) -> Callable[..., EndpointFacts]:
    """`endpoint_of(kind, config)`: the scanner's facts on that server's one address."""
    return lambda kind, config: report_of(kind, config).endpoints[0]


@pytest.fixture(scope="module")
def truth_of(gnutls_server: GnutlsServerFactory) -> Callable[..., Truth]:
    """`truth_of(kind, config, entry)`: gnutls-cli's ground truth there, found once."""
    found: dict[tuple[Kind, GnutlsConfig, str], Truth] = {}

    def truth(kind: Kind, config: GnutlsConfig, entry: str) -> Truth:
        if (kind, config, entry) not in found:
            server = gnutls_server(kind, config)
            port = server.pop3s_port if entry == "pop3s" else server.pop3_port
            found[kind, config, entry] = gnutls_truth.accepted_suites(
                server.host, port, starttls=entry == "stls"
            )
        return found[kind, config, entry]

    return truth


def _support(endpoint: EndpointFacts, entry: str) -> TlsSupport | None:
    if entry == "pop3s":
        return endpoint.pop3s.support if endpoint.pop3s else None
    stls = endpoint.pop3.stls if endpoint.pop3 else None
    return stls.support if stls else None


# Both entry points really serve POP3.


@pytest.mark.parametrize(("kind", "config"), _servers(*CONFIGS))
def test_it_greets_inside_implicit_tls(
    kind: Kind, config: GnutlsConfig, endpoint_of: Callable[..., EndpointFacts]
) -> None:
    pop3s = endpoint_of(kind, config).pop3s
    assert pop3s is not None and pop3s.outcome == "ok", pop3s
    assert pop3s.greeting is not None and pop3s.greeting.startswith("+OK")
    assert pop3s.tls is not None and pop3s.tls.leaf is not None
    assert pop3s.tls.leaf.common_name == SERVICE_NAME


@pytest.mark.parametrize(("kind", "config"), _servers(*CONFIGS))
def test_it_offers_stls_and_upgrades(
    kind: Kind, config: GnutlsConfig, endpoint_of: Callable[..., EndpointFacts]
) -> None:
    pop3 = endpoint_of(kind, config).pop3
    assert pop3 is not None and pop3.outcome == "ok", pop3
    assert pop3.greeting is not None and pop3.greeting.startswith("+OK")
    assert pop3.capabilities is not None and "STLS" in pop3.capabilities
    assert pop3.stls is not None and pop3.stls.outcome == "ok", pop3.stls
    assert pop3.stls.tls is not None and pop3.stls.capabilities is not None


# The ground truth is what each configuration means.


def _forward_secret(suite: str) -> bool:
    return BY_NAME[suite].forward_secret


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(WINDOWS_2008_R2))
def test_windows_2008_r2_accepts_rc4_and_3des_on_tls_1_0_only(
    kind: Kind, config: GnutlsConfig, entry: str, truth_of: Callable[..., Truth]
) -> None:
    truth = truth_of(kind, config, entry)
    assert set(truth) == {"TLSv1"}
    assert {
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_RC4_128_MD5",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    } <= truth["TLSv1"]


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(WINDOWS_2016))
def test_windows_2016_accepts_3des_among_aes_on_tls_1_2_only(
    kind: Kind, config: GnutlsConfig, entry: str, truth_of: Callable[..., Truth]
) -> None:
    truth = truth_of(kind, config, entry)
    assert set(truth) == {"TLSv1.2"}
    assert {
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
    } <= truth["TLSv1.2"]
    assert not any("RC4" in suite for suite in truth["TLSv1.2"])


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(RC4_ON_TLS12))
def test_rc4_is_accepted_on_tls_1_2(
    kind: Kind, config: GnutlsConfig, entry: str, truth_of: Callable[..., Truth]
) -> None:
    truth = truth_of(kind, config, entry)
    assert set(truth) == {"TLSv1.2"}
    assert {"TLS_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA"} <= truth["TLSv1.2"]


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(STATIC_RSA_ONLY))
def test_static_rsa_only_accepts_no_forward_secret_suite(
    kind: Kind, config: GnutlsConfig, entry: str, truth_of: Callable[..., Truth]
) -> None:
    truth = truth_of(kind, config, entry)
    assert set(truth) == {"TLSv1", "TLSv1.1", "TLSv1.2"}
    assert "TLS_RSA_WITH_AES_256_GCM_SHA384" in truth["TLSv1.2"]
    assert not any(_forward_secret(suite) for suites in truth.values() for suite in suites)


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(MODERN))
def test_the_control_accepts_only_forward_secret_aead_on_tls_1_2_and_1_3(
    kind: Kind, config: GnutlsConfig, entry: str, truth_of: Callable[..., Truth]
) -> None:
    truth = truth_of(kind, config, entry)
    assert set(truth) == {"TLSv1.2", "TLSv1.3"}
    assert "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" in truth["TLSv1.2"]
    assert "TLS_AES_256_GCM_SHA384" in truth["TLSv1.3"]
    suites = [BY_NAME[suite] for names in truth.values() for suite in names]
    assert all(suite.forward_secret and suite.aead for suite in suites)


# The scanner's enumeration is the ground truth.


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(*CONFIGS))
def test_the_scanner_enumerates_the_suites_gnutls_cli_finds_accepted(
    kind: Kind,
    config: GnutlsConfig,
    entry: str,
    endpoint_of: Callable[..., EndpointFacts],
    truth_of: Callable[..., Truth],
) -> None:
    support = _support(endpoint_of(kind, config), entry)
    assert support is not None and support.error is None, support
    checkable = gnutls_truth.checkable()
    found = {version: set(suites) for version, suites in support.cipher_suites.items()}
    covered = {v: s & checkable.get(v, frozenset()) for v, s in found.items()}
    assert {v: s for v, s in covered.items() if s} == truth_of(kind, config, entry)
    # What gnutls-cli cannot check these servers cannot accept either: their GnuTLS has no
    # SSL 3.0 or 2.0 and no suite it does not implement, and no configuration enables PSK or
    # SRP. So the scanner must find nothing there.
    uncovered = {v: s - checkable.get(v, frozenset()) for v, s in found.items()}
    assert {v: s for v, s in uncovered.items() if s} == {}


@pytest.mark.parametrize(("kind", "config", "entry"), _entries(*CONFIGS))
def test_the_scanner_says_which_versions_gnutls_cli_finds_accepted(
    kind: Kind,
    config: GnutlsConfig,
    entry: str,
    endpoint_of: Callable[..., EndpointFacts],
    truth_of: Callable[..., Truth],
) -> None:
    support = _support(endpoint_of(kind, config), entry)
    assert support is not None
    truth = truth_of(kind, config, entry)
    checkable = gnutls_truth.checkable()
    # A version gnutls-cli cannot offer is one the servers' GnuTLS cannot serve.
    expected = {
        version: version in truth if version in checkable else False for version in PROTOCOLS
    }
    assert support.accepted_versions == expected


# The verdicts under the default profile (Mozilla intermediate), for what each configuration is.
VERDICTS = {
    WINDOWS_2008_R2: ("fail", "fail", ("TLS 1.0 accepted",), ("RC4 (", "3DES (", "MD5 MAC")),
    WINDOWS_2016: ("pass", "fail", (), ("3DES (TLS_RSA_WITH_3DES_EDE_CBC_SHA on TLS 1.2",)),
    RC4_ON_TLS12: ("pass", "fail", (), ("RC4 (TLS_RSA_WITH_RC4_128_SHA on TLS 1.2",)),
    STATIC_RSA_ONLY: (
        "fail",
        "warn",
        ("TLS 1.0 and TLS 1.1 accepted",),
        ("no forward secrecy (TLS_RSA_WITH_AES_128_CBC_SHA on TLS 1.0, TLS 1.1 and TLS 1.2",),
    ),
    MODERN: ("pass", "pass", ("only TLS 1.2 and TLS 1.3 accepted",), ()),
    REMEDIED: ("pass", "pass", (), ()),
}


@pytest.mark.parametrize(("kind", "config"), _servers(*CONFIGS))
def test_the_verdicts_follow_what_the_server_accepts(
    kind: Kind, config: GnutlsConfig, report_of: Callable[..., ScanReport]
) -> None:
    report = report_of(kind, config)
    protocols_status, ciphers_status, protocols_words, ciphers_words = VERDICTS[config]
    checks = {check.id: check for check in report.checks}
    assert checks["tls.protocols"].status == protocols_status, checks["tls.protocols"].summary
    assert checks["tls.ciphers"].status == ciphers_status, checks["tls.ciphers"].summary
    for words in protocols_words:
        assert words in checks["tls.protocols"].summary
    for words in ciphers_words:
        assert words in checks["tls.ciphers"].summary


def test_a_missing_courier_fails_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(gnutls_servers, "COURIER_DIR", tmp_path)
    with pytest.raises(GnutlsServerError, match=r"system-deps\.sh test .* courier-pop"):
        CourierPop3(MODERN).start()
