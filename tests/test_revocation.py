"""cert.revocation against a real CA on loopback: Debian OpenSSL's OCSP responder, the CA's CRL
over HTTP, a responder that hangs and one that answers garbage, OpenSSL's s_server stapling,
and a POP3S server serving each leaf (tests/revocation_lab.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from popcompliance.compliance.models import CheckState
from popcompliance.compliance.recording import Recorded, record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy as PolicyRow
from popcompliance.inventory.models import Server
from scanner import Policy, ScanReport, Settings, Target, report_to_dict, scan
from scanner._ca_answers import CRLS, OCSP_ANSWERS, UNREACHABLE, AnswerCache
from scanner._facts import RevocationFacts
from scanner._guard import DENY_NETWORKS
from scanner._http import _read_head
from scanner._stapling import NOT_STAPLED, stapled_response
from tests.conftest import lab_server
from tests.dnsserver import DnsServer
from tests.ports import free_port
from tests.revocation_lab import (
    HOST,
    Authority,
    HttpLab,
    Leaf,
    OcspResponder,
    Pop3sServer,
    StaplingServer,
    ocsp_response,
)

TIMEOUT = 2.0
# The responder's name, which only the lab's DNS server resolves.
OCSP_NAME = "ocsp.revocation.test"


@dataclass
class Lab:
    ca: Authority
    http: HttpLab
    responder: OcspResponder
    leaves: dict[str, Leaf]
    servers: dict[str, Pop3sServer] = field(default_factory=dict)
    closed_port: int = 0
    # Connections made to the address the "watched" leaf's responder names.
    watched: list[int] = field(default_factory=list)

    @property
    def policy(self) -> Policy:
        return Policy(ca_bundle_pem=self.ca.pem, use_system_trust=False)

    def scan(self, kind: str, *, policy: Policy | None = None, **settings: object) -> ScanReport:
        target = Target(HOST, pop3_port=self.closed_port, pop3s_port=self.servers[kind].port)
        options: dict[str, object] = {"timeout": TIMEOUT, "enumerate_tls": False} | settings
        return scan([target], Settings(**options), policy or self.policy)[0]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    directory = tmp_path_factory.mktemp("revocation")
    ca = Authority(directory)
    http = HttpLab(ca)
    ocsp = f"http://{HOST}:{(ocsp_port := free_port(HOST))}/"
    crl = f"{http.base}/ca.crl"
    watcher = socket.create_server(("127.0.0.3", 0))
    leaves = {
        "good": ca.issue("good.example.test", ocsp_url=ocsp, crl_url=crl),
        "revoked": ca.issue("revoked.example.test", ocsp_url=ocsp, crl_url=crl, revoked=True),
        "revoked_ocsp_only": ca.issue("r-ocsp.example.test", ocsp_url=ocsp, revoked=True),
        "revoked_crl_only": ca.issue("r-crl.example.test", crl_url=crl, revoked=True),
        "unknown": ca.issue("unknown.example.test", ocsp_url=ocsp, listed=False),
        "hangs": ca.issue("hangs.example.test", ocsp_url=f"{http.base}/hang"),
        "garbage": ca.issue("garbage.example.test", ocsp_url=f"{http.base}/garbage"),
        "metadata": ca.issue(
            "metadata.example.test",
            ocsp_url="http://169.254.169.254/",
            crl_url="http://169.254.169.254/ca.crl",
        ),
        "watched": ca.issue(
            "watched.example.test", ocsp_url=f"http://127.0.0.3:{watcher.getsockname()[1]}/"
        ),
        "bare": ca.issue("bare.example.test"),
        "named": ca.issue("named.example.test", ocsp_url=f"http://{OCSP_NAME}:{ocsp_port}/"),
        "ldap": ca.issue(
            "ldap.example.test", crl_url="ldap:///CN=Test%20CA,CN=CDP?certificateRevocationList"
        ),
        # Its responder is out of our reach, as a server behind a firewall staples it anyway.
        "staples": ca.issue("staples.example.test", ocsp_url=f"http://{HOST}:{free_port(HOST)}/"),
    }
    responder = OcspResponder(ca, ocsp_port)
    running = Lab(ca, http, responder, leaves, closed_port=free_port(HOST))
    running.servers = {kind: Pop3sServer(leaf, directory) for kind, leaf in leaves.items()}
    threading.Thread(
        target=_count_connections, args=(watcher, running.watched), daemon=True
    ).start()
    yield running
    for server in running.servers.values():
        server.stop()
    responder.stop()
    http.stop()
    watcher.close()


def _count_connections(listener: socket.socket, seen: list[int]) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        seen.append(1)
        connection.close()


@pytest.fixture(autouse=True)
def no_kept_answers() -> None:
    """Each test asks the CA afresh: the answers kept by earlier tests are dropped."""
    OCSP_ANSWERS.clear()
    CRLS.clear()
    UNREACHABLE.clear()


def revocation(report: ScanReport) -> tuple[str, str]:
    check = next(check for check in report.checks if check.id == "cert.revocation")
    return check.status, check.summary


def facts(report: ScanReport) -> RevocationFacts:
    (found,) = report.endpoints[0].revocation
    return found


def test_a_good_certificate_passes_per_ocsp_and_the_crl(lab: Lab) -> None:
    report = lab.scan("good")
    status, summary = revocation(report)
    assert status == "pass"
    assert summary == (
        f"not revoked per OCSP ({lab.leaves['good'].ocsp_url}) and the CRL "
        f"({lab.http.base}/ca.crl) on {lab.servers['good'].port}"
    )
    ocsp, crl = facts(report).lookups
    assert (ocsp.method, ocsp.status, crl.method, crl.status) == ("ocsp", "good", "crl", "good")
    assert ocsp.this_update is not None and ocsp.next_update is not None
    assert ocsp.next_update > ocsp.this_update


def test_a_revoked_certificate_fails_with_date_and_reason_from_both(lab: Lab) -> None:
    status, summary = revocation(lab.scan("revoked"))
    assert status == "fail"
    assert summary.startswith(
        f"revoked on 2026-11-20 (keyCompromise) per OCSP ({lab.leaves['revoked'].ocsp_url}) "
        f"and the CRL ({lab.http.base}/ca.crl)"
    )


@pytest.mark.parametrize(
    ("kind", "source"), [("revoked_ocsp_only", "OCSP"), ("revoked_crl_only", "the CRL")]
)
def test_either_source_alone_fails_a_revoked_certificate(lab: Lab, kind: str, source: str) -> None:
    status, summary = revocation(lab.scan(kind))
    assert status == "fail"
    assert summary.startswith(f"revoked on 2026-11-20 (keyCompromise) per {source} (")


def test_a_certificate_its_responder_does_not_know_warns(lab: Lab) -> None:
    status, summary = revocation(lab.scan("unknown"))
    assert (status, summary.split(" on ")[0]) == (
        "warn",
        f"OCSP ({lab.leaves['unknown'].ocsp_url}) does not know the certificate",
    )


def test_a_responder_that_hangs_warns_within_the_timeout(lab: Lab) -> None:
    started = time.monotonic()
    report = lab.scan("hangs")
    status, summary = revocation(report)
    assert status == "warn"
    assert f"no answer within {TIMEOUT:g} s" in summary
    assert time.monotonic() - started < 3 * TIMEOUT


def test_a_responder_that_hung_is_not_waited_for_again_at_once(lab: Lab) -> None:
    first = revocation(lab.scan("hangs"))
    asked = lab.http.hits["/hang"]
    started = time.monotonic()
    second = lab.scan("hangs")
    assert time.monotonic() - started < TIMEOUT
    assert revocation(second) == first
    assert lab.http.hits["/hang"] == asked
    assert facts(second).lookups[0].cached


def test_a_responder_that_answers_garbage_warns(lab: Lab) -> None:
    status, summary = revocation(lab.scan("garbage"))
    assert status == "warn"
    assert "an unusable answer: not an OCSP response (32 bytes)" in summary
    assert "<html>" not in summary  # what a host the URL points at said is not for viewers


def test_a_certificate_without_revocation_information_warns(lab: Lab) -> None:
    status, summary = revocation(lab.scan("bare"))
    assert status == "warn"
    assert summary.startswith("the CA publishes no revocation information")


def test_an_ldap_only_distribution_point_warns_that_it_is_not_fetched(lab: Lab) -> None:
    status, summary = revocation(lab.scan("ldap"))
    assert status == "warn"
    assert "only ldap:// distribution points, which are not fetched" in summary


def test_the_guard_refuses_a_metadata_address_without_connecting(lab: Lab) -> None:
    status, summary = revocation(lab.scan("metadata"))
    assert status == "warn"
    assert "169.254.169.254 is refused by the scanner guard: it is in 169.254.0.0/16" in summary


def test_the_guard_refuses_a_denied_network_and_nothing_connects(lab: Lab) -> None:
    deny = (*DENY_NETWORKS, "127.0.0.3/32")
    status, summary = revocation(lab.scan("watched", deny_networks=deny))
    assert status == "warn"
    assert "127.0.0.3 is refused by the scanner guard" in summary
    assert lab.watched == []


def test_without_the_issuer_certificate_it_warns_and_says_so(lab: Lab) -> None:
    status, summary = revocation(lab.scan("good", policy=Policy(use_system_trust=False)))
    assert status == "warn"
    assert "was neither served nor in the trust store" in summary


def test_a_responder_named_in_dns_is_found_through_the_scanners_resolver(lab: Lab) -> None:
    dns = DnsServer({OCSP_NAME: {"A": [HOST]}}).start()
    try:
        status, summary = revocation(lab.scan("named", resolver=dns.address))
    finally:
        dns.stop()
    assert (OCSP_NAME, "A") in dns.queries
    assert status == "pass"
    assert summary.startswith(f"not revoked per OCSP (http://{OCSP_NAME}:")


def test_a_second_scan_within_next_update_asks_nothing(lab: Lab) -> None:
    first = lab.scan("good")
    asked, downloads = lab.responder.requests, lab.http.hits.get("/ca.crl", 0)
    assert (asked, downloads) >= (1, 1)
    second = lab.scan("good")
    assert (lab.responder.requests, lab.http.hits.get("/ca.crl", 0)) == (asked, downloads)
    assert revocation(second) == revocation(first)
    assert all(lookup.cached for lookup in facts(second).lookups)


def test_the_json_report_carries_the_revocation_facts(lab: Lab) -> None:
    report = lab.scan("revoked")
    (found,) = report_to_dict(report)["endpoints"][0]["revocation"]
    assert found["ocsp_urls"] == [lab.leaves["revoked"].ocsp_url]
    assert found["issuer"] == "CN=PopCompliance Revocation Test CA"
    assert found["stapled"] == {str(lab.servers["revoked"].port): NOT_STAPLED}
    ocsp = found["lookups"][0]
    assert (ocsp["method"], ocsp["status"], ocsp["reason"]) == ("ocsp", "revoked", "keyCompromise")
    assert ocsp["revoked_at"] == "2026-11-20T09:30:00Z"


# --- the answer cache ---------------------------------------------------------------------


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_a_kept_answer_holds_until_its_next_update_and_not_at_it() -> None:
    cache: AnswerCache[str, str] = AnswerCache(10, 100)
    cache.put("ocsp", "good", until=NOW)
    assert cache.get("ocsp", NOW - SECOND) == "good"
    assert cache.get("ocsp", NOW) is None
    assert cache.get("ocsp", NOW - SECOND) is None  # dropped once past, not kept for later


def test_the_cache_drops_the_least_recently_used_beyond_its_bytes() -> None:
    cache: AnswerCache[str, str] = AnswerCache(10, 100)
    later = NOW + timedelta(hours=1)
    cache.put("a", "crl a", later, size=60)
    cache.put("b", "crl b", later, size=30)
    assert cache.get("a", NOW) == "crl a"  # a is now the most recently used
    cache.put("c", "crl c", later, size=30)
    assert [cache.get(key, NOW) for key in "abc"] == ["crl a", None, "crl c"]


# --- stapling (OpenSSL's s_server -status_file) --------------------------------------------


@pytest.fixture
def stapling(lab: Lab, tmp_path: Path) -> Iterator[list[StaplingServer]]:
    started: list[StaplingServer] = []
    yield started
    for server in started:
        server.stop()


def _stapling_server(
    lab: Lab, started: list[StaplingServer], tmp_path: Path, kind: str, staple: str | None
) -> StaplingServer:
    leaf = lab.leaves[kind]
    stapled = None if staple is None else ocsp_response(lab.ca, leaf, revoked=staple == "revoked")
    server = StaplingServer(leaf, tmp_path, free_port(HOST), stapled)
    started.append(server)
    return server


def test_it_reads_a_stapled_response(
    lab: Lab, stapling: list[StaplingServer], tmp_path: Path
) -> None:
    server = _stapling_server(lab, stapling, tmp_path, "bare", "good")
    got = asyncio.run(stapled_response(HOST, server.port, None, Settings(timeout=TIMEOUT)))
    assert got == server.stapled


def test_a_server_that_staples_good_passes_without_responders(
    lab: Lab, stapling: list[StaplingServer], tmp_path: Path
) -> None:
    server = _stapling_server(lab, stapling, tmp_path, "staples", "good")
    target = Target(HOST, pop3_port=lab.closed_port, pop3s_port=server.port)
    report = scan([target], Settings(timeout=TIMEOUT, enumerate_tls=False), lab.policy)[0]
    assert revocation(report) == (
        "pass",
        f"not revoked per the OCSP response it stapled (OCSP ({lab.leaves['staples'].ocsp_url}) "
        f"gave no usable answer) on {server.port}",
    )
    assert facts(report).stapled == {str(server.port): "stapled"}


def test_a_stapled_revoked_response_fails(
    lab: Lab, stapling: list[StaplingServer], tmp_path: Path
) -> None:
    server = _stapling_server(lab, stapling, tmp_path, "staples", "revoked")
    target = Target(HOST, pop3_port=lab.closed_port, pop3s_port=server.port)
    report = scan([target], Settings(timeout=TIMEOUT, enumerate_tls=False), lab.policy)[0]
    status, summary = revocation(report)
    assert status == "fail"
    assert summary.startswith(
        f"revoked on 2026-11-20 (keyCompromise) per the OCSP response it stapled on {server.port}"
    )


# ecdsa-with-SHA256's OID, and one cryptography knows no hash for (the staple's signature).
ECDSA_SHA256_OID = bytes.fromhex("2a8648ce3d040302")
UNKNOWN_SIGNATURE_OID = bytes.fromhex("2a8648ce3d04037f")


def test_a_staple_no_library_can_read_warns_and_the_scan_goes_on(
    lab: Lab, stapling: list[StaplingServer], tmp_path: Path
) -> None:
    """The server staples an answer whose signature names an algorithm cryptography does not
    know (it raises when the field is read, not when the answer is loaded): the scan still
    reports, and the check warns instead of the batch failing."""
    leaf = lab.leaves["staples"]
    good = ocsp_response(lab.ca, leaf, revoked=False)
    at = good.rindex(ECDSA_SHA256_OID)
    hostile = good[:at] + UNKNOWN_SIGNATURE_OID + good[at + len(ECDSA_SHA256_OID) :]
    server = StaplingServer(leaf, tmp_path, free_port(HOST), hostile)
    stapling.append(server)
    target = Target(HOST, pop3_port=lab.closed_port, pop3s_port=server.port)
    report = scan([target], Settings(timeout=TIMEOUT, enumerate_tls=False), lab.policy)[0]
    status, summary = revocation(report)
    assert status == "warn", summary


def test_a_content_length_that_is_not_ascii_digits_is_no_length() -> None:
    """str.isdigit() takes "²", which int() refuses: the answer is then read to its end."""
    assert asyncio.run(_head_of(b"HTTP/1.0 200 OK\r\nContent-Length: \xb2\r\n\r\n")) is None
    assert asyncio.run(_head_of(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n")) == 12


async def _head_of(data: bytes) -> int | None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await _read_head(reader)


def test_a_server_that_does_not_staple_says_so(
    lab: Lab, stapling: list[StaplingServer], tmp_path: Path
) -> None:
    server = _stapling_server(lab, stapling, tmp_path, "bare", None)
    got = asyncio.run(stapled_response(HOST, server.port, None, Settings(timeout=TIMEOUT)))
    assert got == NOT_STAPLED


# --- the dashboard's record path --------------------------------------------------------------


@pytest.mark.django_db
def test_a_revoked_certificate_is_recorded_and_an_unchanged_rescan_writes_nothing(
    lab: Lab, lab_dns: DnsServer, settings: Any
) -> None:
    settings.POPC_DNS_RESOLVER, settings.POPC_SCAN_TIMEOUT = lab_dns.address, TIMEOUT
    policy = PolicyRow.objects.create(
        name="revocation lab", ca_bundle_pem=lab.ca.pem, use_system_trust=False
    )
    server = lab_server("revoked01", HOST, lab.closed_port, lab.servers["revoked"].port, policy)
    first = _scan_and_record(server)
    assert ("cert.revocation", "", "fail") in [
        (c.check_id, c.previous_status, c.status) for c in first.changes
    ]
    stored = list(CheckState.objects.filter(server=server).values_list("pk", "summary", "since"))
    second = _scan_and_record(server)
    assert second.changes == []
    assert list(CheckState.objects.filter(server=server).values_list("pk", "summary", "since")) == (
        stored
    )
    (revocation,) = second.scan_run.facts["endpoints"][0]["revocation"]
    assert [lookup["cached"] for lookup in revocation["lookups"]] == [True, True]


def _scan_and_record(server: Server) -> Recorded:
    loaded = Server.objects.select_related("policy").get(pk=server.pk)
    return record_report(server.pk, scan_servers([loaded])[server.pk], purpose="manual")
