"""The outbox against a real SMTP server on loopback: outages, 4xx and 5xx replies, retries
with backoff, and concurrent delivery runs that must never send one email twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.lifecycle import prune
from popcompliance.alerts.messages import queue
from popcompliance.alerts.models import AttemptOutcome, Notification, NotificationStatus
from popcompliance.alerts.tasks import deliver

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]


def outbox(*recipients: str, now=None) -> None:
    """Queue one flapping notice per recipient (any kind would do: delivery ignores it)."""
    context = {"server": {"name": "mail01", "host": "192.0.2.1"}, "changes": [], "scans": 0}
    for index, to in enumerate(recipients):
        queue("flapping", context, [to], f"test:{index}", now or timezone.now())


def status_of(to: str) -> str:
    return Notification.objects.get(to=to).status


@pytest.mark.django_db
def test_an_email_is_sent_once_however_often_delivery_runs(smtp_sink):
    outbox("a@example.test", "b@example.test")
    deliver()
    deliver()
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["a@example.test", "b@example.test"]
    assert set(smtp_sink.message_ids().values()) == {1}
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_an_hour_without_smtp_loses_nothing_and_sends_each_email_once(smtp_sink):
    outbox("a@example.test", "b@example.test", "c@example.test")
    start = timezone.now()
    smtp_sink.stop()
    for minutes in range(0, 61, 5):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert deliver_pending()["sent"] == 0
    assert all(n.attempt_count >= 5 for n in Notification.objects.all())
    assert "ConnectionRefusedError" in Notification.objects.first().last_error
    smtp_sink.start()
    with time_machine.travel(start + timedelta(minutes=61 + 15), tick=False):
        assert deliver_pending()["sent"] == 3
        assert deliver_pending()["sent"] == 0
    assert sorted(smtp_sink.message_ids().values()) == [1, 1, 1]


@pytest.mark.django_db
def test_retries_back_off_exponentially():
    outbox("a@example.test")
    notification = Notification.objects.get()
    waits = []
    for _ in range(6):
        waits.append(notification.backoff())
        notification.record_failure("451 try later", False, timezone.now(), 0)
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 15, 15)]


@pytest.mark.django_db
def test_a_4xx_reply_is_retried_and_a_5xx_reply_fails_for_good(smtp_sink):
    smtp_sink.refuse("busy@example.test", "450 4.2.1 Mailbox busy")
    smtp_sink.refuse("nobody@example.test", "550 5.1.1 No such user")
    outbox("busy@example.test", "nobody@example.test", "ok@example.test")
    assert deliver_pending() == {"retry": 1, "failed": 1, "sent": 1}
    assert status_of("busy@example.test") == NotificationStatus.PENDING
    failed = Notification.objects.get(to="nobody@example.test")
    assert failed.status == NotificationStatus.FAILED
    assert "550 5.1.1 No such user" in failed.last_error
    assert failed.attempts.get().outcome == AttemptOutcome.PERMANENT


@pytest.mark.django_db
def test_transient_errors_give_up_after_three_days(smtp_sink):
    outbox("a@example.test", now=timezone.now() - timedelta(days=3))
    smtp_sink.stop()
    deliver_pending()
    assert status_of("a@example.test") == NotificationStatus.FAILED


@pytest.mark.django_db
def test_a_failed_email_can_be_retried_by_an_operator(smtp_sink):
    smtp_sink.refuse("typo@example.test", "550 5.1.1 No such user")
    outbox("typo@example.test")
    deliver_pending()
    smtp_sink.refusals.clear()
    Notification.objects.get().retry_now(timezone.now())
    deliver_pending()
    assert status_of("typo@example.test") == NotificationStatus.SENT


def test_two_delivery_runs_at_once_send_each_email_once(transactional_db, smtp_sink):
    outbox(*(f"user{n}@example.test" for n in range(30)))
    smtp_sink.delay = 0.02  # each message takes a while, so the two runs overlap
    sent = []

    def run() -> None:
        try:
            sent.append(deliver_pending()["sent"])
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(smtp_sink.received) == 30
    assert sum(sent) == 30 and min(sent) > 0  # both runs took a share
    assert set(smtp_sink.message_ids().values()) == {1}
    assert {n.attempts.count() for n in Notification.objects.all()} == {1}


@pytest.mark.django_db
def test_prune_keeps_pending_emails_and_drops_old_delivered_ones(smtp_sink):
    outbox("old@example.test", "new@example.test", now=timezone.now() - timedelta(days=91))
    deliver_pending()
    outbox("waiting@example.test")
    Notification.objects.filter(to="new@example.test").update(created_at=timezone.now())
    assert prune(timezone.now()) == {"notifications": 1, "alerts": 0}
    assert sorted(Notification.objects.values_list("to", flat=True)) == [
        "new@example.test",
        "waiting@example.test",
    ]
