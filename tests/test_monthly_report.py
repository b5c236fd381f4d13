"""The monthly report to auditors through the outbox, against a real SMTP server on loopback:
made once on the first of the month, kept while SMTP is down, sent once with its PDF."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.models import Notification, NotificationKind
from popcompliance.reports.models import RETENTION_DAYS, ReportSchedule, StoredReport
from popcompliance.reports.monthly import MonthlyReportFailed, last_month_end, send_monthly
from tests.report_fleet import make_fleet

pytest_plugins = ["tests.smtp"]
pytestmark = pytest.mark.django_db

FIRST = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
AUDITORS = ["audit@example.test", "cfo@example.test"]


def set_recipients(addresses: list[str]) -> None:
    schedule = ReportSchedule.current()
    schedule.recipients = addresses
    schedule.save()


def test_the_month_before_is_reported_from_six_on_the_first():
    assert last_month_end(FIRST - timedelta(hours=2)) is None
    assert last_month_end(FIRST) == date(2026, 11, 30)
    assert last_month_end(FIRST + timedelta(days=9)) == date(2026, 11, 30)


def test_no_recipient_no_report():
    with time_machine.travel(FIRST, tick=False):
        assert send_monthly(FIRST) == 0
    assert not StoredReport.objects.exists()


def test_smtp_down_then_up_sends_the_report_once_to_each_auditor_with_its_pdf(smtp_sink):
    make_fleet(FIRST - timedelta(days=1))
    set_recipients(AUDITORS)
    smtp_sink.stop()
    with time_machine.travel(FIRST, tick=False):
        assert send_monthly(FIRST) == 2
        assert deliver_pending()["sent"] == 0
        assert send_monthly(FIRST) == 0
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    smtp_sink.start()
    later = FIRST + timedelta(minutes=20)
    with time_machine.travel(later, tick=False):
        assert deliver_pending()["sent"] == 2
        assert send_monthly(later) == 0
        assert deliver_pending()["sent"] == 0
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == AUDITORS
    assert set(smtp_sink.message_ids().values()) == {1}
    message = smtp_sink.received[0].message
    assert "as of 2026-11-30" in str(message["Subject"])
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "popcompliance-report-2026-11-30-all.pdf"
    assert attachment.get_content().startswith(b"%PDF")
    assert StoredReport.objects.get().day == date(2026, 11, 30)


def test_an_auditor_added_later_in_the_month_gets_the_same_report():
    make_fleet(FIRST - timedelta(days=1))
    set_recipients(AUDITORS[:1])
    with time_machine.travel(FIRST, tick=False):
        send_monthly(FIRST)
    set_recipients(AUDITORS)
    later = FIRST + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        assert send_monthly(later) == 1
    stored = StoredReport.objects.get()
    rows = Notification.objects.filter(kind=NotificationKind.REPORT, report=stored)
    assert sorted(rows.values_list("to", flat=True)) == AUDITORS


def test_stored_reports_go_after_their_retention_with_their_emails():
    make_fleet(FIRST - timedelta(days=1))
    set_recipients(AUDITORS)
    with time_machine.travel(FIRST, tick=False):
        send_monthly(FIRST)
    assert StoredReport.prune(FIRST + timedelta(days=RETENTION_DAYS - 1)) == 0
    assert StoredReport.prune(FIRST + timedelta(days=RETENTION_DAYS + 1)) == 1
    assert not Notification.objects.filter(kind=NotificationKind.REPORT).exists()


def test_a_schedule_naming_a_tag_that_is_gone_fails_loudly_and_sends_nothing():
    """The task fails with the reason (a failing task shows on the overview's worker line and
    in /metrics), rather than sending nothing in silence."""
    make_fleet(FIRST - timedelta(days=1))
    set_recipients(AUDITORS)
    schedule = ReportSchedule.current()
    schedule.scope = "tag:decommissioned"
    schedule.save()
    with (
        time_machine.travel(FIRST, tick=False),
        pytest.raises(MonthlyReportFailed, match="decommissioned"),
    ):
        send_monthly(FIRST)
    assert not Notification.objects.filter(kind=NotificationKind.REPORT).exists()
