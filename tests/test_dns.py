"""DNS facts, against a real DNS server on loopback (tests/dnsserver.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from scanner._dns import (
    lookup_addresses,
    lookup_srv,
    make_resolver,
    resolve_service,
    srv_domain_for,
)
from scanner._errors import DnsError
from scanner._facts import SrvRecord
from scanner._target import Settings, Target
from tests.dnsserver import DnsServer
from tests.ports import free_port

T = TypeVar("T")
NAME = "mail.example.test"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings_for(server: DnsServer, timeout: float = 2.0) -> Settings:
    return Settings(resolver=server.address, timeout=timeout)


def lookup_error(name: str, settings: Settings) -> DnsError:
    with pytest.raises(DnsError) as caught:
        run(lookup_addresses(name, settings))
    return caught.value


# --- addresses ------------------------------------------------------------------------------


def test_it_returns_ipv4_then_ipv6_sorted_and_deduplicated(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "10.0.0.10", "10.0.0.9")
    dns_server.add(NAME, "AAAA", "2001:db8:0::1", "::1")
    dns_server.add("www.example.test", "A", "10.0.0.9")  # not asked for
    addresses = run(lookup_addresses(NAME, settings_for(dns_server)))
    assert addresses == ("10.0.0.9", "10.0.0.10", "::1", "2001:db8::1")


def test_a_name_with_only_ipv4_resolves(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.7")
    assert run(lookup_addresses(NAME, settings_for(dns_server))) == ("192.0.2.7",)


def test_it_asks_the_configured_server_for_a_and_aaaa(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.7")
    run(lookup_addresses(NAME + ".", settings_for(dns_server)))
    assert sorted(dns_server.queried(NAME)) == ["A", "AAAA"]
    assert [name for name, _ in dns_server.queries] == [NAME, NAME]  # no search suffix


def test_the_resolver_is_built_from_the_resolver_setting(dns_server: DnsServer) -> None:
    resolver = make_resolver(Settings(resolver=dns_server.address, timeout=30))
    assert (resolver.nameservers, resolver.port) == (["127.0.0.1"], dns_server.port)
    assert resolver.search == []
    assert resolver.lifetime == 5.0  # one lookup is bounded even with a long timeout


def test_the_cached_resolver_works_in_a_second_event_loop(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.7")
    settings = settings_for(dns_server)
    first = run(lookup_addresses(NAME, settings))
    second = run(lookup_addresses(NAME, Settings(resolver=dns_server.address, timeout=2.0)))
    assert first == second == ("192.0.2.7",)
    assert make_resolver(settings) is make_resolver(settings_for(dns_server))


def test_an_unknown_name_is_nxdomain(dns_server: DnsServer) -> None:
    error = lookup_error("nope.example.test", settings_for(dns_server))
    assert error.kind == "nxdomain"
    assert error.step == "resolve nope.example.test"
    assert error.reason == "the name nope.example.test does not exist (NXDOMAIN)"


def test_a_name_without_address_records_is_no_address(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "TXT", '"v=spf1 -all"')
    error = lookup_error(NAME, settings_for(dns_server))
    assert error.kind == "no_address"
    assert "no A or AAAA record" in error.reason


def test_servfail_is_reported_as_servfail(dns_server: DnsServer) -> None:
    dns_server.fail(NAME)
    error = lookup_error(NAME, settings_for(dns_server))
    assert (error.kind, error.reason) == ("servfail", "the DNS server failed to answer (SERVFAIL)")


def test_a_refused_query_is_a_plain_error(dns_server: DnsServer) -> None:
    dns_server.fail(NAME, "REFUSED")
    error = lookup_error(NAME, settings_for(dns_server))
    assert (error.kind, error.reason) == ("error", "the DNS server would not answer (REFUSED)")


def test_a_silent_server_times_out_within_the_timeout(dns_server: DnsServer) -> None:
    dns_server.drop(NAME)
    started = time.monotonic()
    error = lookup_error(NAME, settings_for(dns_server, timeout=1.0))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert error.reason == f"no answer from DNS server {dns_server.address} within 1 s"
    assert 0.9 <= elapsed < 1.5


# --- SRV ------------------------------------------------------------------------------------


def test_srv_records_are_returned_sorted_by_priority_and_weight(dns_server: DnsServer) -> None:
    dns_server.add(
        "_pop3s._tcp.example.test",
        "SRV",
        "10 5 995 backup.example.test.",
        "0 20 995 Mail.Example.Test.",
        "0 10 995 mail2.example.test.",
    )
    pop3s, pop3 = run(lookup_srv("example.test", settings_for(dns_server)))
    assert pop3s == (
        SrvRecord(0, 10, 995, "mail2.example.test"),
        SrvRecord(0, 20, 995, "mail.example.test"),
        SrvRecord(10, 5, 995, "backup.example.test"),
    )
    assert pop3 == ()


def test_absent_srv_records_are_empty_not_errors(dns_server: DnsServer) -> None:
    dns_server.add("_pop3._tcp.example.test", "TXT", '"exists, but no SRV"')
    assert run(lookup_srv("example.test", settings_for(dns_server))) == ((), ())


def test_a_dot_target_is_kept_as_not_offered(dns_server: DnsServer) -> None:
    dns_server.add("_pop3._tcp.example.test", "SRV", "0 0 0 .")
    _, pop3 = run(lookup_srv("example.test", settings_for(dns_server)))
    assert pop3 == (SrvRecord(0, 0, 0, "."),)


def test_a_failing_srv_lookup_raises(dns_server: DnsServer) -> None:
    dns_server.fail("_pop3._tcp.example.test")
    with pytest.raises(DnsError) as caught:
        run(lookup_srv("example.test", settings_for(dns_server)))
    assert caught.value.kind == "servfail"
    assert caught.value.step == "resolve SRV _pop3._tcp.example.test"


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("mail.contoso.com", "contoso.com"),
        ("pop.eu.contoso.com", "eu.contoso.com"),
        ("Mail.Contoso.COM.", "contoso.com"),
        ("contoso.com", "contoso.com"),
        ("mailhost", None),
        ("192.0.2.1", None),
        ("2001:db8::1", None),
        ("", None),
    ],
)
def test_srv_domain_is_the_parent_of_the_service_name(name: str, domain: str | None) -> None:
    assert srv_domain_for(name) == domain


# --- resolve_service ------------------------------------------------------------------------


def test_resolve_service_collects_addresses_and_srv(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.7")
    dns_server.add("_pop3s._tcp.example.test", "SRV", f"0 1 995 {NAME}.")
    facts = run(resolve_service(Target(NAME), settings_for(dns_server)))
    assert (facts.name, facts.outcome, facts.addresses) == (NAME, "ok", ("192.0.2.7",))
    assert facts.error is None and facts.srv_error is None
    assert facts.srv_domain == "example.test"
    assert facts.srv_pop3s == (SrvRecord(0, 1, 995, NAME),)
    assert facts.srv_pop3 == ()


def test_an_ip_target_without_a_name_is_not_applicable(dns_server: DnsServer) -> None:
    facts = run(resolve_service(Target("192.0.2.7"), settings_for(dns_server)))
    assert (facts.outcome, facts.addresses, facts.srv_domain) == (
        "not_applicable",
        ("192.0.2.7",),
        None,
    )
    assert dns_server.queries == []


def test_resolve_service_records_nxdomain_instead_of_raising(dns_server: DnsServer) -> None:
    facts = run(resolve_service(Target(NAME), settings_for(dns_server)))
    assert facts.outcome == "nxdomain"
    assert facts.error == f"resolve {NAME}: the name {NAME} does not exist (NXDOMAIN)"
    assert facts.addresses == ()
    assert (facts.srv_pop3s, facts.srv_pop3) == ((), ())


def test_resolve_service_records_timeouts_in_one_timeout(dns_server: DnsServer) -> None:
    for name in (NAME, "_pop3s._tcp.example.test", "_pop3._tcp.example.test"):
        dns_server.drop(name)
    started = time.monotonic()
    facts = run(resolve_service(Target(NAME), settings_for(dns_server, timeout=1.0)))
    assert time.monotonic() - started < 1.5  # address and SRV lookups ran concurrently
    assert facts.outcome == "timeout"
    assert facts.srv_pop3s is None and facts.srv_pop3 is None
    assert facts.srv_error is not None and "within 1 s" in facts.srv_error


def test_a_failing_aaaa_lookup_keeps_ipv4_and_says_so(dns_server: DnsServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.7")
    dns_server.fail(NAME, rdtype="AAAA")
    facts = run(resolve_service(Target(NAME), settings_for(dns_server)))
    assert (facts.outcome, facts.addresses) == ("ok", ("192.0.2.7",))
    assert facts.error == "AAAA lookup failed: the DNS server failed to answer (SERVFAIL)"


def test_a_resolver_port_with_nothing_listening_fails_in_time() -> None:
    closed = f"127.0.0.1:{free_port(kind=socket.SOCK_DGRAM)}"
    started = time.monotonic()
    error = lookup_error(NAME, Settings(resolver=closed, timeout=1.0))
    assert error.kind in {"timeout", "error"}
    assert closed in error.reason
    assert time.monotonic() - started < 1.3
