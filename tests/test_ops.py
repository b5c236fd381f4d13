"""/healthz (database and broker reachability) and /metrics (Prometheus text, token)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from popcompliance.alerts.models import Channel, Notification
from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    CheckState,
    Heartbeat,
    ScanRun,
)
from popcompliance.inventory.models import Server, ServerStatus
from popcompliance.ops import metrics
from tests.ports import free_port
from tests.services import RedisServer

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-metrics-token"
SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")


# --- /healthz ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_is_ok_when_database_and_redis_answer(redis_broker: RedisServer) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(redis_broker: RedisServer) -> None:
    redis_broker.stop()
    try:
        response = Client().get("/healthz")
    finally:
        redis_broker.start()
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("error: ")
    # Only the kind of error: no host, port or URL for whoever can reach the web server.
    assert str(redis_broker.port) not in response.content.decode()


@pytest.mark.django_db
def test_healthz_with_the_embedded_broker_checks_its_folder(tmp_path, settings) -> None:
    from popcompliance.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    folder = tmp_path / "queue"
    app.conf.update(
        broker_url="filesystem://", broker_transport_options={"data_folder_in": str(folder)}
    )
    try:
        assert Client().get("/healthz").json()["broker"] == "error: FileNotFoundError"
        folder.mkdir()
        assert Client().get("/healthz").status_code == 200
    finally:
        app.conf.update(saved)


# A fresh process, because this one's database connection is the test database's.
HEALTHZ_IN_A_FRESH_PROCESS = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(response.status_code, response.content.decode())
"""


def test_healthz_is_503_when_the_database_is_unreachable(redis_broker: RedisServer) -> None:
    closed = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "popcompliance.settings",
        "DATABASE_URL": f"postgres://popc:secret-password@127.0.0.1:{closed}/popcompliance",
        "REDIS_URL": redis_broker.url,
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", HEALTHZ_IN_A_FRESH_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, body = done.stdout.strip().split(" ", 1)
    assert status == "503"
    assert json.loads(body) == {"database": "error: OperationalError", "broker": "ok"}
    assert "secret-password" not in body and str(closed) not in body


def test_healthz_needs_no_login_and_only_get() -> None:
    assert Client().post("/healthz").status_code == 405


# --- /metrics: access ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 403), ("Bearer wrong", 403), (f"Token {TOKEN}", 403), (f"Bearer {TOKEN}", 200)],
)
def test_metrics_need_the_token(settings, header: str | None, status: int) -> None:
    settings.POPC_METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    # Loopback does not help once a token is set.
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
    assert response.status_code == status


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "status"), [("127.0.0.1", 200), ("::1", 200), ("10.0.0.5", 403)]
)
def test_metrics_without_a_token_are_for_loopback_only(settings, address: str, status: int) -> None:
    settings.POPC_METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR=address).status_code == status


# --- /metrics: content ---------------------------------------------------------------------


def make_server(name: str, status: str = ServerStatus.COMPLIANT, **fields) -> Server:
    values = {"host": f"{name}.example.test", "status": status, "last_scan_at": NOW}
    values["next_scan_at"] = NOW + timedelta(hours=1)
    return Server.objects.create(name=name, **{**values, **fields})


def make_certificate(name: str, not_after: datetime, server: Server, seen: datetime) -> None:
    certificate = Certificate.objects.create(
        fingerprint_sha256=name.encode().hex().ljust(64, "0")[:64], subject=f"CN={name}",
        issuer="CN=Test CA", common_name=name, serial="01", not_before=NOW - timedelta(days=90),
        not_after=not_after, key_type="RSA", key_bits=2048, self_signed=False, pem="-",
        first_seen_at=seen, last_seen_at=seen,
    )  # fmt: skip
    CertificateSighting.objects.create(
        certificate=certificate, server=server, address="192.0.2.1", port=995,
        first_seen_at=seen, last_seen_at=seen,
    )  # fmt: skip


def state(server: Server, check_id: str, status: str, address: str = "192.0.2.1") -> None:
    CheckState.objects.create(
        server=server, address=address, check_id=check_id, status=status, summary="", since=NOW
    )


def run(server: Server, minutes_ago: float, duration_ms: int) -> None:
    started = NOW - timedelta(minutes=minutes_ago)
    ScanRun.objects.create(
        server=server, purpose="scheduled", started_at=started, finished_at=started,
        duration_ms=duration_ms,
    )  # fmt: skip


def parse(text: str) -> dict[str, float]:
    """{'name{labels}': value} of every sample line; checks every line is well-formed."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("# "):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        samples[f"{name}{{{labels}}}" if labels else name] = float(value)
    return samples


@pytest.fixture
def fleet(db) -> None:
    a = make_server("a")
    b = make_server("b", ServerStatus.NON_COMPLIANT, next_scan_at=NOW - timedelta(seconds=90))
    c = make_server("c", ServerStatus.NON_COMPLIANT, next_scan_at=NOW - timedelta(seconds=30))
    paused = make_server(
        "p", ServerStatus.PAUSED, paused=True, next_scan_at=NOW - timedelta(days=3)
    )
    state(a, "stls", "pass")
    state(b, "stls", "fail")
    state(b, "stls", "fail", address="2001:db8::1")  # one server, counted once
    state(c, "stls", "fail")
    state(c, "plaintext_login", "fail")
    state(paused, "plaintext_login", "fail")
    state(a, "cert_expiry", "warn")
    make_certificate("a-old", NOW + timedelta(days=2), a, seen=NOW - timedelta(days=5))  # gone
    make_certificate("a-new", NOW + timedelta(days=60, hours=12), a, seen=NOW)
    make_certificate("b", NOW - timedelta(days=1), b, seen=NOW)
    make_certificate("p", NOW + timedelta(days=1), paused, seen=NOW)
    run(a, 5, 80)
    run(a, 10, 700)
    run(b, 20, 3000)
    run(c, 59, 45000)
    run(c, 61, 100)  # outside the hour
    Heartbeat.objects.create(name="beat", last_seen_at=NOW - timedelta(seconds=30))
    Heartbeat.objects.create(name="worker w1@host", last_seen_at=NOW - timedelta(minutes=2))


def scrape(settings) -> dict[str, float]:
    settings.POPC_METRICS_TOKEN = TOKEN
    with time_machine.travel(NOW, tick=False):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.content.decode())


def test_metrics_count_servers_by_status(fleet, settings) -> None:
    samples = scrape(settings)
    assert samples['popc_servers{status="compliant"}'] == 1
    assert samples['popc_servers{status="non_compliant"}'] == 2
    assert samples['popc_servers{status="paused"}'] == 1
    assert samples['popc_servers{status="new"}'] == 0


def test_metrics_count_failing_checks_by_id(fleet, settings) -> None:
    samples = scrape(settings)
    assert samples['popc_checks_failing{check="stls"}'] == 2
    assert samples['popc_checks_failing{check="plaintext_login"}'] == 1  # paused ignored
    assert samples['popc_checks_failing{check="cert_expiry"}'] == 0


def test_metrics_give_days_to_the_earliest_served_certificate_expiry(fleet, settings) -> None:
    samples = scrape(settings)
    assert samples['popc_certificate_expiry_days{server="a"}'] == 60.5
    assert samples['popc_certificate_expiry_days{server="b"}'] == -1
    assert 'popc_certificate_expiry_days{server="p"}' not in samples


def test_metrics_histogram_of_the_last_hours_scans(fleet, settings) -> None:
    samples = scrape(settings)
    bucket = 'popc_scan_duration_seconds_bucket{{le="{}"}}'.format
    assert samples[bucket("0.1")] == 1
    assert samples[bucket("1")] == 2
    assert samples[bucket("5")] == 3
    assert samples[bucket("30")] == 3
    assert samples[bucket("60")] == 4
    assert samples[bucket("+Inf")] == 4
    assert samples["popc_scan_duration_seconds_count"] == 4
    assert samples["popc_scan_duration_seconds_sum"] == pytest.approx(48.78)


def test_metrics_queue_lag_and_heartbeats(fleet, settings) -> None:
    samples = scrape(settings)
    assert samples["popc_queue_lag_seconds"] == 90  # the paused server does not count
    beat = samples['popc_heartbeat_timestamp_seconds{process="beat",name="beat"}']
    assert beat == NOW.timestamp() - 30
    worker = 'popc_heartbeat_timestamp_seconds{process="worker",name="worker w1@host"}'
    assert samples[worker] == NOW.timestamp() - 120


def email(status: str, minutes_ago: float) -> None:
    """An email queued `minutes_ago`; a failed one failed at its only attempt, then."""
    queued = NOW - timedelta(minutes=minutes_ago)
    notification = Notification.objects.create(
        kind="alert", to="ops@example.test", subject="s", body_text="t", body_html="h",
        key=f"k{Notification.objects.count()}", message_id="<m@x>", status=status,
        created_at=queued,
    )  # fmt: skip
    if status == "failed":
        notification.attempts.create(at=queued, outcome="permanent", error="550", duration_ms=5)


def test_metrics_count_the_outbox_and_the_oldest_unsent_email(fleet, settings) -> None:
    email("sent", 600)
    email("failed", 300)
    email("pending", 45)  # SMTP has been refusing for 45 minutes
    email("pending", 2)
    samples = scrape(settings)
    assert samples['popc_notifications{status="pending"}'] == 2
    assert samples['popc_notifications{status="sent"}'] == 1
    assert samples['popc_notifications{status="failed"}'] == 1
    assert samples["popc_notification_oldest_pending_seconds"] == 45 * 60
    # The 45-minute one (over ten) and the lately failed one; the 2-minute one is on its way.
    assert samples["popc_notifications_undelivered"] == 2


def test_metrics_count_a_channels_messages_apart_from_the_emails(fleet, settings) -> None:
    channel = Channel(name="teams")
    channel.set_scope("global")
    channel.set_url("jsons://hooks.example.test/hooks/token")
    channel.save()
    email("pending", 45)  # the webhook has been refusing for 45 minutes
    Notification.objects.update(channel=channel)
    samples = scrape(settings)
    assert samples['popc_channel_messages_undelivered{channel="teams"}'] == 1
    assert samples["popc_notifications_undelivered"] == 0
    assert samples['popc_notifications{status="pending"}'] == 0


@pytest.mark.django_db
def test_metrics_of_an_empty_fleet(settings) -> None:
    samples = scrape(settings)
    assert samples["popc_queue_lag_seconds"] == 0
    assert samples["popc_scan_duration_seconds_count"] == 0
    assert samples['popc_servers{status="compliant"}'] == 0
    assert samples['popc_notifications{status="pending"}'] == 0
    assert samples["popc_notification_oldest_pending_seconds"] == 0


def test_metrics_cost_the_same_queries_whatever_the_fleet(
    fleet, settings, django_assert_num_queries
) -> None:
    settings.POPC_METRICS_TOKEN = ""
    with django_assert_num_queries(8):
        Client().get("/metrics", REMOTE_ADDR="127.0.0.1")


def test_label_values_are_escaped() -> None:
    lines = metrics.family("m", "gauge", "h", [({"server": 'a"b\\c\nd'}, 1.5)])
    assert lines[-1] == 'm{server="a\\"b\\\\c\\nd"} 1.5'
