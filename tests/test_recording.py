"""Storing scan reports: settled state, one Change per real change, confirmation rules."""

import pytest

from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from popcompliance.compliance.models import Certificate, Change, CheckState, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy, Server
from scanner import CHECK_IDS
from tests.conftest import SERVICE_NAME, lab_server

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
    # The lab DNS publishes no SRV records: the one non-pass is that warning.
    assert [(c.check_id, c.previous_status, c.status) for c in recorded.changes] == [
        ("dns.srv", "", "warn")
    ]
    assert status_of(server) == "compliant"
    assert CheckState.objects.filter(server=server).count() == len(CHECK_IDS)  # one address


def test_a_first_non_compliant_scan_records_only_the_bad_checks(server, fixed):
    recorded = scan_and_record(server, fixed, PLAINTEXT)
    assert {(c.check_id, c.previous_status, c.status) for c in recorded.changes} == {
        ("pop3.plaintext_login", "", "fail"),
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
