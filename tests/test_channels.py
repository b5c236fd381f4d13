"""Alert channels against a real HTTP server on loopback (tests/webhook_sink.py): the outbox
delivers each message once, keeps it while the webhook is down, retries 5xx, 408, 429 and
timeouts with backoff, gives up at once on another 4xx with the reason shown, and never sends
one message from two delivery runs. Then the end-to-end path: a regression of an emulated
server reaches a JSON webhook as one message with the server, the check and the fix."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from pop3lab.config import EndpointConfig
from popcompliance.alerts.channels import MESSAGE_ID_HEADER
from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.expiry import check_expiry
from popcompliance.alerts.lifecycle import process_pending_changes, send_reminders
from popcompliance.alerts.messages import channels_for, queue
from popcompliance.alerts.models import (
    AttemptOutcome,
    Channel,
    ChannelScope,
    Notification,
    NotificationStatus,
)
from popcompliance.alerts.outbox import email_health
from popcompliance.alerts.tasks import deliver
from popcompliance.compliance.models import Certificate
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Server, Tag
from scanner import check_title
from tests.conftest import lab_server

pytest_plugins = ["tests.webhook_sink"]

SECRET = "s3cr3t-webhook-token"


def make_channel(
    url: str, name: str = "ops", scope: str = ChannelScope.GLOBAL, **target
) -> Channel:
    channel = Channel(name=name)
    channel.set_scope(scope, **target)
    channel.set_url(url)
    channel.save()
    return channel


def json_channel(sink, name: str = "ops") -> Channel:
    return make_channel(f"json://{sink.address}/hooks/{SECRET}", name)


def outbox(channel: Channel, count: int = 1, now=None) -> list[Notification]:
    """Queue `count` flapping notices to the channel alone (any kind would do)."""
    context = {"server": {"name": "mail01", "host": "192.0.2.1"}, "changes": [], "scans": 4}
    for index in range(count):
        queue("flapping", context, [], f"test:{index}", now or timezone.now(), [channel])
    return list(Notification.objects.filter(channel=channel).order_by("id"))


def reloaded(notification: Notification) -> Notification:
    return Notification.objects.get(pk=notification.pk)


def outcomes(notification: Notification) -> list[str]:
    return list(notification.attempts.values_list("outcome", flat=True))


def later(minutes: float):
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes), tick=False)


@pytest.mark.django_db
def test_a_message_reaches_the_webhook_once_however_often_delivery_runs(webhook_sink):
    [row] = outbox(json_channel(webhook_sink))
    deliver()
    deliver()
    [request] = webhook_sink.received
    assert request.path == f"/hooks/{SECRET}"
    payload = request.json()
    assert payload["title"] == "[PopCompliance] mail01 is flapping: 0 status changes in 24 hours"
    assert "**mail01** (192.0.2.1) is flapping" in payload["message"]
    assert payload["type"] == "warning"
    assert request.header(MESSAGE_ID_HEADER) == row.message_id
    assert reloaded(row).status == NotificationStatus.SENT
    assert outcomes(row) == [AttemptOutcome.SENT]


@pytest.mark.django_db
def test_an_hour_with_the_webhook_down_loses_nothing_and_sends_each_message_once(webhook_sink):
    channel = json_channel(webhook_sink)
    rows = outbox(channel, 3)
    webhook_sink.stop()
    start = timezone.now()
    for minutes in range(0, 61, 5):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert deliver_pending()["sent"] == 0
    for row in map(reloaded, rows):
        assert row.status == NotificationStatus.PENDING and row.attempt_count >= 5
        assert row.last_error == "cannot connect: Connection refused"
    webhook_sink.start()
    with time_machine.travel(start + timedelta(minutes=61 + 15), tick=False):
        assert deliver_pending()["sent"] == 3
        assert deliver_pending()["sent"] == 0
    ids = [request.header(MESSAGE_ID_HEADER) for request in webhook_sink.received]
    assert sorted(ids) == sorted(row.message_id for row in rows)
    # A webhook that was down is no SMTP trouble: the overview's email banner stays down.
    assert not email_health(timezone.now()).troubled


@pytest.mark.django_db
def test_an_unreachable_webhook_costs_one_connection_per_batch(settings):
    """A service that takes the connection and never answers: the first message waits out
    the timeout, the other two take its error without a connection of their own."""
    settings.POPC_CHANNEL_TIMEOUT = 1
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        rows = outbox(make_channel(f"json://{address}/hooks/{SECRET}"), 3)
        assert deliver_pending() == {"retry": 3}
        silent.settimeout(0.2)
        assert accepted(silent) == 1
    finally:
        silent.close()
    for row in map(reloaded, rows):
        assert row.last_error.startswith("no answer within 1 s")


def accepted(server: socket.socket) -> int:
    """How many connections wait in the server's backlog (each accepted and closed)."""
    count = 0
    while True:
        try:
            connection_, _ = server.accept()
        except TimeoutError:
            return count
        connection_.close()
        count += 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "words"),
    [
        (500, "HTTP 500 Internal Server Error: database is down"),
        (503, "HTTP 503 Service Unavailable: database is down"),
        (408, "HTTP 408 Request Timeout: database is down"),
        (429, "HTTP 429 Too Many Requests: database is down"),
    ],
)
def test_a_5xx_408_or_429_is_retried_after_the_backoff(webhook_sink, status, words):
    webhook_sink.answer(status, "database is down")
    [row] = outbox(json_channel(webhook_sink))
    assert deliver_pending() == {"retry": 1}
    failed = reloaded(row)
    assert failed.status == NotificationStatus.PENDING and failed.last_error == words
    assert deliver_pending() == {}  # not due before its backoff (a minute)
    with later(2):
        assert deliver_pending() == {"sent": 1}
    assert outcomes(row) == [AttemptOutcome.TRANSIENT, AttemptOutcome.SENT]
    assert len(webhook_sink.received) == 2
    assert {r.header(MESSAGE_ID_HEADER) for r in webhook_sink.received} == {row.message_id}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "reason"), [(400, "Bad Request"), (403, "Forbidden"), (404, "Not Found")]
)
def test_another_4xx_fails_for_good_with_the_reason_recorded(webhook_sink, status, reason):
    channel = json_channel(webhook_sink)
    webhook_sink.answer(status, f"Invalid payload posted to /hooks/{SECRET}")
    [row] = outbox(channel)
    assert deliver_pending() == {"failed": 1}
    failed = reloaded(row)
    expected = f"refused for good: HTTP {status} {reason}: Invalid payload posted to /…/…"
    assert failed.status == NotificationStatus.FAILED and failed.last_error == expected
    assert outcomes(row) == [AttemptOutcome.PERMANENT]
    channel.refresh_from_db()
    assert channel.broken_reason == expected and channel.broken_at is not None
    with later(60 * 24 * 4):
        assert deliver_pending() == {}
    assert len(webhook_sink.received) == 1


@pytest.mark.django_db
def test_the_next_delivery_clears_a_channels_refusal(webhook_sink):
    channel = json_channel(webhook_sink)
    webhook_sink.answer(410, "gone")
    outbox(channel)
    deliver_pending()
    channel.refresh_from_db()
    assert channel.broken_reason == "refused for good: HTTP 410 Gone: gone"
    outbox(channel, 2)  # keys test:0 (already queued) and test:1: one new message
    assert deliver_pending() == {"sent": 1}
    channel.refresh_from_db()
    assert channel.broken_reason == "" and channel.broken_at is None


@pytest.mark.django_db
def test_a_slow_answer_times_out_is_retried_and_is_never_resent_once_delivered(
    webhook_sink, settings
):
    """The first request arrives but its answer comes after the timeout: we cannot know it
    was taken, so it is retried. The retry carries the same message id (a receiver folds the
    two), and once an answer comes, nothing is sent again."""
    settings.POPC_CHANNEL_TIMEOUT = 1
    webhook_sink.answer(200, "ok", delay=3)
    [row] = outbox(json_channel(webhook_sink))
    assert deliver_pending() == {"retry": 1}
    assert reloaded(row).last_error.startswith("no answer within 1 s")
    with later(2):
        assert deliver_pending() == {"sent": 1}
    with later(60):
        assert deliver_pending() == {}
    assert outcomes(row) == [AttemptOutcome.TRANSIENT, AttemptOutcome.SENT]
    assert [r.header(MESSAGE_ID_HEADER) for r in webhook_sink.received] == [row.message_id] * 2


@pytest.mark.django_db(transaction=True)
def test_two_delivery_runs_at_once_never_send_one_message_twice(webhook_sink):
    rows = outbox(json_channel(webhook_sink), 8)
    for _ in rows:
        webhook_sink.answer(200, "ok", delay=0.1)
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
    assert sum(sent) == 8
    ids = [r.header(MESSAGE_ID_HEADER) for r in webhook_sink.received]
    assert sorted(ids) == sorted(row.message_id for row in rows)


@pytest.mark.django_db
def test_a_disabled_channel_gets_nothing_not_even_what_was_queued(webhook_sink):
    channel = json_channel(webhook_sink)
    [row] = outbox(channel)
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    assert deliver_pending() == {"failed": 1}
    assert reloaded(row).last_error == "the channel was disabled"
    assert webhook_sink.received == []


@pytest.mark.django_db
def test_a_url_no_key_decrypts_waits_for_the_admin(webhook_sink, settings):
    channel = json_channel(webhook_sink)
    [row] = outbox(channel)
    settings.SECRET_KEY = "another secret key"  # the key derived from it changes
    settings.POPC_CREDENTIALS_KEY = []
    assert deliver_pending() == {"retry": 1}
    assert "cannot be decrypted" in reloaded(row).last_error


@pytest.mark.django_db
def test_mattermost_gets_the_message_on_its_incoming_webhook(webhook_sink):
    channel = make_channel(f"mmost://{webhook_sink.address}/{SECRET}", "mattermost")
    outbox(channel)
    assert deliver_pending() == {"sent": 1}
    [request] = webhook_sink.received
    assert request.path == f"/hooks/{SECRET}"
    assert "mail01" in request.json()["text"]


@pytest.mark.django_db
def test_teams_workflows_gets_an_adaptive_card_over_verified_https(tls_webhook_sink):
    channel = make_channel(f"workflows://{tls_webhook_sink.address}/flow42/{SECRET}", "teams")
    outbox(channel)
    assert deliver_pending() == {"sent": 1}
    [request] = tls_webhook_sink.received
    assert request.path.startswith("/workflows/flow42/triggers/manual/paths/invoke?")
    assert f"sig={SECRET}" in request.path
    card = request.json()["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "mail01" in str(card["content"]["body"])


# Who hears about which server.


@pytest.mark.django_db
def test_channels_serve_every_server_their_tag_or_their_owner(webhook_sink):
    url = f"jsons://{webhook_sink.address}/x"
    paris, lyon = Tag.objects.create(name="paris"), Tag.objects.create(name="lyon")
    everyone = make_channel(url, "everyone")
    tagged = make_channel(url, "paris-team", ChannelScope.TAG, tag=paris)
    make_channel(url, "lyon-team", ChannelScope.TAG, tag=lyon)
    owned = make_channel(url, "alice", ChannelScope.OWNER, owner_email="Alice@Example.test")
    off = make_channel(url, "off")
    Channel.objects.filter(pk=off.pk).update(enabled=False)
    server = Server.objects.create(
        name="mail01", host="192.0.2.1", owner_emails=["alice@example.test"]
    )
    server.tags.add(paris)
    other = Server.objects.create(name="mail02", host="192.0.2.2")
    assert channels_for([server]) == [owned, everyone, tagged]
    assert channels_for([other]) == [everyone]


# End to end: a regression of an emulated server reaches a JSON webhook.

SECURE = EndpointConfig()
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin")


def scan_and_record(server, fixed, config, purpose="scheduled"):
    with fixed.serving(config):
        report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    return record_report(server.pk, report[server.pk], purpose=purpose)


@pytest.fixture
def watched(db, webhook_sink, fixed, settings, lab_dns) -> Server:
    """mail01, an emulated server with no owner, whose alerts go to a global JSON webhook."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    settings.POPC_ALERT_RECIPIENTS = []
    settings.SITE_URL = "https://popc.example.test"
    json_channel(webhook_sink)
    return lab_server("mail01", fixed.address, *fixed.ports)


def alert_and_deliver(now=None) -> None:
    now = now or timezone.now()
    for _ in range(2):  # twice: the second run must add nothing
        process_pending_changes(now)
        send_reminders(now)
        deliver_pending()


def regress(server, fixed) -> None:
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, PLAINTEXT)
    scan_and_record(server, fixed, PLAINTEXT, purpose="confirmation")


def test_a_regression_reaches_the_json_webhook_once_with_server_check_and_fix(
    watched, webhook_sink, fixed
):
    regress(watched, fixed)
    alert_and_deliver()
    [request] = webhook_sink.received
    payload = request.json()
    title = check_title("pop3.plaintext_login")
    assert payload["title"].startswith("[PopCompliance] FAIL mail01: pop3.plaintext_login")
    assert payload["type"] == "failure"
    message = payload["message"]
    assert f"**mail01** regressed: **{title}**" in message
    assert fixed.address in message
    assert "Set-PopSettings -Server <CAS> -LoginType SecureLogin" in message
    assert f"https://popc.example.test{watched.get_absolute_url()}" in message


def test_the_webhook_hears_the_reminder_and_the_recovery(watched, webhook_sink, fixed):
    regress(watched, fixed)
    opened = timezone.now()
    alert_and_deliver(opened)
    with time_machine.travel(opened + timedelta(hours=24, minutes=1), tick=False):
        alert_and_deliver()
    scan_and_record(watched, fixed, SECURE)
    alert_and_deliver()
    payloads = [request.json() for request in webhook_sink.received]
    assert [p["type"] for p in payloads] == ["failure", "warning", "success"]
    assert payloads[1]["message"].startswith("Reminder 1: **mail01** still fails **")
    assert (
        "[Acknowledge to stop reminders](https://popc.example.test/alerts/"
        in payloads[1]["message"]
    )
    assert payloads[2]["title"].startswith("[PopCompliance] RECOVERED mail01")
    assert payloads[2]["message"].startswith("**mail01** recovered: **")


def test_the_webhook_hears_a_certificate_expiry_once(watched, webhook_sink, fixed):
    scan_and_record(watched, fixed, SECURE)
    expires = Certificate.objects.get().not_after
    moment = expires - timedelta(days=5)
    with time_machine.travel(moment, tick=False):
        check_expiry(moment)
        check_expiry(moment)
        deliver_pending()
    [request] = webhook_sink.received
    payload = request.json()
    assert "within 7 days" in payload["title"] and payload["type"] == "warning"
    assert "The certificate **mail.example.test** expires on" in payload["message"]
    assert "- [mail01](https://popc.example.test/servers/" in payload["message"]
