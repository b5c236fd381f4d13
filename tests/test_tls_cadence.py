"""The full TLS enumeration's cadence: a scheduled scan reuses a recent one from the last stored
scan; a manual scan, an enumeration older than the policy allows, a damaged one, or a server
that now negotiates differently gets a fresh one."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pop3lab.config import EndpointConfig
from popcompliance.compliance.models import ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import earlier_tls_support, scan_servers
from popcompliance.compliance.tasks import scan_server
from popcompliance.inventory.models import Server
from scanner import CLIENT_PROTOCOLS, ScanReport, Settings, TlsSupport
from scanner._enumerate import enumerate_tls, still_accurate
from scanner._session import AddressSession, LoginGate
from tests.conftest import AllDoors, check_of, lab_server

WINDOWS_2016 = EndpointConfig(profile="exchange2016", windows="2016")
WINDOWS_2022 = EndpointConfig(profile="exchange2019", windows="2022")


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    return lab_server("mail01", fixed.address, *fixed.ports)


def scan(server, fixed, config, *, scheduled: bool) -> ScanReport:
    """One scan as the worker runs it: scheduled ones offered the earlier enumerations."""
    server = Server.objects.select_related("policy").get(pk=server.pk)
    earlier = {server.pk: earlier_tls_support(server, timezone.now())} if scheduled else None
    with fixed.serving(config):
        report = scan_servers([server], earlier_support=earlier)[server.pk]
    record_report(server.pk, report, purpose="scheduled" if scheduled else "manual")
    return report


def implicit_tls(report: ScanReport) -> TlsSupport:
    support = report.endpoints[0].pop3s.support
    assert support is not None
    return support


def age_stored_enumerations(server: Server, hours: float, *, entry: str | None = None) -> datetime:
    """Date the last stored scan's enumerations `hours` back (only `entry`'s, "pop3s" or
    "stls", when given), so a reused one is told from a fresh one; returns that date."""
    run = ScanRun.objects.filter(server=server).exclude(facts__isnull=True).first()
    moment = (timezone.now() - timedelta(hours=hours)).replace(microsecond=0)
    endpoint = run.facts["endpoints"][0]
    supports = {"pop3s": endpoint["pop3s"]["support"], "stls": endpoint["pop3"]["stls"]["support"]}
    for name, support in supports.items():
        if entry in (None, name):
            support["measured_at"] = moment.isoformat()
    run.save(update_fields=["facts"])
    return moment


def test_a_scheduled_scan_reuses_a_recent_enumeration_with_its_date(server, fixed):
    first = scan(server, fixed, WINDOWS_2016, scheduled=False)
    stored = age_stored_enumerations(server, 1)
    second = scan(server, fixed, WINDOWS_2016, scheduled=True)
    assert implicit_tls(second) == replace(implicit_tls(first), measured_at=stored)
    stls = second.endpoints[0].pop3.stls
    assert stls is not None and stls.support is not None and stls.support.measured_at == stored
    assert check_of(second, "tls.ciphers").status == "fail"  # judged as before
    assert check_of(second, "tls.ciphers").summary == check_of(first, "tls.ciphers").summary


def door_supports(report: ScanReport) -> dict[str, TlsSupport | None]:
    """Each TLS entry point's enumeration, by door: `pop3s`, `pop3 upgraded`, `imaps` …"""
    endpoint, supports = report.endpoints[0], {}
    for protocol in CLIENT_PROTOCOLS:
        cleartext, implicit = endpoint.doors(protocol)
        upgrade = cleartext.upgrade if cleartext else None
        supports[protocol.implicit_tls_name] = implicit.support if implicit else None
        supports[f"{protocol.name} upgraded"] = upgrade.support if upgrade else None
    return supports


def test_a_scheduled_scan_reuses_the_enumerations_of_every_protocol(db, settings, lab_dns):
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    doors = AllDoors()
    server = doors.server("mail01", "pop3,imap,submission")
    config = replace(WINDOWS_2016, imap=True, imaps=True, submission=True, submissions=True)
    first = scan(server, doors, config, scheduled=False)
    assert all(door_supports(first).values())  # six doors, each enumerated
    run = ScanRun.objects.filter(server=server).exclude(facts__isnull=True).first()
    stored = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    endpoint = run.facts["endpoints"][0]
    for protocol in CLIENT_PROTOCOLS:
        cleartext = endpoint[protocol.name]
        upgrade = cleartext.get("stls") or cleartext["starttls"]
        for support in (endpoint[protocol.implicit_tls_name]["support"], upgrade["support"]):
            support["measured_at"] = stored.isoformat()
    run.save(update_fields=["facts"])
    second = scan(server, doors, config, scheduled=True)
    reused = {door: support.measured_at for door, support in door_supports(second).items()}
    assert reused == dict.fromkeys(door_supports(first), stored)


def test_a_manual_scan_enumerates_again(server, fixed):
    scan(server, fixed, WINDOWS_2016, scheduled=False)
    stored = age_stored_enumerations(server, 1)
    assert implicit_tls(scan(server, fixed, WINDOWS_2016, scheduled=False)).measured_at > stored


def test_a_server_that_now_negotiates_differently_is_enumerated_again(server, fixed):
    scan(server, fixed, WINDOWS_2016, scheduled=False)
    stored = age_stored_enumerations(server, 1)
    upgraded = implicit_tls(scan(server, fixed, WINDOWS_2022, scheduled=True))
    assert upgraded.measured_at > stored
    assert "TLSv1.3" in upgraded.cipher_suites
    assert upgraded.negotiated == "TLSv1.3 TLS_AES_256_GCM_SHA384"


def test_an_enumeration_older_than_the_policy_allows_is_redone(server, fixed):
    scan(server, fixed, WINDOWS_2016, scheduled=False)
    recent = age_stored_enumerations(server, 1)
    stale = age_stored_enumerations(server, 25, entry="pop3s")
    second = scan(server, fixed, WINDOWS_2016, scheduled=True)
    assert implicit_tls(second).measured_at > recent > stale
    # The STLS entry point's enumeration was young enough to reuse.
    assert second.endpoints[0].pop3.stls.support.measured_at == recent


def test_a_policy_of_zero_hours_enumerates_at_every_scan(server, fixed):
    server.policy.tls_enumeration_hours = 0
    server.policy.save()
    scan(server, fixed, WINDOWS_2016, scheduled=False)
    stored = age_stored_enumerations(server, 1)
    assert implicit_tls(scan(server, fixed, WINDOWS_2016, scheduled=True)).measured_at > stored


def test_a_damaged_stored_enumeration_is_ignored_not_trusted(server, fixed):
    scan(server, fixed, WINDOWS_2016, scheduled=False)
    run = ScanRun.objects.filter(server=server).exclude(facts__isnull=True).first()
    run.facts["endpoints"][0]["pop3s"]["support"]["cipher_suites"] = "RC4"
    run.save(update_fields=["facts"])
    earlier = earlier_tls_support(Server.objects.get(pk=server.pk), timezone.now())
    assert [(e.port, e.after_stls) for e in earlier] == [(server.pop3_port, True)]


def test_a_regression_the_handshake_does_not_show_is_caught_before_reuse(server, fixed):
    # TLS 1.0 switched back on: a modern handshake still negotiates TLS 1.3 as before, but
    # the check hellos before reuse find it, and the suites are listed again.
    modern = EndpointConfig(tls_versions=("TLSv1.2", "TLSv1.3"))
    legacy = EndpointConfig(tls_versions=("TLSv1", "TLSv1.3"))
    scan(server, fixed, modern, scheduled=False)
    stored = age_stored_enumerations(server, 1)
    again = implicit_tls(scan(server, fixed, legacy, scheduled=True))
    assert again.measured_at > stored
    assert again.accepted_versions["TLSv1"] is True


class CountedHellos:
    """The enumeration's way to an implicit-TLS entry point, counting the hellos sent."""

    def __init__(self, emulated, config: EndpointConfig) -> None:
        endpoint = emulated.start(config)
        self.address, self.target = endpoint.address, emulated.target(endpoint)
        self.sent = 0

    def run(self, enumeration, *args):
        """`enumeration(exchange, sni, *args)` in a session of its own (on its own loop)."""
        settings = Settings(timeout=3)
        session = AddressSession(self.address, self.target, settings, LoginGate())
        way_in = session._exchange(self.target.pop3s_port, None)

        async def exchange(hello):
            self.sent += 1
            return await way_in(hello)

        self.sent = 0
        return asyncio.run(enumeration(exchange, self.target.service_name, *args))

    def enumerated(self) -> TlsSupport:
        return self.run(enumerate_tls)

    def still_accurate(self, earlier: TlsSupport) -> bool:
        return self.run(still_accurate, earlier)


def test_the_check_before_reuse_takes_one_hello_per_version_from_a_server_answering_long_ones(
    emulated,
):
    entry = CountedHellos(emulated, WINDOWS_2016)
    support = entry.enumerated()
    assert support.answers_long_hellos is True  # TLS 1.2's 332 suites went in one hello
    assert entry.still_accurate(support) is True
    assert entry.sent == 6  # SSLv2, then SSLv3 … TLS 1.3 each offering what it refused
    # A server not known to answer long hellos is asked TLS 1.2's other suites in parts.
    assert entry.still_accurate(replace(support, answers_long_hellos=False)) is True
    assert entry.sent == 9


def test_a_suite_newly_accepted_is_found_by_the_one_long_hello(emulated):
    entry = CountedHellos(emulated, WINDOWS_2016)
    support = entry.enumerated()
    tls12 = support.cipher_suites["TLSv1.2"]
    # As if TLS 1.2's last suite had been switched on since the enumeration.
    earlier = replace(support, cipher_suites={**support.cipher_suites, "TLSv1.2": tls12[:-1]})
    assert entry.still_accurate(earlier) is False


@pytest.mark.parametrize("protocols", ["pop3", "pop3,imap,submission"])
def test_an_unchanged_scheduled_rescan_task_runs_fourteen_queries(
    db, settings, lab_dns, redis_broker, protocols
):
    # The worker's reads (the server, the last enumerations), and the recording, in bulk
    # whatever the number of checks: the same count for one protocol as for three.
    settings.POPC_DNS_RESOLVER = lab_dns.address
    doors = AllDoors()
    server = doors.server("mail01", protocols)
    config = replace(WINDOWS_2016, imap=True, imaps=True, submission=True, submissions=True)
    with doors.serving(config):
        for _ in range(2):  # the first scan, then one that settles what it saw
            scan_server(server.pk)
        with CaptureQueriesContext(connection) as queries:
            scan_server(server.pk)
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 14, "\n".join(statement[:120] for statement in statements)
