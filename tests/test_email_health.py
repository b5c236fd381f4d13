"""The overview's email banner against a real SMTP server on loopback: it names the SMTP
server's trouble while email waits or fails, and goes once the email goes out."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.models import GIVE_UP_AFTER, Notification
from popcompliance.alerts.outbox import LONG_PENDING, email_health, smtp_problem
from tests.people import client_as
from tests.test_delivery import outbox

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer():
    return client_as("viewer")


def banner(viewer, moment=None) -> str:
    """The overview's email banner as text ("" when there is none), uncached."""
    cache.clear()
    with time_machine.travel(moment or timezone.now(), tick=False):
        page = viewer.get(reverse("dashboard:overview")).content.decode()
    found = re.search(
        r'<div class="banner[^"]*" role="alert" id="email-health">(.*?)\n</div>', page, re.S
    )
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split()) if found else ""


def test_smtp_down_names_the_server_and_the_waiting_emails_until_they_leave(viewer, smtp_sink):
    start = timezone.now().replace(second=0, microsecond=0)
    with time_machine.travel(start, tick=False):
        outbox("a@example.test", "b@example.test", "c@example.test")
        smtp_sink.stop()
        deliver_pending()
    text = banner(viewer, start + timedelta(minutes=1))
    assert f"Email is not leaving: SMTP at 127.0.0.1:{smtp_sink.port} refuses connections." in text
    assert f"3 emails waiting since {start:%Y-%m-%d %H:%M} UTC (1 minute ago)" in text
    assert "ConnectionRefusedError" in text
    smtp_sink.start()
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        assert deliver_pending()["sent"] == 3
    assert banner(viewer, start + timedelta(minutes=2)) == ""


def test_email_on_its_way_is_no_trouble_until_it_waited_too_long(viewer):
    start = timezone.now()
    outbox("a@example.test", now=start)
    assert banner(viewer, start + LONG_PENDING - timedelta(seconds=1)) == ""
    text = banner(viewer, start + LONG_PENDING)
    assert "Email is not leaving. 1 email waiting since" in text
    assert "without a delivery attempt: the workers deliver email every minute" in text


def test_an_email_refused_for_good_is_shown_for_a_day(viewer, smtp_sink):
    smtp_sink.refuse("typo@example.test", "550 5.1.1 No such user")
    outbox("typo@example.test", "ok@example.test")
    deliver_pending()
    assert Notification.objects.get(to="typo@example.test").status == "failed"
    text = banner(viewer)
    assert "Some email could not be delivered: SMTP at" in text
    assert "answers: recipient refused: typo@example.test: 550 5.1.1 No such user" in text
    assert "1 email failed for good in the last day." in text
    assert banner(viewer, timezone.now() + timedelta(days=1, minutes=1)) == ""


def test_an_email_that_gives_up_after_days_of_outage_is_shown_as_failed(viewer, smtp_sink):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        outbox("a@example.test")
    smtp_sink.stop()
    try:
        with time_machine.travel(start + GIVE_UP_AFTER + timedelta(minutes=1), tick=False):
            deliver_pending()
    finally:
        smtp_sink.start()
    assert Notification.objects.get().status == "failed"
    text = banner(viewer, start + GIVE_UP_AFTER + timedelta(minutes=2))
    assert "1 email failed for good in the last day." in text


def test_the_banner_costs_one_query_when_all_is_well_and_two_when_not(
    smtp_sink, django_assert_num_queries
):
    outbox("a@example.test")
    deliver_pending()
    with django_assert_num_queries(1):
        assert not email_health(timezone.now()).troubled
    smtp_sink.stop()
    outbox("b@example.test")
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        deliver_pending()
    with django_assert_num_queries(2):
        assert email_health(timezone.now() + timedelta(minutes=1)).waiting == 1


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("ConnectionRefusedError: [Errno 111] Connection refused", "refuses connections"),
        ("TimeoutError: timed out", "does not answer (timed out)"),
        ("SMTPAuthenticationError: 535 5.7.8 bad credentials", "rejects our login"),
        ("SMTPDataError: 554 no", "answers: SMTPDataError: 554 no"),
    ],
)
def test_the_smtp_error_is_said_in_words(error, words):
    assert smtp_problem(error).startswith(words)
