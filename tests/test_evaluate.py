"""The check catalog (docs/checks.md): facts built by hand in, verdicts out. No network."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pop3lab.certs import make_cert, root_ca_pem
from scanner import ADDRESS_CHECK_IDS, CHECK_IDS
from scanner._certs import parse_certificate
from scanner._errors import quoted
from scanner._evaluate import evaluate
from scanner._evaluate_common import tls_sessions
from scanner._facts import (
    CertificateFacts,
    CheckResult,
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    Pop3Facts,
    RevocationFacts,
    RevocationLookup,
    SrvRecord,
    StlsFacts,
    TlsFacts,
    TlsSupport,
    compliance,
)
from scanner._target import Policy, Target

NAME = "mail.example.test"
TARGET = Target(NAME)
DNS_OK = DnsFacts(NAME, "ok", ("127.0.0.2",))
# The lab's certificates chain to the test root, so the policy carries it as a CA bundle.
POLICY = Policy(ca_bundle_pem=root_ca_pem().decode())
NOW = datetime.now(UTC)
MODERN = {
    "SSLv2": False,
    "SSLv3": False,
    "TLSv1": False,
    "TLSv1.1": False,
    "TLSv1.2": True,
    "TLSv1.3": True,
}
# What a well-kept server accepts: Mozilla intermediate's suites for an RSA certificate.
MODERN_SUITES = {
    "TLSv1.2": (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    "TLSv1.3": ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"),
}
EXCHANGE_REFUSAL = "-ERR Command is not valid in this state."


# --- factories ---------------------------------------------------------------------------------


def chain_of(kind: str = "good", name: str = NAME) -> tuple[CertificateFacts, ...]:
    """The served chain of a lab certificate, parsed the way the probe parses it."""
    pems = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
        make_cert(kind, name).chain_pem,
        re.S,
    )
    ders = [x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) for pem in pems]
    return tuple(parse_certificate(der) for der in ders)


def tls(kind: str = "good", version: str = "TLSv1.3") -> TlsFacts:
    return TlsFacts(version, "TLS_AES_256_GCM_SHA384", chain_of(kind))


def support(suites: dict[str, tuple[str, ...]] | None = None, **changes: Any) -> TlsSupport:
    """What a TLS entry point accepts: MODERN_SUITES unless `suites` says otherwise (its
    versions are the accepted ones); `changes` set any other field."""
    suites = MODERN_SUITES if suites is None else suites
    versions = {name: name in suites for name in MODERN}
    return replace(TlsSupport(versions, suites, server_order=True), **changes)


def pop3(**changes: Any) -> Pop3Facts:
    """Port 110 of a well-configured server (Exchange SecureLogin, STLS works)."""
    good = Pop3Facts(
        port=110,
        outcome="ok",
        greeting="+OK The Microsoft Exchange POP3 service is ready.",
        capabilities=("TOP", "UIDL", "STLS"),
        user_reply=EXCHANGE_REFUSAL,
        plaintext_login="refused",
        certainty="confirmed",
        evidence=f"USER: {EXCHANGE_REFUSAL}",
        stls=StlsFacts("ok", reply="+OK Begin TLS negotiation.", tls=tls(), support=support()),
    )
    return replace(good, **changes)


def pop3s(**changes: Any) -> ImplicitTlsFacts:
    good = ImplicitTlsFacts(
        995,
        "ok",
        tls=tls(),
        greeting="+OK The Microsoft Exchange POP3 service is ready.",
        support=support(),
    )
    return replace(good, **changes)


def endpoint(address: str = "127.0.0.2", **changes: Any) -> EndpointFacts:
    facts = EndpointFacts(address, changes.pop("pop3", pop3()), changes.pop("pop3s", pop3s()))
    return replace(facts, revocation=changes.pop("revocation", not_revoked(facts)))


OCSP_URL = "http://ocsp.example.test/"


def not_revoked(facts: EndpointFacts) -> tuple[RevocationFacts, ...]:
    """A good OCSP answer for each leaf the address served, as from a CA that publishes one."""
    leaves = dict.fromkeys(tls.chain[0].fingerprint_sha256 for _, tls in tls_sessions(facts))
    good = RevocationLookup("ocsp", OCSP_URL, "good")
    return tuple(RevocationFacts(leaf, ocsp_urls=(OCSP_URL,), lookups=(good,)) for leaf in leaves)


def only_995(kind: str = "good") -> EndpointFacts:
    """An address with implicit TLS only: port 110 is not bound."""
    return endpoint(pop3=pop3(outcome="closed", stls=None), pop3s=pop3s(tls=tls(kind)))


def checks(*endpoints: EndpointFacts, **kw: Any) -> dict[str, CheckResult]:
    """The target-level results by id, for the given endpoints (one good address by default)."""
    result, _ = evaluate(
        kw.get("target", TARGET),
        kw.get("dns", DNS_OK),
        endpoints or (endpoint(),),
        kw.get("policy", POLICY),
        kw.get("now", NOW),
    )
    return {check.id: check for check in result}


def check(check_id: str, *endpoints: EndpointFacts, **kw: Any) -> CheckResult:
    return checks(*endpoints, **kw)[check_id]


# --- the catalog as a whole --------------------------------------------------------------------


# The ids consumers rely on stay, in this order; new checks may come between them.
FIRST_TWELVE = [
    "pop3s.available",
    "pop3.plaintext_login",
    "pop3.stls",
    "pop3.tls_login",
    "tls.protocols",
    "cert.trusted",
    "cert.name",
    "cert.validity",
    "cert.strength",
    "cert.consistent",
    "dns.resolves",
    "dns.srv",
]


def test_it_returns_one_result_per_catalog_id_in_catalog_order() -> None:
    result, _ = evaluate(TARGET, DNS_OK, (endpoint(),), POLICY, NOW)
    ids = [c.id for c in result]
    assert ids == list(CHECK_IDS)
    assert [i for i in ids if i in FIRST_TWELVE] == FIRST_TWELVE


def test_a_well_configured_server_is_compliant_without_remediation() -> None:
    result = checks()
    assert {c.status for c in result.values()} == {"pass", "skip"}
    assert compliance(tuple(result.values())) is True
    assert all(c.remediation == "" for c in result.values())


def test_one_failure_makes_the_target_non_compliant() -> None:
    result = checks(endpoint(pop3=pop3(plaintext_login="accepted", user_reply="+OK")))
    assert compliance(tuple(result.values())) is False


def test_an_error_without_failures_makes_compliance_unknown() -> None:
    result = checks(endpoint(pop3=pop3(outcome="timeout", plaintext_login="unknown")))
    assert compliance(tuple(result.values())) is None


def test_address_checks_hold_one_result_per_address_and_check() -> None:
    _, per_address = evaluate(
        TARGET, DNS_OK, (endpoint("127.0.0.2"), endpoint("127.0.0.3")), POLICY, NOW
    )
    per_one = len(ADDRESS_CHECK_IDS)
    assert len(per_address) == 2 * per_one
    assert [c.address for c in per_address[:per_one]] == ["127.0.0.2"] * per_one
    assert per_address[per_one].address == "127.0.0.3"


def test_the_worst_address_is_named_in_the_result_and_its_summary() -> None:
    leaky = endpoint("127.0.0.3", pop3=pop3(plaintext_login="accepted", user_reply="+OK"))
    result = check("pop3.plaintext_login", endpoint("127.0.0.2"), leaky)
    assert (result.status, result.address) == ("fail", "127.0.0.3")
    assert result.summary.startswith("127.0.0.3: ")


def test_the_summary_counts_other_addresses_with_the_same_status() -> None:
    result = check("pop3s.available", endpoint("127.0.0.2"), endpoint("127.0.0.3"))
    assert result.summary.startswith("127.0.0.2 and 1 other address: ")


def test_a_single_address_is_not_repeated_in_the_summary() -> None:
    assert not check("pop3s.available").summary.startswith("127.0.0.2")


def test_per_address_checks_are_errors_when_no_address_was_probed() -> None:
    result, _ = evaluate(TARGET, DnsFacts(NAME, "nxdomain"), (), POLICY, NOW)
    assert result[0].status == "error"
    assert compliance(result) is False  # dns.resolves fails


# --- pop3s.available ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "status", "words"),
    [
        (pop3s(), "pass", "works"),
        (pop3s(outcome="closed", tls=None, greeting=None), "fail", "closed"),
        (pop3s(outcome="tls_error", tls=None, error="handshake failure"), "fail", "handshake"),
        (pop3s(outcome="protocol_error", greeting=None), "fail", "no POP3 greeting"),
        (pop3s(greeting="-ERR go away"), "fail", "-ERR go away"),
        (pop3s(outcome="timeout", tls=None, greeting=None), "error", "could not determine"),
        (pop3s(outcome="unreachable", tls=None, greeting=None), "error", "unreachable"),
    ],
)
def test_pop3s_available(facts: ImplicitTlsFacts, status: str, words: str) -> None:
    result = check("pop3s.available", endpoint(pop3s=facts))
    assert (result.status, words in result.summary) == (status, True)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "220 exch01.contoso.local Microsoft ESMTP MAIL Service ready at "
            "Fri, 4 Dec 2026 17:20:56 +0000",
            "220 exch01.contoso.local Microsoft ESMTP MAIL Service ready at "
            "Sat, 5 Dec 2026 09:02:11 +0000",
        ),
        ("+OK POP3 Ready <4321.1764867656@mail>", "+OK POP3 Ready <4388.1764867701@mail>"),
    ],
)
def test_what_a_greeting_changes_at_each_connection_stays_out_of_the_summary(
    first: str, second: str
) -> None:
    """Else every rescan of the same server would rewrite its stored summary."""
    before = check("pop3s.available", endpoint(pop3s=pop3s(greeting=first))).summary
    after = check("pop3s.available", endpoint(pop3s=pop3s(greeting=second))).summary
    assert before == after
    assert first.split()[1] in before  # the greeting is still quoted


def test_exchange_plaintext_reply_on_995_is_explained() -> None:
    facts = pop3s(outcome="tls_error", tls=None, plaintext_reply="-ERR Connection is closed. 13")
    result = check("pop3s.available", endpoint(pop3s=facts))
    assert result.status == "fail"
    assert "-ERR Connection is closed. 13" in result.summary
    assert "X509CertificateName" in result.summary and "Enable-ExchangeCertificate" in (
        result.remediation
    )


# --- pop3.plaintext_login ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        (pop3(), "pass"),
        (pop3(plaintext_login="accepted", user_reply="+OK"), "fail"),
        (pop3(outcome="closed", plaintext_login="unknown", stls=None), "skip"),
        (pop3(outcome="timeout", plaintext_login="unknown"), "error"),
        (pop3(outcome="unreachable", plaintext_login="unknown"), "error"),
        (pop3(outcome="protocol_error", plaintext_login="unknown"), "error"),
        (pop3(outcome="timeout", plaintext_login="refused"), "pass"),  # the verdict was reached
    ],
)
def test_plaintext_login(facts: Pop3Facts, status: str) -> None:
    assert check("pop3.plaintext_login", endpoint(pop3=facts)).status == status


def test_a_confirmed_plaintext_login_quotes_the_reply_to_user() -> None:
    facts = pop3(plaintext_login="accepted", user_reply="+OK", certainty="confirmed")
    result = check("pop3.plaintext_login", endpoint(pop3=facts))
    assert "port 110 asks for the password before TLS (USER answered “+OK”)" in result.summary
    assert "a client's password crosses the network in the clear" in result.summary
    assert "accepts" not in result.summary  # we never sent a password, so never saw one taken
    assert "-LoginType SecureLogin" in result.remediation
    assert "disable_plaintext_auth = yes" in result.remediation


def test_a_likely_plaintext_login_says_it_is_not_confirmed() -> None:
    facts = pop3(
        plaintext_login="accepted",
        certainty="likely",
        user_reply="+OK",
        evidence="CAPA lists USER and SASL PLAIN",
    )
    summary = check("pop3.plaintext_login", endpoint(pop3=facts)).summary
    assert "likely" in summary and "CAPA lists USER and SASL PLAIN" in summary
    assert "not confirmed" in summary


def test_an_open_cleartext_port_fails_when_policy_allows_implicit_tls_only() -> None:
    result = check("pop3.plaintext_login", policy=replace(POLICY, allow_cleartext_port=False))
    assert result.status == "fail"
    assert "implicit TLS only" in result.summary


def test_a_closed_cleartext_port_is_skipped_even_under_implicit_tls_only() -> None:
    policy = replace(POLICY, allow_cleartext_port=False)
    assert check("pop3.plaintext_login", only_995(), policy=policy).status == "skip"


# --- pop3.stls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "status", "words"),
    [
        (pop3(), "pass", "upgrades to TLS 1.3"),
        (pop3(capabilities=("TOP", "UIDL"), stls=None), "fail", "does not offer STLS"),
        (
            pop3(
                stls=StlsFacts("protocol_error", reply="-ERR Command is not valid in this state.")
            ),
            "fail",
            "refuses STLS: “-ERR Command is not valid",
        ),
        (
            pop3(stls=StlsFacts("tls_error", error="wrong version number")),
            "fail",
            "wrong version number",
        ),
        (pop3(stls=StlsFacts("timeout")), "error", "timed out"),
        (pop3(outcome="closed", stls=None), "skip", "closed"),
    ],
)
def test_stls(facts: Pop3Facts, status: str, words: str) -> None:
    result = check("pop3.stls", endpoint(pop3=facts))
    assert (result.status, words in result.summary) == (status, True)


# --- certificates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        ("good", "pass", "chains to trusted root"),
        ("exchange_self_signed", "fail", "self signed"),
        ("missing_intermediate", "fail", "incomplete chain"),
        ("untrusted_root", "fail", "unknown issuer"),
    ],
)
def test_cert_trusted(kind: str, status: str, words: str) -> None:
    result = check("cert.trusted", only_995(kind))
    assert (result.status, words in result.summary) == (status, True)


def test_the_policy_ca_bundle_decides_trust() -> None:
    no_anchors = Policy(use_system_trust=False)
    assert check("cert.trusted", only_995(), policy=no_anchors).status == "fail"
    own_ca = replace(no_anchors, ca_bundle_pem=root_ca_pem().decode())
    assert check("cert.trusted", only_995(), policy=own_ca).status == "pass"


def test_an_unreadable_ca_bundle_is_an_error_not_a_verdict() -> None:
    policy = replace(POLICY, ca_bundle_pem="not a certificate")
    assert check("cert.trusted", only_995(), policy=policy).status == "error"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("good", "pass"), ("wrong_name", "fail"), ("wildcard", "pass"), ("cn_only", "pass")],
)
def test_cert_name(kind: str, status: str) -> None:
    assert check("cert.name", only_995(kind)).status == status


def test_a_name_mismatch_shows_what_the_certificate_covers() -> None:
    summary = check("cert.name", only_995("wrong_name")).summary
    assert "other.example.test" in summary and f"does not cover {NAME}" in summary


def test_without_a_service_name_the_certificate_must_cover_the_ip() -> None:
    ip_target, ip_dns = Target("127.0.0.2"), DnsFacts(None, "not_applicable")
    result = check("cert.name", only_995(), target=ip_target, dns=ip_dns)
    assert result.status == "fail"
    assert "127.0.0.2" in result.summary and "IP address" in result.summary


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("good", "pass"),
        ("expired", "fail"),
        ("not_yet_valid", "fail"),
        ("expiring_soon", "warn"),
        ("expiring_critical", "fail"),
    ],
)
def test_cert_validity(kind: str, status: str) -> None:
    assert check("cert.validity", only_995(kind)).status == status


@pytest.mark.parametrize(
    ("days_left", "status"),
    [(20 + 1 / 1440, "pass"), (20, "warn"), (5 + 1 / 1440, "warn"), (5, "fail"), (0, "fail")],
)
def test_cert_validity_boundaries_follow_the_policy(days_left: float, status: str) -> None:
    leaf, *rest = chain_of()
    leaf = replace(leaf, not_after=NOW + timedelta(days=days_left))
    facts = replace(only_995(), pop3s=pop3s(tls=replace(tls(), chain=(leaf, *rest))))
    policy = replace(POLICY, warn_days=20, critical_days=5)
    assert check("cert.validity", facts, policy=policy).status == status


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("good", "pass"),
        ("ec256", "pass"),
        ("rsa1024", "fail"),
        ("sha1", "fail"),
        ("exchange_self_signed", "fail"),
    ],
)
def test_cert_strength(kind: str, status: str) -> None:
    assert check("cert.strength", only_995(kind)).status == status


def test_a_sha1_self_signed_root_in_the_served_chain_is_not_held_against_it() -> None:
    leaf, intermediate = chain_of()
    root = replace(intermediate, signature_hash="sha1", self_signed=True)
    facts = replace(only_995(), pop3s=pop3s(tls=replace(tls(), chain=(leaf, intermediate, root))))
    assert check("cert.strength", facts).status == "pass"


@pytest.mark.parametrize(
    "check_id", ["cert.trusted", "cert.name", "cert.validity", "cert.strength"]
)
def test_cert_checks_are_skipped_without_a_certificate(check_id: str) -> None:
    facts = endpoint(
        pop3=pop3(outcome="closed", stls=None),
        pop3s=pop3s(outcome="tls_error", tls=None, greeting=None),
    )
    assert check(check_id, facts).status == "skip"


# --- cert.revocation (tests/test_revocation.py asks a real CA) --------------------------------


def revocation_of(*lookups: RevocationLookup, **changes: Any) -> CheckResult:
    """cert.revocation for an address (implicit TLS only) whose leaf got these answers."""
    served = only_995()
    leaf = served.pop3s.tls.chain[0].fingerprint_sha256  # type: ignore[union-attr]
    found = RevocationFacts(leaf, ocsp_urls=(OCSP_URL,), lookups=lookups)
    return check("cert.revocation", replace(served, revocation=(replace(found, **changes),)))


CRL_URL = "http://crl.example.test/ca.crl"
GOOD_CRL = RevocationLookup("crl", CRL_URL, "good")


def test_revocation_passes_when_one_source_is_good_and_notes_the_other() -> None:
    broken = RevocationLookup("ocsp", OCSP_URL, "error", error="no answer within 5 s")
    result = revocation_of(broken, GOOD_CRL)
    assert (result.status, result.summary) == (
        "pass",
        f"not revoked per the CRL ({CRL_URL}) (OCSP ({OCSP_URL}) gave no usable answer) on 995",
    )


def test_revocation_fails_when_any_source_says_revoked() -> None:
    revoked = RevocationLookup(
        "crl", CRL_URL, "revoked", revoked_at=NOW - timedelta(days=3), reason="superseded"
    )
    result = revocation_of(RevocationLookup("ocsp", OCSP_URL, "good"), revoked)
    assert result.status == "fail"
    assert result.summary == (
        f"revoked on {NOW - timedelta(days=3):%Y-%m-%d} (superseded) per the CRL ({CRL_URL}) on 995"
    )
    assert "Remove-ExchangeCertificate" in result.remediation


def test_revocation_unknown_to_the_responder_warns_even_with_a_good_crl() -> None:
    result = revocation_of(RevocationLookup("ocsp", OCSP_URL, "unknown"), GOOD_CRL)
    assert result.status == "warn"


def test_revocation_without_answers_warns_with_the_reasons() -> None:
    result = revocation_of(RevocationLookup("ocsp", OCSP_URL, "error", error="connection refused"))
    assert (result.status, result.summary) == (
        "warn",
        f"could not learn the revocation status: OCSP ({OCSP_URL}): connection refused on 995",
    )


def test_revocation_that_could_not_be_asked_warns_with_the_reason() -> None:
    result = revocation_of(ocsp_urls=(), error="could not read the certificate to ask about it")
    assert (result.status, result.summary) == (
        "warn",
        "could not check revocation: could not read the certificate to ask about it on 995",
    )


def test_revocation_of_a_self_signed_leaf_is_skipped() -> None:
    result = check("cert.revocation", only_995("exchange_self_signed"))
    assert result.status == "skip"
    assert "self-signed" in result.summary


def test_revocation_not_looked_up_is_an_error_not_a_pass() -> None:
    assert check("cert.revocation", replace(only_995(), revocation=())).status == "error"


# --- cert.consistent ---------------------------------------------------------------------------


def test_one_certificate_everywhere_is_consistent() -> None:
    assert check("cert.consistent", endpoint("127.0.0.2"), endpoint("127.0.0.3")).status == "pass"


def test_a_different_certificate_on_one_address_is_named() -> None:
    other = replace(only_995("wrong_name"), address="127.0.0.3")
    result = check("cert.consistent", endpoint("127.0.0.2"), other)
    assert (result.status, result.address) == ("warn", None)
    assert "127.0.0.3 995 serves CN=other.example.test" in result.summary


def test_consistency_is_skipped_with_a_single_entry_point() -> None:
    assert check("cert.consistent", only_995()).status == "skip"


# --- dns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("ok", "pass"),
        ("nxdomain", "fail"),
        ("no_address", "fail"),
        ("servfail", "error"),
        ("timeout", "error"),
        ("error", "error"),
        ("not_applicable", "skip"),
    ],
)
def test_dns_resolves(outcome: str, status: str) -> None:
    assert check("dns.resolves", dns=DnsFacts(NAME, outcome)).status == status


POP3S_HERE = (SrvRecord(0, 1, 995, "Mail.Example.Test."),)
NOT_OFFERED = (SrvRecord(0, 0, 0, "."),)


@pytest.mark.parametrize(
    ("pop3s_srv", "pop3_srv", "status", "words"),
    [
        (POP3S_HERE, (), "pass", "points to mail.example.test:995"),
        (POP3S_HERE, NOT_OFFERED, "pass", "no cleartext SRV"),
        ((), (), "warn", "_pop3s._tcp.example.test is missing"),
        ((SrvRecord(0, 1, 995, "pop.elsewhere.test"),), (), "warn", "pop.elsewhere.test:995"),
        ((SrvRecord(0, 1, 1995, NAME),), (), "warn", "not mail.example.test:995"),
        (POP3S_HERE, (SrvRecord(0, 1, 110, NAME),), "warn", "advertises cleartext"),
    ],
)
def test_dns_srv(
    pop3s_srv: tuple[SrvRecord, ...], pop3_srv: tuple[SrvRecord, ...], status: str, words: str
) -> None:
    dns = replace(DNS_OK, srv_domain="example.test", srv_pop3s=pop3s_srv, srv_pop3=pop3_srv)
    result = check("dns.srv", dns=dns)
    assert (result.status, words in result.summary) == (status, True)


def test_dns_srv_is_skipped_without_a_domain_and_an_error_when_lookup_failed() -> None:
    assert check("dns.srv").status == "skip"
    failed = replace(DNS_OK, srv_domain="example.test", srv_error="SERVFAIL")
    assert check("dns.srv", dns=failed).status == "error"


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            pop3(plaintext_login="refused", user_reply="-ERR nope", evidence=None),
            "(“-ERR nope”)",
        ),
        (
            pop3(
                plaintext_login="accepted",
                certainty="likely",
                evidence="USER before TLS answered “+OK” (USER not advertised in CAPA)",
            ),
            "(USER before TLS answered “+OK” (USER not advertised in CAPA))",
        ),
    ],
)
def test_summaries_quote_a_reply_once_and_never_quote_a_quote(facts, expected) -> None:
    summary = check("pop3.plaintext_login", endpoint(pop3=facts)).summary
    assert expected in summary
    assert "'" not in summary and "““" not in summary


def test_the_quoting_helper_trims_and_escapes_the_reply() -> None:
    assert quoted("+OK ready\r\n") == "“+OK ready”"
    assert quoted("-ERR \x1b[31m" + "x" * 200, 20) == "“-ERR \\x1b[31m" + "x" * 10 + "…”"
