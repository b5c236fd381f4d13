"""The JSON object and the text report, from ScanReports built by hand."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from scanner import (
    CertificateFacts,
    CheckResult,
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    Pop3Facts,
    RevocationFacts,
    RevocationLookup,
    ScanReport,
    SrvRecord,
    StlsFacts,
    Target,
    TlsFacts,
    TlsSupport,
    TranscriptFacts,
)
from scanner._catalog import CATALOG
from scanner._probe import failed_scan
from scanner._report import render_text, report_to_dict, revocation_from_dict

STARTED = datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)
ADDRESS = "192.0.2.10"


def make_certificate(
    not_after: datetime = STARTED + timedelta(days=40, hours=3),
) -> CertificateFacts:
    return CertificateFacts(
        subject="CN=pop.example.com",
        issuer="CN=Example CA",
        common_name="pop.example.com",
        dns_names=("pop.example.com",),
        ip_addresses=(ADDRESS,),
        serial="0a1b",
        fingerprint_sha256="AB:CD",
        not_before=datetime(2025, 1, 1, tzinfo=UTC),
        not_after=not_after,
        key_type="RSA",
        key_bits=2048,
        signature_hash="sha256",
        self_signed=False,
        is_ca=False,
        pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )


def make_tls(certificate: CertificateFacts | None = None) -> TlsFacts:
    return TlsFacts(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        chain=(certificate or make_certificate(),),
    )


def make_support() -> TlsSupport:
    return TlsSupport(
        accepted_versions={"TLSv1.3": True, "TLSv1": False, "TLSv1.2": True, "SSLv3": None},
        cipher_suites={
            "TLSv1.3": ("TLS_AES_256_GCM_SHA384",),
            "TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        },
        server_order=True,
        groups=("x25519", "secp256r1"),
    )


def make_endpoint(address: str = ADDRESS, greeting: str = "+OK Dovecot ready.") -> EndpointFacts:
    pop3 = Pop3Facts(
        port=110,
        outcome="ok",
        greeting=greeting,
        capabilities=("TOP", "USER", "STLS"),
        user_reply="+OK",
        plaintext_login="accepted",
        certainty="confirmed",
        evidence="+OK after USER",
        stls=StlsFacts(
            outcome="ok",
            reply="+OK Begin TLS",
            tls=make_tls(),
            capabilities=("TOP", "USER"),
            support=make_support(),
        ),
    )
    pop3s = ImplicitTlsFacts(
        port=995, outcome="ok", tls=make_tls(), greeting="+OK ready", support=make_support()
    )
    return EndpointFacts(
        address,
        pop3,
        pop3s,
        product="Dovecot",
        login_type="PlainTextLogin",
        duration_ms=80,
        revocation=(make_revocation(),),
    )


def make_revocation() -> RevocationFacts:
    ocsp = RevocationLookup(
        "ocsp",
        "http://ocsp.example.com/",
        "good",
        # Whole seconds: the JSON keeps no more.
        this_update=STARTED.replace(microsecond=0) - timedelta(hours=2),
        next_update=STARTED.replace(microsecond=0) + timedelta(days=5),
    )
    return RevocationFacts(
        "AB:CD",
        ocsp_urls=("http://ocsp.example.com/",),
        crl_urls=("http://crl.example.com/ca.crl",),
        issuer="CN=Example CA",
        lookups=(ocsp,),
        stapled={"995": "not stapled"},
    )


CHECKS = (
    CheckResult("pop3s.available", "pass", "POP3S answers on 192.0.2.10:995", "", ADDRESS),
    CheckResult(
        "pop3.plaintext_login",
        "fail",
        "USER accepted before TLS on 192.0.2.10",
        "Set-PopSettings -LoginType SecureLogin\nRestart-Service MSExchangePOP3",
        ADDRESS,
    ),
    CheckResult("cert.validity", "warn", "40 days left", "Renew the certificate", ADDRESS),
    CheckResult("tls.protocols", "error", "Timed out", "Check the firewall", ADDRESS),
    CheckResult("dns.srv", "skip", "No domain", "Publish SRV records", None),
)


def make_report(
    checks: tuple[CheckResult, ...] = CHECKS,
    compliant: bool | None = False,
    endpoints: tuple[EndpointFacts, ...] | None = None,
    host: str = "pop.example.com",
) -> ScanReport:
    dns = DnsFacts(
        name=host,
        outcome="ok",
        addresses=(ADDRESS,),
        srv_domain="example.com",
        srv_pop3s=(SrvRecord(0, 1, 995, "pop.example.com"),),
        srv_pop3=(),
    )
    return ScanReport(
        target=Target(host),
        dns=dns,
        endpoints=endpoints if endpoints is not None else (make_endpoint(),),
        checks=checks,
        address_checks=checks,
        compliant=compliant,
        started_at=STARTED,
        duration_ms=1234,
    )


def test_json_starts_with_the_contract_fields_in_a_fixed_order() -> None:
    assert list(report_to_dict(make_report())) == [
        "target",
        "service_name",
        "protocols",
        "ports",
        "compliant",
        "started_at",
        "duration_ms",
        "failure",
        "addresses",
        "checks",
        "address_checks",
        "dns",
        "endpoints",
        "transcripts",
    ]


def test_a_failed_scan_says_why_in_json_and_text_and_judges_nothing() -> None:
    report = failed_scan(Target("pop.example.com"), RuntimeError("injected fault"))
    data = report_to_dict(report)
    assert data["failure"] == "RuntimeError: injected fault"
    assert data["compliant"] is None and data["endpoints"] == []
    assert {check["id"] for check in data["checks"]} == {spec.id for spec in CATALOG}
    assert {check["status"] for check in data["checks"]} == {"error"}
    assert all("injected fault" in check["summary"] for check in data["checks"])
    assert "Scan failed:" in render_text([report], colour=False)
    assert report_to_dict(make_report())["failure"] is None


def test_json_survives_a_round_trip_through_json_text() -> None:
    data = report_to_dict(make_report())
    assert json.loads(json.dumps(data)) == data


def test_json_top_level_values_have_the_documented_types() -> None:
    data = report_to_dict(make_report(compliant=None))
    assert data["target"] == "pop.example.com"
    assert data["protocols"] == ["pop3"]
    assert data["ports"] == {
        "pop3": 110,
        "pop3s": 995,
        "imap": 143,
        "imaps": 993,
        "submission": 587,
        "submissions": 465,
    }
    assert data["compliant"] is None
    assert data["started_at"] == "2025-06-01T12:00:00Z"
    assert data["addresses"] == [ADDRESS]


def test_json_checks_are_objects_with_the_five_contract_keys_and_their_evidence() -> None:
    checks = report_to_dict(make_report())["checks"]
    assert checks[1] == {
        "id": "pop3.plaintext_login",
        "status": "fail",
        "summary": "USER accepted before TLS on 192.0.2.10",
        "remediation": "Set-PopSettings -LoginType SecureLogin\nRestart-Service MSExchangePOP3",
        "address": ADDRESS,
        "evidence": [],  # this report kept no transcript
    }
    assert checks[4]["address"] is None


def transcript(door: str, purpose: str, *lines: str) -> TranscriptFacts:
    port = {"pop3": 110, "pop3s": 995}[door]
    return TranscriptFacts(f"{ADDRESS}/{door}/{purpose}", ADDRESS, door, port, purpose, lines)


def test_json_lists_transcripts_once_at_the_top_and_checks_point_at_them() -> None:
    report = make_report()
    login = transcript("pop3", "login", "S: +OK hi", "C: USER popcompliance-probe-1", "S: +OK")
    implicit = transcript("pop3s", "implicit", "N: TLS handshake: TLSv1.3 X", "S: +OK hi")
    endpoint = dataclasses.replace(report.endpoints[0], transcripts=(login, implicit))
    data = report_to_dict(dataclasses.replace(report, endpoints=(endpoint,)))
    assert list(data["transcripts"]) == [login.id, implicit.id]
    assert data["transcripts"][login.id] == {
        "address": ADDRESS,
        "door": "pop3",
        "port": 110,
        "purpose": "login",
        "lines": list(login.lines),
    }
    assert "transcripts" not in data["endpoints"][0]
    evidence = {check["id"]: check["evidence"] for check in data["checks"]}
    assert evidence["pop3.plaintext_login"] == [login.id]
    assert evidence["pop3s.available"] == evidence["cert.validity"] == [implicit.id]
    assert evidence["tls.protocols"] == [implicit.id]
    assert evidence["dns.srv"] == []
    for check in data["checks"]:
        assert set(check["evidence"]) <= set(data["transcripts"])
    assert "evidence" not in data["address_checks"][0]  # evidence_for reads them


def test_json_certificate_has_every_field_plus_days_left() -> None:
    endpoint = report_to_dict(make_report())["endpoints"][0]
    certificate = endpoint["pop3s"]["tls"]["chain"][0]
    names = [f.name for f in dataclasses.fields(CertificateFacts)]
    assert list(certificate) == [*names, "days_left"]
    assert certificate["not_after"] == "2025-07-11T15:00:00Z"
    assert certificate["days_left"] == 40
    assert certificate["dns_names"] == ["pop.example.com"]
    assert certificate["pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_json_days_left_is_negative_once_expired() -> None:
    expired = make_endpoint()
    tls = make_tls(make_certificate(not_after=STARTED - timedelta(hours=1)))
    expired = dataclasses.replace(expired, pop3s=dataclasses.replace(expired.pop3s, tls=tls))
    data = report_to_dict(make_report(endpoints=(expired,)))
    assert data["endpoints"][0]["pop3s"]["tls"]["chain"][0]["days_left"] == -1


def test_json_sorts_accepted_versions_oldest_first() -> None:
    stls = report_to_dict(make_report())["endpoints"][0]["pop3"]["stls"]
    versions = stls["support"]["accepted_versions"]
    assert list(versions) == ["SSLv3", "TLSv1", "TLSv1.2", "TLSv1.3"]
    assert versions["SSLv3"] is None


def test_json_lists_the_accepted_suites_per_version_where_earlier_readers_look_too() -> None:
    stls = report_to_dict(make_report())["endpoints"][0]["pop3"]["stls"]
    suites = stls["support"]["cipher_suites"]
    assert list(suites) == ["TLSv1.2", "TLSv1.3"]
    assert suites["TLSv1.2"] == [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    ]
    assert stls["tls"]["cipher_suites"] == suites
    assert stls["tls"]["accepted_versions"] == stls["support"]["accepted_versions"]


def test_text_report_lists_suites_per_version_in_the_servers_order() -> None:
    text = render_text([make_report()], colour=False)
    assert "TLS 1.2 suites" in text
    assert "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_RSA_WITH_3DES_EDE_CBC_SHA" in text
    assert "the server's" in text


def test_text_report_says_what_the_ca_said_of_each_leaf() -> None:
    text = render_text([make_report()], colour=False)
    assert "Revocation of sha256 abcd" in text
    assert "good, next update 2025-06-06T12:00:00Z" in text
    assert "Stapling on 995:" in text and "not stapled" in text


def test_revocation_facts_come_back_from_their_json() -> None:
    data = report_to_dict(make_report())["endpoints"][0]["revocation"][0]
    assert revocation_from_dict(json.loads(json.dumps(data))) == make_revocation()


def test_json_carries_endpoint_and_dns_facts() -> None:
    data = report_to_dict(make_report())
    endpoint = data["endpoints"][0]
    assert endpoint["address"] == ADDRESS
    assert endpoint["login_type"] == "PlainTextLogin"
    assert endpoint["pop3"]["capabilities"] == ["TOP", "USER", "STLS"]
    assert data["dns"]["srv_pop3s"] == [
        {"priority": 0, "weight": 1, "port": 995, "target": "pop.example.com"}
    ]
    assert data["dns"]["srv_pop3"] == []


def test_text_writes_every_status_as_a_word() -> None:
    text = render_text([make_report()], colour=False)
    for word in ("PASS", "FAIL", "WARN", "ERROR", "SKIP"):
        assert word in text
    assert "Compliant:" in text and "NO" in text


def test_text_has_no_escape_codes_without_colour() -> None:
    assert "\x1b" not in render_text([make_report()], colour=False)


def test_text_colours_status_words_when_asked() -> None:
    assert "\x1b[31mFAIL\x1b[0m" in render_text([make_report()], colour=True)


def test_text_gives_remediation_for_failures_and_warnings_only() -> None:
    text = render_text([make_report()], colour=False)
    assert "Fix: Set-PopSettings -LoginType SecureLogin" in text
    assert "Restart-Service MSExchangePOP3" in text
    assert "Renew the certificate" in text
    assert "Check the firewall" not in text
    assert "Publish SRV records" not in text


def test_text_says_unknown_when_compliance_is_undetermined() -> None:
    assert "UNKNOWN" in render_text([make_report(compliant=None)], colour=False)


def test_text_shows_the_facts_an_operator_needs() -> None:
    text = render_text([make_report()], colour=False)
    for fact in (
        "+OK Dovecot ready.",
        "PlainTextLogin",
        "TOP, USER, STLS",
        "+OK Begin TLS",
        "TLSv1.3, TLS_AES_256_GCM_SHA384",
        "SSLv3 untested, TLS 1.0 no, TLS 1.2 yes, TLS 1.3 yes",
        "CN=Example CA",
        "DNS:pop.example.com, IP:192.0.2.10",
        "(40 days left)",
        "0 1 995 pop.example.com",
        "1234 ms",
    ):
        assert fact in text, fact


def test_text_escapes_control_characters_a_server_sends() -> None:
    hostile = make_endpoint(greeting="+OK \x1b]0;owned\x07 hi")
    text = render_text([make_report(endpoints=(hostile,))], colour=False)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07 hi" in text


def test_text_names_problems_per_address_when_there_are_several() -> None:
    two = (make_endpoint(), make_endpoint("192.0.2.11"))
    text = render_text([make_report(endpoints=two)], colour=False)
    assert text.count("Problems here:") == 2
    assert "FAIL pop3.plaintext_login, WARN cert.validity, ERROR tls.protocols" in text
    assert [line.split()[-1] for line in text.splitlines() if "Problems" in line][1] == "none"


def test_text_shows_a_certificate_once_per_address() -> None:
    text = render_text([make_report()], colour=False)
    assert text.count("CN=Example CA") == 1
    assert "same as above (CN=pop.example.com)" in text


def test_text_wraps_long_remediation_without_splitting_commands() -> None:
    advice = "Run `Set-PopSettings -LoginType SecureLogin` " + "and then restart the service " * 8
    check = CheckResult("pop3.plaintext_login", "fail", "USER accepted", advice, ADDRESS)
    lines = render_text([make_report(checks=(check,))], colour=False).splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert any("`Set-PopSettings -LoginType SecureLogin`" in line for line in lines)
