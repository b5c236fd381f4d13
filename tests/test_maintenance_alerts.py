"""Maintenance windows and alert emails, end to end: real scans of the emulator (secure, then
taking passwords in the clear), recorded at chosen moments, alert processing, the release of
held alerts, and delivery to a real SMTP server on loopback.

During a window nothing is mailed for what changes; at its end a problem still there is
mailed once, one that went away never."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.holding import release_held
from popcompliance.alerts.lifecycle import process_pending_changes, send_reminders
from popcompliance.alerts.models import Alert, Notification
from popcompliance.celery import app
from popcompliance.compliance.models import Change, CheckState
from popcompliance.compliance.recording import record_report
from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.models import MaintenanceWindow
from tests.test_alerts import OWNER, PLAINTEXT, SECURE, make_server, scan

pytest_plugins = ["tests.smtp"]

MINUTE = timedelta(minutes=1)
# Every moment below is counted from START, a minute boundary tomorrow.
START = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
END = START + timedelta(hours=2)


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    return make_server(fixed, settings, lab_dns)


@pytest.fixture
def reports(server, fixed):
    """One real report of each configuration, recorded again at each moment a test picks."""
    return {"secure": scan(server, fixed, SECURE), "plain": scan(server, fixed, PLAINTEXT)}


@pytest.fixture
def window(server):
    """A one-off window from START to END on the server."""
    return MaintenanceWindow.objects.create(
        name="certificate swap", server=server, starts_at=START, ends_at=END
    )


def record(server: Server, report, moment: datetime) -> None:
    with time_machine.travel(moment, tick=False):
        record_report(server.pk, report, purpose="scheduled")


def beat(moment: datetime) -> None:
    """What beat runs every minute, at `moment`: alerts on changes, reminders, the release of
    held alerts, and delivery."""
    with time_machine.travel(moment, tick=False):
        now = timezone.now()
        process_pending_changes(now)
        send_reminders(now)
        release_held(now)
        deliver_pending()


def regress(server: Server, reports, confirmed_at: datetime) -> None:
    """Secure long before, then plaintext, confirmed by a second scan at `confirmed_at`."""
    record(server, reports["secure"], confirmed_at - timedelta(hours=3))
    beat(confirmed_at - timedelta(hours=3))
    record(server, reports["plain"], confirmed_at - MINUTE)
    record(server, reports["plain"], confirmed_at)
    beat(confirmed_at)


def subjects(smtp_sink) -> list[str]:
    return [mail.subject for mail in smtp_sink.received]


@pytest.mark.parametrize(
    ("confirmed_at", "mailed_at_once"),
    [
        (START - MINUTE, True),
        (START, False),
        (START + MINUTE, False),
        (END - MINUTE, False),
        (END, True),
        (END + MINUTE, True),
    ],
)
def test_a_regression_is_held_from_the_windows_first_minute_to_its_last(
    server, reports, window, smtp_sink, confirmed_at, mailed_at_once
):
    regress(server, reports, confirmed_at)
    assert len(smtp_sink.received) == (1 if mailed_at_once else 0)
    change = Change.objects.get(check_id="pop3.plaintext_login", status="fail")
    assert change.during_maintenance is not mailed_at_once


def test_a_regression_during_the_window_is_shown_as_during_maintenance(
    server, reports, window, smtp_sink, viewer
):
    regress(server, reports, START + timedelta(minutes=30))
    assert smtp_sink.received == []
    alert = Alert.objects.get(check_id="pop3.plaintext_login")
    assert alert.maintenance == "held" and alert.resolved_at is None
    during = Change.objects.filter(during_maintenance=True)
    assert during.filter(check_id="pop3.plaintext_login").exists()
    assert Change.objects.filter(during_maintenance=False).exists()  # the first scan's
    history = viewer.get(server.get_absolute_url()).content.decode()
    assert history.count("during maintenance") == during.count()
    alerts_page = viewer.get(reverse("alerts:list")).content.decode()
    assert "During maintenance: email held until the window ends" in alerts_page
    [listed] = viewer.get("/api/v1/alerts/").json()["results"]
    assert listed["maintenance"] == "held"
    recent = viewer.get(f"/api/v1/servers/{server.pk}/").json()["history"]
    assert {c["check_id"] for c in recent if c["during_maintenance"]} >= {"pop3.plaintext_login"}


def test_at_the_windows_end_a_problem_still_there_is_mailed_exactly_once(
    server, reports, window, smtp_sink, settings
):
    regress(server, reports, START + timedelta(minutes=30))
    beat(END - MINUTE)
    assert smtp_sink.received == []
    beat(END)
    [mail] = smtp_sink.received
    assert mail.rcpt_tos == (OWNER,)
    assert "FAIL mail01: pop3.plaintext_login" in mail.subject
    assert "regressed during a maintenance window that is now over" in mail.text
    assert "regressed during a maintenance window that is now over" in mail.html
    assert "USER" in mail.text  # the evidence, as in any alert
    for later in (END + MINUTE, END + timedelta(hours=1)):
        record(server, reports["plain"], later)
        beat(later)
    assert len(smtp_sink.received) == 1
    alert = Alert.objects.get(check_id="pop3.plaintext_login")
    assert alert.maintenance == "released"
    # Reminders count from the email, not from the opening during the window.
    assert alert.next_reminder_at == END + timedelta(hours=settings.POPC_REMINDER_HOURS)


def test_a_problem_fixed_before_the_windows_end_is_never_mailed(server, reports, window, smtp_sink):
    regress(server, reports, START + timedelta(minutes=30))
    record(server, reports["secure"], START + timedelta(minutes=90))
    for moment in (START + timedelta(minutes=90), END - MINUTE, END, END + MINUTE):
        beat(moment)
    assert smtp_sink.received == []  # neither the alert nor its recovery
    alert = Alert.objects.get(check_id="pop3.plaintext_login")
    assert alert.resolved_at is not None and alert.maintenance == "dropped"


def test_an_alert_mailed_before_the_window_recovers_during_it_without_a_recovery_email(
    server, reports, window, smtp_sink, viewer
):
    regress(server, reports, START - timedelta(hours=1))
    record(server, reports["secure"], START + timedelta(minutes=10))
    for moment in (START + timedelta(minutes=10), END, END + MINUTE):
        beat(moment)
    assert [s.split()[1] for s in subjects(smtp_sink)] == ["FAIL"]
    alert = Alert.objects.get(check_id="pop3.plaintext_login")
    assert alert.resolved_at is not None
    page = viewer.get(reverse("alerts:list") + "?state=resolved").content.decode()
    assert "Resolved during maintenance: no recovery email" in page


def test_reminders_due_during_a_window_wait_for_its_end(server, reports, smtp_sink, settings):
    opened = START - timedelta(hours=23)
    regress(server, reports, opened)
    MaintenanceWindow.objects.create(
        name="upgrade", server=server, starts_at=START, ends_at=START + timedelta(hours=3)
    )
    beat(opened + timedelta(hours=24, minutes=1))  # the reminder is due, the window is on
    assert [s.split()[1] for s in subjects(smtp_sink)] == ["FAIL"]
    beat(START + timedelta(hours=3))
    assert [s.split()[1] for s in subjects(smtp_sink)] == ["FAIL", "Still"]


def test_deleting_the_window_releases_what_it_held(server, reports, window, smtp_sink):
    regress(server, reports, START + timedelta(minutes=30))
    window.delete()
    beat(START + timedelta(minutes=31))
    assert len(smtp_sink.received) == 1


def test_an_alert_acknowledged_during_the_window_is_not_mailed_at_its_end(
    server, reports, window, smtp_sink, django_user_model
):
    regress(server, reports, START + timedelta(minutes=30))
    operator = django_user_model.objects.create(username="operator")
    Alert.objects.get().acknowledge(operator, "part of the swap", now=START + timedelta(hours=1))
    beat(END)
    assert smtp_sink.received == []
    assert Alert.objects.get().maintenance == "released"


def test_a_server_flapping_during_the_window_gets_neither_alerts_nor_a_flapping_notice(
    server, reports, window, smtp_sink, settings
):
    settings.POPC_FLAP_CHANGES = 3
    record(server, reports["secure"], START - timedelta(hours=1))
    beat(START - timedelta(hours=1))
    sequence = ["plain", "plain", "secure", "plain", "plain", "secure", "plain", "plain"]
    for minutes, name in enumerate(sequence, start=1):
        record(server, reports[name], START + timedelta(minutes=minutes))
        beat(START + timedelta(minutes=minutes))
    assert smtp_sink.received == []
    beat(END)
    # The problem is still there when the window ends: one email, and no flapping notice,
    # since what the window planned is no flapping.
    assert [s.split()[1] for s in subjects(smtp_sink)] == ["FAIL"]


def test_a_recurring_window_of_a_tag_holds_during_each_occurrence_only(server, reports, smtp_sink):
    server.tags.add(Tag.objects.create(name="exchange"))
    # Every day from START's hour, for an hour.
    MaintenanceWindow.objects.create(
        name="nightly backup",
        tag=Tag.objects.get(name="exchange"),
        recurrence="cron",
        rule=f"{START.minute} {START.hour} * * *",
        starts_at=START - timedelta(days=3),
        duration_minutes=60,
    )
    next_day = START + timedelta(days=1)
    regress(server, reports, next_day + timedelta(minutes=20))
    assert smtp_sink.received == []
    beat(next_day + timedelta(minutes=59))
    assert smtp_sink.received == []
    beat(next_day + timedelta(minutes=60))
    assert len(smtp_sink.received) == 1
    # Between occurrences, a new problem is mailed at once.
    record(server, reports["secure"], next_day + timedelta(hours=5))
    beat(next_day + timedelta(hours=5))
    assert [s.split()[1] for s in subjects(smtp_sink)] == ["FAIL", "RECOVERED"]


def test_beat_releases_held_alerts_every_minute():
    [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == "alerts.release_held"]
    assert entry["schedule"] == 60.0


def test_an_alert_that_gets_worse_during_the_window_is_mailed_once_at_its_end(db):
    """A warn alert mailed before the window becomes a fail during it: no escalation email
    then, one when the window ends."""
    server = Server.objects.create(name="mail02", host="192.0.2.2", owner_emails=[OWNER])
    CheckState.objects.create(
        server=server, check_id="pop3.stls", status="fail", summary="STLS refused", since=START
    )
    alert = Alert.objects.create(
        server=server, check_id="pop3.stls", status="warn", summary="s", opened_at=START
    )
    MaintenanceWindow.objects.create(name="tls", server=server, starts_at=START, ends_at=END)
    Change.objects.create(
        server=server,
        check_id="pop3.stls",
        previous_status="warn",
        status="fail",
        summary="STLS refused",
        created_at=START + MINUTE,
        during_maintenance=True,
    )
    process_pending_changes(START + MINUTE)
    alert.refresh_from_db()
    assert (alert.status, alert.maintenance) == ("fail", "held")
    assert not Notification.objects.exists()
    assert release_held(END - MINUTE) == 0
    assert release_held(END) == 1
    assert release_held(END + MINUTE) == 0
    [mail] = Notification.objects.all()
    assert mail.kind == "alert" and "now FAIL" not in mail.subject and "FAIL" in mail.subject
