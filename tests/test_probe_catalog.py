"""Every row of the check catalog (docs/checks.md), produced by a real scan of the emulator."""

import itertools

import pytest

from pop3lab.config import EndpointConfig
from scanner import Settings, Target
from scanner._probe import scan
from tests.conftest import check_of, lab_policy, status_of

_names = (f"site{n}.example.test" for n in itertools.count(1))


@pytest.mark.parametrize(
    ("cert_kind", "check_id", "status", "words"),
    [
        ("good", "cert.trusted", "pass", "trusted root"),
        ("exchange_self_signed", "cert.trusted", "fail", "self-signed"),
        ("missing_intermediate", "cert.trusted", "fail", "incomplete chain"),
        ("untrusted_root", "cert.trusted", "fail", "not a trusted root"),
        ("wrong_name", "cert.name", "fail", "mail.example.test"),
        ("exchange_self_signed", "cert.name", "fail", "mail.example.test"),
        ("wildcard", "cert.name", "pass", "mail.example.test"),
        ("cn_only", "cert.name", "pass", "mail.example.test"),
        ("expired", "cert.validity", "fail", "expired"),
        ("not_yet_valid", "cert.validity", "fail", "not valid before"),
        ("expiring_soon", "cert.validity", "warn", "in 9 days"),
        ("expiring_critical", "cert.validity", "fail", "(critical)"),
        ("rsa1024", "cert.strength", "fail", "1024"),
        ("sha1", "cert.strength", "fail", "sha1"),
        ("exchange_self_signed", "cert.strength", "fail", "sha1"),
        ("ec256", "cert.strength", "pass", "EC 256"),
    ],
)
def test_certificate_rows(emulated, cert_kind, check_id, status, words):
    report = emulated.scan(EndpointConfig(cert_kind=cert_kind))
    check = check_of(report, check_id)
    assert check.status == status, check.summary
    assert words.lower() in check.summary.lower()
    if status != "pass":
        assert check.remediation


def test_certificate_thresholds_come_from_the_policy(emulated):
    relaxed = lab_policy(warn_days=5, critical_days=2)
    report = emulated.scan(EndpointConfig(cert_kind="expiring_soon"), policy=relaxed)
    assert status_of(report, "cert.validity") == "pass"


def test_without_the_enterprise_ca_the_lab_chain_is_untrusted(emulated):
    report = emulated.scan(EndpointConfig(), policy=lab_policy(ca_bundle_pem=None))
    assert status_of(report, "cert.trusted") == "fail"


def test_mozilla_modern_fails_a_tls12_server(emulated):
    config = EndpointConfig(tls_versions=("TLSv1.2", "TLSv1.2"))
    report = emulated.scan(config, policy=lab_policy(tls_profile="mozilla-modern"))
    assert status_of(report, "tls.protocols") == "fail"


def scan_name(emulated, name, *, timeout=5.0):
    settings = Settings(timeout=timeout, resolver=emulated.dns_server.address)
    return scan([Target(name, pop3_port=110, pop3s_port=995)], settings, lab_policy())[0]


def scan_name_on(emulated, name, endpoints):
    first = endpoints[0]
    target = Target(name, pop3_port=first.pop3_port, pop3s_port=first.pop3s_port)
    settings = Settings(timeout=5, resolver=emulated.dns_server.address)
    return scan([target], settings, lab_policy())[0]


def test_every_address_is_probed_and_the_worst_one_is_named(emulated):
    name = next(_names)
    endpoints = emulated.start_on_shared_ports(
        EndpointConfig(cert_name=name), EndpointConfig(cert_name=name, login_type="PlainTextLogin")
    )
    emulated.dns_server.add(name, "A", *(endpoint.address for endpoint in endpoints))
    report = scan_name_on(emulated, name, endpoints)
    assert report.addresses == tuple(endpoint.address for endpoint in endpoints)
    check = check_of(report, "pop3.plaintext_login")
    assert check.status == "fail"
    assert check.address == endpoints[1].address
    assert endpoints[1].address in check.summary
    per_address = {c.address: c.status for c in report.address_checks if c.id == check.id}
    assert per_address == {endpoints[0].address: "pass", endpoints[1].address: "fail"}


def test_addresses_serving_different_certificates_warn_consistency(emulated):
    name = next(_names)
    endpoints = emulated.start_on_shared_ports(
        EndpointConfig(cert_name=name), EndpointConfig(cert_name=name, cert_kind="ec256")
    )
    emulated.dns_server.add(name, "A", *(endpoint.address for endpoint in endpoints))
    report = scan_name_on(emulated, name, endpoints)
    assert status_of(report, "cert.consistent") == "warn"
    assert status_of(report, "cert.name") == "pass"


def test_one_server_serving_one_certificate_is_consistent(emulated):
    report = emulated.scan(EndpointConfig())
    assert status_of(report, "cert.consistent") == "pass"


def test_an_srv_record_pointing_here_passes(emulated):
    name = next(_names)
    domain = name.split(".", 1)[1]
    endpoint = emulated.start(EndpointConfig(cert_name=name))
    emulated.dns_server.add(name, "A", endpoint.address)
    emulated.dns_server.add(f"_pop3s._tcp.{domain}", "SRV", f"0 1 {endpoint.pop3s_port} {name}.")
    emulated.dns_server.add(f"_pop3._tcp.{domain}", "SRV", "0 0 0 .")
    report = scan_name_on(emulated, name, [endpoint])
    assert status_of(report, "dns.srv") == "pass"
    assert status_of(report, "dns.resolves") == "pass"
    assert report.compliant is True


def test_an_srv_record_advertising_cleartext_warns(emulated):
    name = next(_names)
    domain = name.split(".", 1)[1]
    endpoint = emulated.start(EndpointConfig(cert_name=name))
    emulated.dns_server.add(name, "A", endpoint.address)
    emulated.dns_server.add(f"_pop3s._tcp.{domain}", "SRV", f"0 1 {endpoint.pop3s_port} {name}.")
    emulated.dns_server.add(f"_pop3._tcp.{domain}", "SRV", f"0 1 {endpoint.pop3_port} {name}.")
    report = scan_name_on(emulated, name, [endpoint])
    assert status_of(report, "dns.srv") == "warn"


def test_a_name_that_does_not_exist_fails_dns_and_errors_the_probes(emulated):
    report = scan_name(emulated, "nowhere.example.test")
    assert status_of(report, "dns.resolves") == "fail"
    assert "NXDOMAIN" in check_of(report, "dns.resolves").summary
    assert status_of(report, "pop3.plaintext_login") == "error"
    assert report.compliant is False


def test_an_ip_target_without_a_name_skips_the_dns_checks(emulated):
    report = emulated.scan(EndpointConfig(), name=None)
    assert status_of(report, "dns.resolves") == "skip"
    assert status_of(report, "dns.srv") == "skip"
