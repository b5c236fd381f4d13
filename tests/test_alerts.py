"""The alert lifecycle end to end: real scans of the emulator, recording, alert processing and
delivery to a real SMTP server on loopback."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from pop3lab.config import EndpointConfig
from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.lifecycle import opens, process_pending_changes, send_reminders
from popcompliance.alerts.models import Alert, Notification
from popcompliance.compliance.models import Change, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.compliance.tasks import scan_server
from popcompliance.inventory.models import Policy, Server
from tests.conftest import lab_server

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]

SECURE = EndpointConfig()
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin")
OWNER = "owner@example.test"
SITE = "https://popc.example.test"


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    return make_server(fixed, settings, lab_dns)


def make_server(fixed, settings, lab_dns):
    """mail01 on the `fixed` address, owned by OWNER, judged by a policy trusting the lab CA."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    settings.SITE_URL = SITE
    settings.POPC_ALERT_RECIPIENTS = []
    return lab_server("mail01", fixed.address, *fixed.ports, owner_emails=[OWNER])


def scan(server, fixed, config):
    with fixed.serving(config):
        return scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])[server.pk]


def scan_and_record(server, fixed, config, purpose="scheduled"):
    return record_report(server.pk, scan(server, fixed, config), purpose=purpose)


@pytest.fixture
def reports(server, fixed):
    """One real report of each configuration, to record again and again: the scans a flapping
    server would produce, without waiting for them."""
    return {"secure": scan(server, fixed, SECURE), "plain": scan(server, fixed, PLAINTEXT)}


def record(server, report):
    record_report(server.pk, report, purpose="scheduled")


def alert_and_deliver(now=None):
    now = now or timezone.now()
    process_pending_changes(now)
    send_reminders(now)
    return deliver_pending()


def regress(server, fixed):
    """Secure, then plaintext twice (the second scan confirms the regression)."""
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, PLAINTEXT)
    scan_and_record(server, fixed, PLAINTEXT, purpose="confirmation")


def test_a_confirmed_regression_mails_the_owner_once_with_evidence_and_fix(
    server, fixed, smtp_sink
):
    regress(server, fixed)
    alert_and_deliver()
    alert_and_deliver()
    [mail] = smtp_sink.received
    assert mail.rcpt_tos == (OWNER,)
    assert "mail01" in mail.subject and "pop3.plaintext_login" in mail.subject
    assert "FAIL" in mail.subject
    assert "USER" in mail.text and "+OK" in mail.text
    assert fixed.address in mail.text
    assert "Set-PopSettings -Server <CAS> -LoginType SecureLogin" in mail.text
    assert f"{SITE}{server.get_absolute_url()}" in mail.text
    assert "Set-PopSettings -Server &lt;CAS&gt; -LoginType SecureLogin" in mail.html


def test_a_regression_seen_once_mails_nobody(server, fixed, smtp_sink):
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, PLAINTEXT)
    alert_and_deliver()
    assert smtp_sink.received == []
    assert not Alert.objects.exists()


def test_a_new_server_that_fails_alerts_but_its_first_warnings_do_not(server, fixed, smtp_sink):
    scan_and_record(server, fixed, PLAINTEXT)  # also dns.srv: warn (the lab has no SRV records)
    alert_and_deliver()
    assert [m.subject for m in smtp_sink.received] == [
        "[PopCompliance] FAIL mail01: pop3.plaintext_login (no password accepted before TLS)"
    ]


def test_warn_opens_an_alert_only_when_the_policy_asks_for_it():
    change = Change(previous_status="pass", status="warn")
    assert not opens(change, Policy(alert_on_warn=False))
    assert opens(change, Policy(alert_on_warn=True))
    assert not opens(Change(previous_status="", status="warn"), Policy(alert_on_warn=True))


def test_passing_again_mails_one_recovery(server, fixed, smtp_sink):
    regress(server, fixed)
    alert_and_deliver()
    scan_and_record(server, fixed, SECURE)
    alert_and_deliver()
    alert_and_deliver()
    assert [m.subject.split()[1] for m in smtp_sink.received] == ["FAIL", "RECOVERED"]
    assert "refuses passwords before TLS" in smtp_sink.received[1].text
    assert "(under a minute)" in smtp_sink.received[1].text  # not "0 minutes"
    assert Alert.objects.get().resolved_at is not None


def test_owners_and_global_recipients_get_one_copy_each(server, fixed, smtp_sink, settings):
    Server.objects.filter(pk=server.pk).update(owner_emails=[OWNER, "Ops@example.test"])
    settings.POPC_ALERT_RECIPIENTS = ["ops@example.test", "security@example.test"]
    regress(server, fixed)
    alert_and_deliver()
    recipients = sorted(m.rcpt_tos[0].lower() for m in smtp_sink.received)
    assert recipients == ["ops@example.test", OWNER, "security@example.test"]


def test_reminders_follow_daily_until_acknowledged(server, fixed, smtp_sink, django_user_model):
    regress(server, fixed)
    opened = timezone.now()
    alert_and_deliver(opened)
    with time_machine.travel(opened + timedelta(hours=23, minutes=59), tick=False):
        alert_and_deliver()
        assert len(smtp_sink.received) == 1
    with time_machine.travel(opened + timedelta(hours=24, minutes=1), tick=False):
        alert_and_deliver()
        assert "Still FAIL" in smtp_sink.received[-1].subject
        operator = django_user_model.objects.create(username="operator")
        until = timezone.now() + timedelta(days=3)
        Alert.objects.get().acknowledge(operator, "change window on Friday", until)
    with time_machine.travel(opened + timedelta(days=3), tick=False):
        alert_and_deliver()
        assert len(smtp_sink.received) == 2
        assert Alert.objects.get().state() == "acknowledged"
    with time_machine.travel(opened + timedelta(days=4, minutes=2), tick=False):
        assert Alert.objects.in_state("open", timezone.now()).count() == 1
        alert_and_deliver()
        alert_and_deliver()
    assert [m.subject.split()[1] for m in smtp_sink.received] == ["FAIL", "Still", "Still"]


def test_a_flapping_server_gets_one_notice_and_no_repeat_alerts(
    server, reports, smtp_sink, settings
):
    settings.POPC_FLAP_CHANGES = 3
    start = timezone.now()
    sequence = ["secure", "plain", "plain", "secure", "plain", "plain", "secure"]
    for minutes, name in enumerate(sequence):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            record(server, reports[name])
            alert_and_deliver()
    subjects = [m.subject for m in smtp_sink.received]
    assert [s.split()[1] for s in subjects] == ["FAIL", "RECOVERED", "mail01"]
    assert "is flapping" in subjects[2]
    assert Alert.objects.filter(silent=True, resolved_at__isnull=False).count() == 1


def test_a_backlog_is_judged_by_the_current_state(server, reports, smtp_sink):
    record(server, reports["plain"])  # a new server that fails...
    record(server, reports["secure"])  # ...and was fixed before anyone processed the changes
    alert_and_deliver()
    assert smtp_sink.received == []
    assert not Alert.objects.exists()


def test_processing_twice_at_once_queues_each_alert_once(transactional_db, server, reports):
    now = timezone.now()
    record(server, reports["plain"])

    def process() -> None:
        try:
            process_pending_changes(now)
        finally:
            connection.close()

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Notification.objects.count() == 1
    assert not Change.objects.filter(alerted_at__isnull=True).exists()


@pytest.mark.slow
def test_a_worker_mails_one_alert_after_the_confirming_scan_and_one_recovery(
    celery_processes, server, fixed, smtp_sink
):
    """The real pipeline: scan_server in a worker hands its changes to alert processing,
    which hands the outbox to delivery, without waiting for beat."""
    celery_processes.worker(EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp_sink.port, SITE_URL=SITE)
    # (configuration, scans recorded by then (a regression is scanned twice), emails by then)
    for config, runs, mails in ((SECURE, 1, 0), (PLAINTEXT, 3, 1), (SECURE, 4, 2)):
        with fixed.serving(config):
            scan_server.delay(server.pk, purpose="manual")
            celery_processes.wait_until(
                lambda runs=runs, mails=mails: settled(server, runs, mails, smtp_sink),
                30,
                f"{runs} scans and {mails} email(s) delivered",
            )
    assert [m.subject.split()[1] for m in smtp_sink.received] == ["FAIL", "RECOVERED"]


def settled(server, runs, mails, smtp_sink) -> bool:
    """The worker recorded `runs` scans, alerted on every change and sent `mails` emails."""
    if ScanRun.objects.filter(server=server).count() < runs:
        return False
    unsent = Notification.objects.exclude(status="sent").exists()
    unalerted = Change.objects.filter(alerted_at__isnull=True).exists()
    return not unsent and not unalerted and len(smtp_sink.received) == mails
