"""No scan lost to a dead worker, and no beat that looks alive while it cannot send.

Real worker and beat processes: a worker SIGKILLed mid-fleet,
on Redis and on the embedded filesystem broker (which never redelivers). The database's lease
is the guarantee: a claim whose scan was not recorded comes due again when its lease ends.

`make test` also runs this file on SQLite, so the embedded variant runs as `make run` does:
the filesystem broker and SQLite."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from popcompliance.compliance.models import Heartbeat, ScanRun
from popcompliance.compliance.tasks import scan_server
from popcompliance.inventory.models import FAR_FUTURE, Server
from tests.test_workers import SECURE, SLOW, add_server, policy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

FLEET = 12
# Short enough for a test, in the order the settings require: a scan's time limits, then the
# lease beyond them, then the interval beyond what the test takes.
TIMES = {
    "POPC_TASK_SOFT_TIME_LIMIT": 12,
    "POPC_TASK_TIME_LIMIT": 15,
    "POPC_SCAN_LEASE": 20,
    "POPC_DISPATCH_EVERY": 1,
}
LEASE = timedelta(seconds=TIMES["POPC_SCAN_LEASE"])
INTERVAL = timedelta(minutes=1)


def broker_env(broker, tmp_path):
    """Environment for the children: the tests' Redis, or the embedded filesystem broker."""
    if broker == "redis":
        # Redis hands a dead worker's task out again after this: its late duplicate must not
        # be stored twice.
        return {"POPC_VISIBILITY_TIMEOUT": 5}
    var = tmp_path / "var"
    for folder in ("queue", "processed", "control"):
        (var / "broker" / folder).mkdir(parents=True)
    return {"REDIS_URL": "", "POPC_VAR_DIR": var}


def scheduled_runs_per_server(before):
    """{server id: stored scheduled scans started before `before`}."""
    rows = (
        ScanRun.objects.filter(purpose="scheduled", error="", started_at__lt=before)
        .values("server")
        .annotate(n=Count("id"))
    )
    return {row["server"]: row["n"] for row in rows}


@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_a_worker_killed_mid_fleet_loses_no_scan(
    celery_processes,
    add_server,  # noqa: F811 (the fixture imported above)
    broker,
    tmp_path,
):
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    env = {**TIMES, **broker_env(broker, tmp_path)}
    # Slow servers keep scans in flight when the worker dies.
    configs = [SLOW, SECURE, SECURE]
    servers = [add_server(f"mail{i:02}", configs[i % 3], scan_interval=1) for i in range(FLEET)]
    round_start = timezone.now()
    first = celery_processes.worker("w1", concurrency=2, **env)
    celery_processes.beat(**env)
    celery_processes.wait_until(lambda: ScanRun.objects.count() >= 2, 30, "the fleet scan began")
    first.kill()
    killed_at = timezone.now()
    lost = FLEET - len(scheduled_runs_per_server(killed_at))
    assert lost > 0, "the worker died with scans in flight or queued"

    celery_processes.worker("w2", concurrency=2, **env)
    round_end = round_start + INTERVAL  # no server comes due twice before this
    celery_processes.wait_until(
        lambda: len(scheduled_runs_per_server(round_end)) == FLEET,
        (LEASE + timedelta(seconds=25)).total_seconds(),
        "every server was scanned within the lease after the worker died",
    )
    done_at = timezone.now()
    assert done_at - killed_at < LEASE + INTERVAL
    time.sleep(max(0.0, min(6.0, (round_end - timezone.now()).total_seconds())))
    # Exactly one stored scheduled scan per server for the round: a late duplicate (Redis's
    # redelivery beside the lease's new dispatch) was recognised and not stored.
    assert scheduled_runs_per_server(round_end) == {server.pk: 1 for server in servers}


def beat_failure():
    beat = Heartbeat.objects.filter(name="beat").first()
    return beat.failure if beat else ""


def test_beat_that_cannot_reach_the_broker_says_sending_fails(
    celery_processes, redis_broker, viewer, settings
):
    redis_broker.stop()
    celery_processes.beat(POPC_DISPATCH_EVERY=1)
    celery_processes.wait_until(beat_failure, 30, "beat recorded that it cannot send")
    assert beat_failure().startswith("cannot reach the task queue: ")
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "The scheduler cannot send tasks:" in page
    assert "sending fails: cannot reach the task queue" in page
    settings.POPC_METRICS_TOKEN = ""
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'popc_heartbeat_failing{process="beat",name="beat"} 1' in metrics

    redis_broker.start()
    celery_processes.wait_until(lambda: not beat_failure(), 30, "beat sends again and says so")


def worker_failure():
    return list(
        Heartbeat.objects.filter(name__startswith="worker ").values_list("failure", flat=True)
    )


def test_a_worker_whose_task_fails_says_so_until_one_succeeds(
    celery_processes, redis_broker, viewer, settings
):
    # Written straight into the database, past validation: the scanner refuses this host.
    broken = Server.objects.create(name="broken", host="not a host", next_scan_at=FAR_FUTURE)
    celery_processes.worker("w1", concurrency=1)
    scan_server.delay(broken.pk, purpose="manual")
    celery_processes.wait_until(lambda: any(worker_failure()), 30, "the failure was recorded")
    (failure,) = worker_failure()
    assert failure.startswith("compliance.scan_server failed: ValueError(")
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "its last task failed" in page
    settings.POPC_METRICS_TOKEN = ""
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'popc_heartbeat_failing{process="worker",' in metrics
    assert (
        metrics.split('popc_heartbeat_failing{process="worker",')[1].split("\n")[0].endswith(" 1")
    )

    scan_server.delay(999999)  # a server that is gone: the task succeeds with nothing to do
    celery_processes.wait_until(lambda: worker_failure() == [""], 30, "the next success cleared it")
