"""The emulator's Windows TLS profiles: what SChannel chooses for any ClientHello (version,
suite, group, DH size or alert), and real handshakes on every profile, RC4 and SSL 3.0
included (served by tlslite-ng where the local OpenSSL cannot)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import replace

import pytest
from tlslite import HandshakeSettings, TLSConnection

from pop3lab.config import EndpointConfig
from pop3lab.lab import BoundEndpoint, LabThread
from pop3lab.schannel import P256, P384, X25519
from scanner._hello import ELLIPTIC_GROUPS, Offer, ServerAnswer, client_hello, read_answer
from scanner._suites import BY_NAME, suites_for

GREETING = b"+OK The Microsoft Exchange POP3 service is ready.\r\n"
PROFILES = {
    ("exchange2010", "2008r2"): "127.88.0.1",
    ("exchange2013", "2012r2"): "127.88.0.2",
    ("exchange2016", "2016"): "127.88.0.3",
    ("exchange2019", "2019"): "127.88.0.4",
    ("exchange2019", "2022"): "127.88.0.5",
}
EVERYTHING = {protocol: tuple(s.code for s in suites_for(protocol)) for protocol in
              ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")}  # fmt: skip


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, BoundEndpoint]]:
    specs = [(address, EndpointConfig(ex, windows=w)) for (ex, w), address in PROFILES.items()]
    with LabThread(specs) as running:
        yield {w: running.endpoints[address] for (_, w), address in PROFILES.items()}


def ask(endpoint: BoundEndpoint, offer: Offer) -> ServerAnswer:
    async def talk() -> ServerAnswer:
        reader, writer = await asyncio.open_connection(endpoint.address, endpoint.pop3s_port)
        try:
            writer.write(client_hello(offer))
            return await asyncio.wait_for(read_answer(reader, offer, want_key_exchange=True), 5)
        finally:
            writer.close()

    return asyncio.run(talk())


def offer(protocol: str, *names: str, groups: tuple[int, ...] = ELLIPTIC_GROUPS) -> Offer:
    codes = tuple(BY_NAME[n].code for n in names) if names else EVERYTHING[protocol]
    return Offer(protocol, codes, groups)


def chose(answer: ServerAnswer) -> tuple[str | None, str | None]:
    names = {s.code: s.name for s in BY_NAME.values()}
    return answer.protocol, names.get(answer.suite) if answer.suite is not None else None


# (windows, offer, expected version, expected suite) for offers of everything at a version.
FIRST_CHOICE = [
    ("2008r2", "SSLv3", "SSLv3", "TLS_RSA_WITH_RC4_128_SHA"),
    ("2008r2", "TLSv1", "TLSv1", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    ("2008r2", "TLSv1.2", "TLSv1", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    ("2012r2", "SSLv3", "SSLv3", "TLS_RSA_WITH_RC4_128_SHA"),
    ("2012r2", "TLSv1.1", "TLSv1.1", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    ("2012r2", "TLSv1.2", "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    ("2016", "TLSv1", "TLSv1", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    ("2016", "TLSv1.2", "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("2019", "TLSv1.2", "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("2022", "TLSv1.2", "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("2022", "TLSv1.3", "TLSv1.3", "TLS_AES_256_GCM_SHA384"),
]


@pytest.mark.parametrize(("windows", "protocol", "version", "suite"), FIRST_CHOICE)
def test_an_offer_of_everything_gets_windows_first_suite(lab, windows, protocol, version, suite):
    assert chose(ask(lab[windows], offer(protocol))) == (version, suite)


REFUSED = [
    ("2008r2", offer("TLSv1.3"), "protocol_version"),
    ("2016", offer("SSLv3"), "protocol_version"),
    ("2019", offer("TLSv1.1"), "protocol_version"),
    ("2022", offer("TLSv1"), "protocol_version"),
    ("2016", offer("TLSv1.3"), "protocol_version"),
    ("2019", offer("TLSv1.2", "TLS_RSA_WITH_RC4_128_SHA"), "handshake_failure"),
    ("2022", offer("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), "handshake_failure"),
    ("2012r2", offer("SSLv3", "TLS_RSA_WITH_AES_128_CBC_SHA"), "handshake_failure"),
    ("2012r2", offer("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), "handshake_failure"),
]


@pytest.mark.parametrize(("windows", "hello", "alert"), REFUSED)
def test_what_windows_refuses_gets_its_alert(lab, windows, hello, alert):
    assert ask(lab[windows], hello).alert == alert


@pytest.mark.parametrize(
    ("windows", "protocol", "suite"),
    [
        ("2008r2", "TLSv1", "TLS_RSA_WITH_RC4_128_SHA"),
        ("2016", "TLSv1.2", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        ("2016", "TLSv1.2", "TLS_RSA_WITH_AES_128_CBC_SHA"),
    ],
)
def test_an_ip_address_as_sni_is_answered_like_a_name(lab, windows, protocol, suite):
    """testssl.sh names the server by the IP address it was given; SChannel answers it, and
    so must tlslite-ng (RC4, 3DES) as well as OpenSSL."""
    hello = replace(offer(protocol, suite), sni=lab[windows].address)
    assert chose(ask(lab[windows], hello)) == (protocol, suite)


def test_windows_order_wins_over_the_client_order(lab):
    hello = offer("TLSv1.2", "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
                  "TLS_RSA_WITH_AES_256_CBC_SHA")  # fmt: skip
    assert chose(ask(lab["2016"], hello)) == ("TLSv1.2", "TLS_RSA_WITH_AES_256_CBC_SHA")


@pytest.mark.parametrize(
    ("windows", "suite", "version"),
    [
        ("2008r2", "TLS_RSA_WITH_RC4_128_MD5", "TLSv1"),
        ("2012r2", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLSv1.2"),
        ("2016", "TLS_RSA_WITH_RC4_128_SHA", "TLSv1.2"),
        ("2022", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLSv1.2"),
    ],
)
def test_weak_suites_are_chosen_where_windows_keeps_them(lab, windows, suite, version):
    hello = offer("TLSv1.2", suite, "TLS_RSA_WITH_NULL_SHA")
    assert chose(ask(lab[windows], hello)) == (version, suite)


@pytest.mark.parametrize(("windows", "bits"), [("2008r2", 1024), ("2012r2", 1024), ("2016", 2048)])
def test_dhe_primes_have_windows_size(lab, windows, bits):
    answer = ask(lab[windows], offer("TLSv1", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"))
    assert answer.dh_bits == bits


@pytest.mark.parametrize(
    ("windows", "groups", "expected"),
    [
        ("2012r2", ELLIPTIC_GROUPS, P256),
        ("2012r2", (P384, X25519), P384),
        ("2016", ELLIPTIC_GROUPS, X25519),
        ("2016", (P384, P256), P256),
        ("2022", (25, P384), P384),
    ],
)
def test_the_curve_is_windows_first_that_the_client_has(lab, windows, groups, expected):
    answer = ask(
        lab[windows], offer("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", groups=groups)
    )
    assert answer.group == expected


def test_ecdhe_without_a_common_curve_falls_to_the_next_suite(lab):
    hello = offer("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                  "TLS_RSA_WITH_AES_128_CBC_SHA", groups=(25,))  # fmt: skip
    assert chose(ask(lab["2016"], hello)) == ("TLSv1.2", "TLS_RSA_WITH_AES_128_CBC_SHA")


def test_tls13_on_2022_prefers_aes_256_and_never_chacha(lab):
    hello = offer("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256")
    assert chose(ask(lab["2022"], hello)) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")


def python_client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    return context


@pytest.mark.parametrize("windows", ["2008r2", "2012r2", "2016", "2019", "2022"])
def test_python_ssl_completes_a_handshake_and_reads_the_greeting(lab, windows):
    endpoint = lab[windows]
    address = (endpoint.address, endpoint.pop3s_port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        python_client().wrap_socket(raw) as tls,
    ):
        assert tls.recv(200) == GREETING
        assert len(tls.getpeercert(binary_form=True) or b"") > 0


def tlslite_greeting(endpoint: BoundEndpoint, cipher: str, mac: str, version: tuple) -> tuple:
    settings = HandshakeSettings()
    settings.cipherNames, settings.macNames = [cipher], [mac]
    settings.minVersion = settings.maxVersion = version
    with socket.create_connection((endpoint.address, endpoint.pop3s_port), timeout=10) as raw:
        connection = TLSConnection(raw)
        connection.handshakeClientCert(settings=settings)
        greeting = connection.read(min=len(GREETING))
        return connection.getCipherName(), tuple(connection.version), bytes(greeting)


def test_an_rc4_handshake_completes_on_2008r2(lab):
    assert tlslite_greeting(lab["2008r2"], "rc4", "sha", (3, 1)) == ("rc4", (3, 1), GREETING)


def test_an_ssl3_handshake_completes_on_2012r2(lab):
    assert tlslite_greeting(lab["2012r2"], "rc4", "md5", (3, 0)) == ("rc4", (3, 0), GREETING)


def test_a_3des_handshake_completes_on_2016(lab):
    assert tlslite_greeting(lab["2016"], "3des", "sha", (3, 3)) == ("3des", (3, 3), GREETING)


def test_a_profile_must_be_one_exchange_runs_on():
    with pytest.raises(ValueError, match="does not run on"):
        EndpointConfig("exchange2019", windows="2008r2")
    with pytest.raises(ValueError, match=r"no SSL 2\.0"):
        EndpointConfig("exchange2016", windows="2016", sslv2=True)
