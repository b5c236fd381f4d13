"""The daily digest end to end: real scans of the emulator, real alerts, and the digests
delivered to a real SMTP server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.digest import (
    SECTION_LIMIT,
    build_digests,
    due,
    queue_digests,
    send_digests,
)
from popcompliance.alerts.lifecycle import process_pending_changes
from popcompliance.alerts.models import Alert, Notification
from popcompliance.celery import app
from popcompliance.compliance.models import Certificate
from popcompliance.inventory.models import Server, ServerStatus
from tests.conftest import lab_server
from tests.people import make_user
from tests.test_alerts import OWNER, SECURE, SITE, make_server, regress, scan_and_record

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]

NEIGHBOUR = "neighbour@example.test"
OPS = "ops@example.test"


@pytest.fixture
def fleet(db, fixed, settings, lab_dns):
    """mail01 (OWNER's) and mail02 (NEIGHBOUR's) on the emulator, both scanned secure once;
    OPS gets every alert; digests are due at any hour."""
    mail01 = make_server(fixed, settings, lab_dns)
    mail02 = lab_server(
        "mail02", fixed.address, *fixed.ports, mail01.policy, owner_emails=[NEIGHBOUR]
    )
    settings.POPC_ALERT_RECIPIENTS = [OPS]
    settings.POPC_DIGEST_HOUR = 0
    settings.POPC_DIGEST_RECIPIENTS = []
    scan_and_record(mail01, fixed, SECURE)
    scan_and_record(mail02, fixed, SECURE)
    return mail01, mail02


def digest_and_deliver(now):
    """Digests as beat would queue them at `now`, delivered then."""
    with time_machine.travel(now, tick=False):
        queued = send_digests(now)
        deliver_pending()
    return queued


def test_due_from_the_hour_on_and_never_when_unset(settings):
    settings.POPC_DIGEST_HOUR = 7
    assert not due(datetime(2026, 11, 24, 6, 59, tzinfo=UTC))
    assert due(datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    assert due(datetime(2026, 11, 24, 23, 59, tzinfo=UTC))
    settings.POPC_DIGEST_HOUR = None
    assert not due(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


def test_owners_read_their_servers_and_global_recipients_the_fleet(fleet, fixed, smtp_sink):
    mail01, _ = fleet
    regress(mail01, fixed)
    process_pending_changes(timezone.now())
    deliver_pending()
    smtp_sink.received.clear()

    assert digest_and_deliver(timezone.now()) == 2
    # NEIGHBOUR's mail02 is fine: nothing to report, no digest.
    assert smtp_sink.to(NEIGHBOUR) == []
    [owners] = smtp_sink.to(OWNER)
    [ops] = smtp_sink.to(OPS)
    assert owners.subject.startswith("[PopCompliance] Daily digest ")
    assert owners.subject.endswith(": 1 open alert, 1 opened")
    assert "the servers you own (1 server)" in owners.text
    assert "the whole fleet (2 servers)" in ops.text
    for mail in (owners, ops):
        assert "FAIL mail01: pop3.plaintext_login (no password accepted before TLS)" in mail.text
        alert = Alert.objects.get()
        assert f"{SITE}/alerts/{alert.pk}/" in mail.text
        assert f'href="{SITE}/alerts/{alert.pk}/"' in mail.html
        assert "mail02" not in mail.text


def test_one_digest_a_day_per_recipient(fleet, fixed, smtp_sink):
    mail01, _ = fleet
    regress(mail01, fixed)
    process_pending_changes(timezone.now())
    now = timezone.now()
    assert send_digests(now) == 2
    assert send_digests(now + timedelta(minutes=15)) == 0
    # Another worker (its own cache) queues nothing either: the outbox knows.
    assert queue_digests([OWNER, OPS, NEIGHBOUR], now + timedelta(minutes=30)) == 0
    # The next day the alert is still open: a new digest.
    assert send_digests(now + timedelta(days=1)) == 2
    keys = sorted(Notification.objects.filter(kind="digest").values_list("key", flat=True))
    assert len(set(keys)) == 4


def test_acknowledged_alerts_come_after_the_others_and_say_who(fleet, fixed, smtp_sink):
    mail01, mail02 = fleet
    operator = make_user("operator")
    regress(mail01, fixed)
    regress(mail02, fixed)
    process_pending_changes(timezone.now())
    Alert.objects.get(server=mail01).acknowledge(operator, "client upgrade on Friday")
    digest_and_deliver(timezone.now())
    text = smtp_sink.to(OPS)[-1].text
    assert text.index("FAIL mail02") < text.index("FAIL mail01")
    assert f"acknowledged by {operator.username}" in text
    assert "client upgrade on Friday" in text


def test_a_recovery_is_reported_once_then_the_digests_stop(fleet, fixed, smtp_sink):
    mail01, _ = fleet
    regress(mail01, fixed)
    process_pending_changes(timezone.now())
    scan_and_record(mail01, fixed, SECURE)
    process_pending_changes(timezone.now())
    assert Alert.objects.get().resolved_at is not None
    deliver_pending()
    smtp_sink.received.clear()

    digest_and_deliver(timezone.now())
    [owners] = smtp_sink.to(OWNER)
    assert owners.subject.endswith(": 1 opened, 1 resolved")
    assert "Open alerts" not in owners.text
    assert "mail01: pop3.plaintext_login (no password accepted before TLS) passes again" in (
        owners.text
    )
    assert digest_and_deliver(timezone.now() + timedelta(days=2)) == 0


def test_expiring_certificates_and_unknown_servers_are_listed(fleet, settings, smtp_sink):
    _, mail02 = fleet
    certificate = Certificate.objects.get()
    Server.objects.filter(pk=mail02.pk).update(status=ServerStatus.UNKNOWN)
    ten_days_before = certificate.not_after - timedelta(days=10)
    assert digest_and_deliver(ten_days_before) == 3
    [ops] = smtp_sink.to(OPS)
    assert "1 certificate expiring, 1 server unknown" in ops.subject
    assert "Certificates expiring within 30 days (1)" in ops.text
    assert "mail.example.test: expires" in ops.text and "on mail01, mail02" in ops.text
    assert "Could not be checked (1)" in ops.text and "  - mail02" in ops.text
    [owners] = smtp_sink.to(OWNER)
    assert "Could not be checked" not in owners.text
    assert owners.text.splitlines()[3].endswith(", on mail01")
    # Forty days before expiry the certificate is no news.
    settings.POPC_DIGEST_RECIPIENTS = [OWNER]
    assert send_digests(certificate.not_after - timedelta(days=40)) == 0


def test_long_sections_stop_at_the_limit_with_a_link(fleet, smtp_sink):
    mail01, _ = fleet
    now = timezone.now()
    servers = [mail01] + [
        Server.objects.create(name=f"extra{n:02}", host="127.0.0.1", owner_emails=[OWNER])
        for n in range(5)
    ]
    check_ids = [f"check.{n}" for n in range(11)]
    Alert.objects.bulk_create(
        Alert(server=server, check_id=check_id, status="fail", opened_at=now - timedelta(days=3))
        for server in servers
        for check_id in check_ids
    )
    digest_and_deliver(now)
    [owners] = smtp_sink.to(OWNER)
    assert f"Open alerts ({len(servers) * len(check_ids)})" in owners.text
    assert owners.text.count("    http") == SECTION_LIMIT
    assert f"… and {len(servers) * len(check_ids) - SECTION_LIMIT} more: {SITE}/alerts/" in (
        owners.text
    )


def test_digests_cost_the_same_queries_for_one_recipient_or_many(fleet, fixed):
    mail01, _ = fleet
    regress(mail01, fixed)
    process_pending_changes(timezone.now())
    many = [f"owner{n}@example.test" for n in range(30)]
    for n, address in enumerate(many):
        Server.objects.create(name=f"more{n}", host="127.0.0.1", owner_emails=[address])

    def queries(recipients):
        with CaptureQueriesContext(connection) as captured:
            build_digests(recipients, timezone.now())
        return len(captured)

    assert queries([OWNER]) == queries([OWNER, OPS, *many])


def test_the_command_previews_without_queuing_and_queues_whatever_the_hour(
    fleet, fixed, settings, capsys
):
    mail01, _ = fleet
    regress(mail01, fixed)
    process_pending_changes(timezone.now())
    settings.POPC_DIGEST_HOUR = None
    call_command("digest", "--preview", "--to", OWNER, "--to", NEIGHBOUR)
    printed = capsys.readouterr().out
    assert f"To: {OWNER}\nSubject: [PopCompliance] Daily digest" in printed
    assert "FAIL mail01: pop3.plaintext_login" in printed
    assert f"To: {NEIGHBOUR}\n(nothing to report: no digest)" in printed
    assert not Notification.objects.filter(kind="digest").exists()

    call_command("digest")
    assert "2 digest(s) queued for 3 recipient(s)" in capsys.readouterr().out
    recipients = Notification.objects.filter(kind="digest").values_list("to", flat=True)
    assert sorted(recipients) == [OPS, OWNER]


@pytest.mark.parametrize(
    ("setting", "value", "complaint"),
    [
        ("POPC_DIGEST_HOUR", 24, "POPC_DIGEST_HOUR=24: give an hour of the day from 0 to 23"),
        ("POPC_DIGEST_RECIPIENTS", ["ops"], "POPC_DIGEST_RECIPIENTS: 'ops' is no email address"),
    ],
)
def test_bad_digest_settings_fail_the_system_check(settings, setting, value, complaint):
    setattr(settings, setting, value)
    with pytest.raises(SystemCheckError, match=complaint):
        call_command("check")


def test_beat_asks_for_digests_every_quarter_hour():
    [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == "alerts.send_digests"]
    assert entry["schedule"] == 900.0
    assert "alerts.send_digests" in app.tasks
