"""Storing scan reports: settled state, one Change per real change, confirmation rules, and
as many queries however many checks a scan ran."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from popcompliance.compliance.models import Certificate, Change, CheckState, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy, Server
from scanner import CHECK_IDS
from tests.conftest import SERVICE_NAME, AllDoors, create_lab_policy, lab_server

SECURE = EndpointConfig()
# NTLM off: its disclosure (auth.ntlm_disclosure) would be a second finding to account for.
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin", ntlm=False)


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    return lab_server("mail01", fixed.address, *fixed.ports)


def scan_and_record(server, fixed, config, purpose="scheduled"):
    with fixed.serving(config):
        report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    return record_report(server.pk, report[server.pk], purpose=purpose)


def status_of(server):
    return Server.objects.get(pk=server.pk).status


def test_a_first_compliant_scan_records_no_passing_check(server, fixed):
    recorded = scan_and_record(server, fixed, SECURE)
    # The lab DNS publishes no SRV records and the lab CA no OCSP nor CRL: the two non-passes
    # are those warnings.
    assert [(c.check_id, c.previous_status, c.status) for c in recorded.changes] == [
        ("dns.srv", "", "warn"),
        ("cert.revocation", "", "warn"),
    ]
    assert status_of(server) == "compliant"
    assert CheckState.objects.filter(server=server).count() == len(CHECK_IDS)  # one address


def test_a_first_non_compliant_scan_records_only_the_bad_checks(server, fixed):
    recorded = scan_and_record(server, fixed, PLAINTEXT)
    assert {(c.check_id, c.previous_status, c.status) for c in recorded.changes} == {
        ("pop3.plaintext_login", "", "fail"),
        ("cert.revocation", "", "warn"),
        ("dns.srv", "", "warn"),
    }
    assert status_of(server) == "non_compliant"


def test_an_unchanged_rescan_writes_no_state_or_change(server, fixed):
    scan_and_record(server, fixed, SECURE)
    states = list(CheckState.objects.values_list("pk", "status", "since"))
    changes = Change.objects.count()
    for _ in range(3):
        scan_and_record(server, fixed, SECURE)
    assert list(CheckState.objects.values_list("pk", "status", "since")) == states
    assert Change.objects.count() == changes
    assert ScanRun.objects.filter(server=server).count() == 4


def test_a_regression_is_held_until_the_confirming_scan(server, fixed):
    scan_and_record(server, fixed, SECURE)
    first = scan_and_record(server, fixed, PLAINTEXT)
    assert first.needs_confirmation
    assert first.changes == []
    assert status_of(server) == "compliant"
    state = CheckState.objects.get(server=server, check_id="pop3.plaintext_login")
    assert (state.status, state.candidate_status, state.candidate_count) == ("pass", "fail", 1)

    confirmed = scan_and_record(server, fixed, PLAINTEXT, purpose="confirmation")
    assert [(c.check_id, c.previous_status, c.status) for c in confirmed.changes] == [
        ("pop3.plaintext_login", "pass", "fail")
    ]
    assert not confirmed.needs_confirmation
    assert status_of(server) == "non_compliant"


def test_a_regression_that_does_not_repeat_leaves_no_trace(server, fixed):
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, PLAINTEXT)
    recorded = scan_and_record(server, fixed, SECURE, purpose="confirmation")
    assert recorded.changes == []
    assert not CheckState.objects.filter(server=server).exclude(candidate_status="").exists()
    assert status_of(server) == "compliant"


def test_a_recovery_settles_at_once(server, fixed):
    scan_and_record(server, fixed, PLAINTEXT)
    recorded = scan_and_record(server, fixed, SECURE)
    assert ("pop3.plaintext_login", "fail", "pass") in {
        (c.check_id, c.previous_status, c.status) for c in recorded.changes
    }
    assert not recorded.needs_confirmation
    assert status_of(server) == "compliant"


def test_errors_settle_only_after_the_policys_consecutive_runs(server, fixed):
    Policy.objects.filter(pk=server.policy_id).update(error_runs_before_unknown=3)
    scan_and_record(server, fixed, SECURE)
    silent = HostileConfig("no_banner")
    for _ in range(2):
        recorded = scan_and_record(server, fixed, silent)
        assert recorded.changes == [] and not recorded.needs_confirmation
        assert status_of(server) == "compliant"
    recorded = scan_and_record(server, fixed, silent)
    assert ("pop3.plaintext_login", "pass", "error") in {
        (c.check_id, c.previous_status, c.status) for c in recorded.changes
    }
    assert status_of(server) == "unknown"


def test_an_answer_between_errors_restarts_the_count(server, fixed):
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, HostileConfig("no_banner"))
    scan_and_record(server, fixed, SECURE)
    recorded = scan_and_record(server, fixed, HostileConfig("no_banner"))
    assert recorded.changes == []
    assert status_of(server) == "compliant"


def test_recording_the_same_report_twice_writes_one_change(server, fixed):
    with fixed.serving(PLAINTEXT):
        report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    record_report(server.pk, report[server.pk], purpose="scheduled")
    record_report(server.pk, report[server.pk], purpose="scheduled")
    assert Change.objects.filter(check_id="pop3.plaintext_login").count() == 1


def test_certificates_are_kept_once_with_where_they_are_served(server, fixed):
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, SECURE)
    certificate = Certificate.objects.get()
    assert certificate.common_name == SERVICE_NAME
    ports = sorted(certificate.sightings.values_list("port", flat=True))
    assert ports == sorted(fixed.ports)


def test_a_renewed_certificate_is_a_new_certificate(server, fixed):
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, EndpointConfig(cert_kind="ec256"))
    assert Certificate.objects.count() == 2


# --- queries per scan ------------------------------------------------------------------------

THREE_PROTOCOLS = {"imap": True, "imaps": True, "submission": True, "submissions": True}
# A password crosses in the clear on every protocol: POP3 and IMAP4 take plaintext logins,
# submission takes basic authentication without BasicAuthRequireTLS.
PLAINTEXT_EVERYWHERE = EndpointConfig(
    login_type="PlainTextLogin",
    imap_login_type="PlainTextLogin",
    submission_auth="Tls,Integrated,BasicAuth",
    **THREE_PROTOCOLS,
)


def record_counting_queries(server, doors, config):
    """Scan `server` while `doors` serve `config`, record it; the queries the recording ran
    and what it did."""
    with doors.serving(config):
        report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    with CaptureQueriesContext(connection) as queries:
        recorded = record_report(server.pk, report[server.pk], purpose="scheduled")
    return len(queries), recorded


@pytest.fixture
def pop3_and_all(db, settings, lab_dns):
    """A server declaring POP3 alone and one declaring all three protocols, each on an
    address of its own serving all three."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    policy = create_lab_policy()
    pop3_doors, all_doors = AllDoors(), AllDoors()
    pop3 = pop3_doors.server("pop3-only", "pop3", policy)
    three = all_doors.server("three", "pop3,imap,submission", policy)
    return (pop3, pop3_doors), (three, all_doors)


def test_a_first_scan_of_three_protocols_runs_the_queries_of_pop3_alone(pop3_and_all):
    (pop3, pop3_doors), (three, all_doors) = pop3_and_all
    # A certificate of its own for each, so that both recordings store a new one.
    pop3_secure = EndpointConfig(**THREE_PROTOCOLS)
    three_secure = EndpointConfig(cert_kind="ec256", **THREE_PROTOCOLS)
    pop3_queries, _ = record_counting_queries(pop3, pop3_doors, pop3_secure)
    three_queries, _ = record_counting_queries(three, all_doors, three_secure)
    assert Certificate.objects.count() == 2
    # Every check is stored on both (the undeclared protocols' as skip)…
    assert CheckState.objects.filter(server=three).count() == len(CHECK_IDS)
    assert CheckState.objects.filter(server=pop3).count() == len(CHECK_IDS)
    judged = CheckState.objects.exclude(status="skip")
    assert judged.filter(server=three).count() > judged.filter(server=pop3).count()
    # …and the certificate seen on six doors instead of two…
    assert three.certificate_sightings.count() == 6
    assert pop3.certificate_sightings.count() == 2
    # …in bulk: as many queries as for POP3 alone.
    assert three_queries == pop3_queries


def test_a_rescan_settling_three_protocols_runs_the_queries_of_one(pop3_and_all):
    (pop3, pop3_doors), (three, all_doors) = pop3_and_all
    record_counting_queries(pop3, pop3_doors, PLAINTEXT_EVERYWHERE)
    record_counting_queries(three, all_doors, PLAINTEXT_EVERYWHERE)
    # Each recovers at once: POP3's login verdict on one, every protocol's on the other.
    secure = EndpointConfig(**THREE_PROTOCOLS)
    pop3_queries, pop3_recorded = record_counting_queries(pop3, pop3_doors, secure)
    three_queries, three_recorded = record_counting_queries(three, all_doors, secure)
    recovered = {"pop3.plaintext_login", "imap.plaintext_login", "submission.plaintext_auth"}
    fixed_on = {c.check_id for c in three_recorded.changes if c.status == "pass"}
    assert recovered <= fixed_on
    assert len(three_recorded.changes) > len(pop3_recorded.changes)
    assert three_queries == pop3_queries
