"""The dispatcher: what it claims, that concurrent runs never double-claim, that scans reach the
real Redis broker only after the claim commits, and that a crashing scan cannot starve it."""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from popcompliance.compliance.dispatch import claim_due_servers
from popcompliance.compliance.models import Heartbeat, ScanPurpose, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.tasks import (
    TooManyScanRequests,
    dispatch_due_scans,
    request_scan,
    scan_server,
)
from popcompliance.inventory.models import FAR_FUTURE, Policy, Server, ServerLocation
from popcompliance.ops.heartbeats import liveness
from scanner import DnsFacts, ScanReport, Target
from tests.services import queued_tasks

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FLEET = 200


def add_servers(count, due_at):
    policy = Policy.default()
    return Server.objects.bulk_create(
        Server(name=f"mail{i:03}", host="127.0.0.1", policy=policy, next_scan_at=due_at)
        for i in range(count)
    )


def next_scan_at(server):
    return Server.objects.get(pk=server.pk).next_scan_at


def queued_server_ids(redis_broker):
    return sorted(args[0] for _, args, _ in queued_tasks(redis_broker))


@time_machine.travel(T0, tick=False)
def test_it_claims_only_due_unpaused_servers_and_moves_them_one_lease_on(db, settings):
    settings.POPC_SCAN_LEASE = 420
    due = Server.objects.create(name="due", host="127.0.0.1", scan_interval=15, next_scan_at=T0)
    later = Server.objects.create(name="later", host="127.0.0.2", next_scan_at=T0 + timedelta(1))
    paused = Server.objects.create(name="paused", host="127.0.0.3", next_scan_at=T0, paused=True)
    assert dispatch_due_scans() == 1
    assert next_scan_at(due) == T0 + timedelta(seconds=420)
    assert next_scan_at(later) == T0 + timedelta(1)
    assert next_scan_at(paused) == T0


def record_scan(server, purpose, at):
    """Store a scan that could judge nothing (no address answered): enough to schedule."""
    report = ScanReport(
        target=Target(server.host),
        dns=DnsFacts(None, "not_applicable"),
        endpoints=(),
        checks=(),
        address_checks=(),
        compliant=None,
        started_at=at,
        duration_ms=5,
    )
    record_report(server.pk, report, purpose=purpose, now=at)


@time_machine.travel(T0, tick=False)
def test_a_recorded_scheduled_scan_sets_the_next_time_one_interval_on(db):
    (server,) = add_servers(1, T0)
    assert dispatch_due_scans() == 1
    record_scan(server, ScanPurpose.SCHEDULED, T0 + timedelta(seconds=30))
    assert next_scan_at(server) == T0 + timedelta(seconds=30) + server.interval
    assert Server.objects.get(pk=server.pk).scan_queued_at is None


@time_machine.travel(T0, tick=False)
def test_an_edit_during_a_scheduled_scan_keeps_its_scan_sooner(db):
    (server,) = add_servers(1, T0)
    assert dispatch_due_scans() == 1
    # The admin changes the host while the scan runs: the edit asks for a scan now.
    server.refresh_from_db()
    server.host = "127.0.0.9"
    assert server.reschedule_after_edit({"host"}, T0)
    server.save(update_fields=["host", "next_scan_at", "updated_at"])
    record_scan(server, ScanPurpose.SCHEDULED, T0 + timedelta(seconds=30))
    assert next_scan_at(server) == T0
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        assert dispatch_due_scans() == 1  # the new host is scanned at the next run


@time_machine.travel(T0, tick=False)
def test_a_claim_covered_by_a_manual_scan_schedules_from_that_scan(db):
    (server,) = add_servers(1, T0)
    assert dispatch_due_scans() == 1
    record_scan(server, ScanPurpose.MANUAL, T0 + timedelta(seconds=10))
    with time_machine.travel(T0 + timedelta(seconds=20), tick=False):
        assert scan_server(server.pk, dispatched_at=T0.isoformat()) == "already scanned"
    assert next_scan_at(server) == T0 + timedelta(seconds=10) + server.interval


@pytest.mark.parametrize("purpose", [ScanPurpose.MANUAL, ScanPurpose.CONFIRMATION])
@time_machine.travel(T0, tick=False)
def test_manual_and_confirmation_scans_leave_the_claims_lease_alone(db, purpose):
    (server,) = add_servers(1, T0)
    assert dispatch_due_scans() == 1
    leased = next_scan_at(server)
    record_scan(server, purpose, T0 + timedelta(seconds=30))
    assert next_scan_at(server) == leased


@time_machine.travel(T0, tick=False)
def test_a_claim_whose_scan_is_never_recorded_is_due_again_after_the_lease(db, settings):
    settings.POPC_SCAN_LEASE = 600
    add_servers(1, T0)
    assert dispatch_due_scans() == 1
    with time_machine.travel(T0 + timedelta(seconds=599), tick=False):
        assert dispatch_due_scans() == 0
    with time_machine.travel(T0 + timedelta(seconds=600), tick=False):
        assert dispatch_due_scans() == 1


@time_machine.travel(T0, tick=False)
def test_an_absurd_interval_cannot_break_recording(db):
    late = datetime(9990, 1, 1, tzinfo=UTC)
    (server,) = add_servers(1, late)
    Server.objects.filter(pk=server.pk).update(scan_interval=2**31 - 1)
    with time_machine.travel(late, tick=False):
        assert dispatch_due_scans() == 1
        server.refresh_from_db()
        # Some 4,000 years on is past the calendar's end.
        record_scan(server, ScanPurpose.SCHEDULED, late + timedelta(seconds=30))
    assert next_scan_at(server) == FAR_FUTURE


@time_machine.travel(T0, tick=False)
def test_a_claimed_server_is_not_claimed_again_in_the_same_slot(db):
    add_servers(3, T0)
    assert dispatch_due_scans() == 3
    assert dispatch_due_scans() == 0


def twice_at_once(function, *args):
    """Run `function` in two threads released together, each with its own database
    connection, as two dispatchers on two machines would; both results."""
    barrier = threading.Barrier(2)

    def run():
        try:
            barrier.wait()
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(run) for _ in range(2)]
        return [run.result() for run in runs]


def claim_in_transaction(now, limit):
    with transaction.atomic():
        return claim_due_servers(now, limit)


@pytest.mark.parametrize(
    "claim", [claim_due_servers, claim_in_transaction], ids=["autocommit", "in-a-transaction"]
)
def test_two_dispatchers_at_once_never_claim_a_server_twice(transactional_db, claim):
    servers = add_servers(FLEET, timezone.now() - timedelta(minutes=1))
    first, second = twice_at_once(claim, timezone.now(), 5000)
    assert sorted(first + second) == sorted(server.pk for server in servers)


def test_two_dispatch_runs_at_once_enqueue_each_server_exactly_once(transactional_db, redis_broker):
    servers = add_servers(FLEET, timezone.now() - timedelta(minutes=1))
    assert sum(twice_at_once(dispatch_due_scans)) == FLEET
    assert queued_server_ids(redis_broker) == sorted(server.pk for server in servers)


def test_scans_are_enqueued_only_after_the_dispatch_commits(transactional_db, redis_broker):
    servers = add_servers(3, timezone.now())
    with transaction.atomic():
        dispatch_due_scans()
        assert queued_tasks(redis_broker) == []
    assert queued_server_ids(redis_broker) == sorted(server.pk for server in servers)
    assert {name for name, _, _ in queued_tasks(redis_broker)} == {"compliance.scan_server"}


def test_a_rolled_back_dispatch_enqueues_nothing_and_claims_nothing(transactional_db, redis_broker):
    due_at = timezone.now() - timedelta(minutes=1)
    (server,) = add_servers(1, due_at)
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch_due_scans()
        raise RuntimeError("the dispatcher's transaction fails after the claim")
    assert queued_tasks(redis_broker) == []
    assert next_scan_at(server) == due_at


@time_machine.travel(T0, tick=False)
def test_a_crashing_scan_is_recorded_and_cannot_starve_the_loop(db):
    # Written straight into the database, past validation: the scanner refuses this host.
    broken = Server.objects.create(name="broken", host="not a host", next_scan_at=T0)
    assert dispatch_due_scans() == 1
    with pytest.raises(ValueError):
        scan_server(broken.pk, dispatched_at=T0.isoformat())
    assert ScanRun.objects.get(server=broken).error.startswith("ValueError: not a host name")
    # A crash counts as the round's scan: the next one comes an interval on, not at the lease's
    # end, so a broken row is not retried every few minutes.
    assert next_scan_at(broken) == T0 + broken.interval
    assert Server.objects.get(pk=broken.pk).scan_queued_at is None
    assert next_scan_at(broken) == T0 + broken.interval
    assert dispatch_due_scans() == 0


def poison(server):
    """Make the claim of `server` raise inside the database, as any bad row or bug might: a
    trigger refuses the claim's UPDATE (the one that leaves dispatch_error blank) and lets
    the dispatcher's note of the failure through. Rolled back with the test's transaction."""
    when = (
        f"NEW.id = {server.pk} AND NEW.dispatch_error = '' AND NEW.next_scan_at <> OLD.next_scan_at"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER poison BEFORE UPDATE ON inventory_server FOR EACH ROW WHEN {when}"
                " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'poisoned row'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER poison BEFORE UPDATE ON inventory_server FOR EACH ROW"
                f" WHEN ({when}) EXECUTE FUNCTION poison()"
            )


def cure():
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER poison"
            if connection.vendor == "sqlite"
            else "DROP TRIGGER poison ON inventory_server"
        )


@time_machine.travel(T0, tick=False)
def test_a_row_that_fails_to_dispatch_is_set_aside_and_the_others_are_dispatched(db, settings):
    settings.POPC_SCAN_LEASE = 600
    servers = add_servers(5, T0)
    bad = servers[2]
    poison(bad)
    assert dispatch_due_scans() == 4
    bad.refresh_from_db()
    assert "poisoned row" in bad.dispatch_error
    assert bad.dispatch_error_at == T0
    assert bad.next_scan_at == T0 + timedelta(seconds=600)  # not retried every minute
    assert all(next_scan_at(s) == T0 + timedelta(seconds=600) for s in servers)
    heartbeat = Heartbeat.objects.get(name="dispatcher")
    assert heartbeat.detail == "dispatched 4"
    assert heartbeat.failure.startswith("could not dispatch mail002 (")
    assert liveness(T0).dispatcher_failing

    for good in servers[:2] + servers[3:]:
        record_scan(good, ScanPurpose.SCHEDULED, T0 + timedelta(seconds=5))
    cure()
    with time_machine.travel(T0 + timedelta(seconds=600), tick=False):
        assert dispatch_due_scans() == 1
    bad.refresh_from_db()
    assert (bad.dispatch_error, bad.dispatch_error_at) == ("", None)
    assert Heartbeat.objects.get(name="dispatcher").failure == ""


@time_machine.travel(T0, tick=False)
def test_the_server_page_says_why_it_could_not_be_dispatched(db, settings, viewer):
    (bad,) = add_servers(1, T0)
    poison(bad)
    dispatch_due_scans()
    page = viewer.get(bad.get_absolute_url()).content.decode()
    assert "The dispatcher could not dispatch this server" in page
    assert "poisoned row" in page


@time_machine.travel(T0, tick=False)
def test_a_failing_dispatcher_is_called_failing_on_the_overview_and_in_metrics(
    db, settings, viewer
):
    Heartbeat.beat("beat", T0)
    Heartbeat.beat("worker w1@ops", T0)
    Heartbeat.beat("dispatcher", T0 - timedelta(minutes=14), "dispatched 3")
    add_servers(2, T0)
    settings.POPC_DISPATCH_BATCH = -1  # a setting no dispatch can work with
    with pytest.raises(ValueError):
        dispatch_due_scans()
    heartbeat = Heartbeat.objects.get(name="dispatcher")
    assert heartbeat.last_seen_at == T0 - timedelta(minutes=14)  # it did not run
    assert heartbeat.failed_at == T0 and heartbeat.failure.startswith("ValueError: ")

    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "Dispatching fails:" in page
    panel = page[page.index('id="liveness-heading"') :].split("</dd>")[0]
    assert "dispatching fails: ValueError" in panel
    assert "running" not in panel

    settings.POPC_METRICS_TOKEN = ""
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'popc_heartbeat_failing{process="dispatcher",name="dispatcher"} 1' in metrics
    assert 'popc_heartbeat_failing{process="beat",name="beat"} 0' in metrics


@time_machine.travel(T0, tick=False)
def test_metrics_count_the_servers_that_could_not_be_dispatched(db, settings):
    servers = add_servers(3, T0)
    poison(servers[0])
    dispatch_due_scans()
    settings.POPC_METRICS_TOKEN = ""
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "\npopc_servers_dispatch_failing 1\n" in metrics


@time_machine.travel(T0, tick=False)
def test_a_dispatcher_that_only_ever_failed_shows_no_last_dispatch(db, settings, viewer):
    Heartbeat.beat("beat", T0)
    settings.POPC_DISPATCH_BATCH = -1
    with pytest.raises(ValueError):
        dispatch_due_scans()
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "Dispatching fails:" in page and "last dispatch" not in page


def test_a_lease_no_longer_than_a_scan_may_run_is_refused_in_words():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "popcompliance.settings"}
    env.update(POPC_TASK_TIME_LIMIT="300", POPC_SCAN_LEASE="300")
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "POPC_SCAN_LEASE (300 s) must be longer than POPC_TASK_TIME_LIMIT (300 s)" in done.stderr


def test_a_broker_that_is_down_fails_the_dispatch_in_words_and_quickly(
    transactional_db, redis_broker
):
    servers = add_servers(50, timezone.now() - timedelta(minutes=1))
    redis_broker.stop()
    started = time.monotonic()
    try:
        assert dispatch_due_scans() == 0
    finally:
        redis_broker.start()
    assert time.monotonic() - started < 15  # one refused send, not fifty
    heartbeat = Heartbeat.objects.get(name="dispatcher")
    assert heartbeat.failure.startswith("could not dispatch 50 claimed servers (")
    errors = set(Server.objects.values_list("dispatch_error", flat=True))
    assert len(errors) == 1 and errors != {""}
    # Nothing was sent, so nothing is queued for a "Scan now" to join.
    assert not Server.objects.filter(scan_queued_at__isnull=False).exists()
    assert queued_tasks(redis_broker) == []
    # Their leases end as usual: then they are dispatched again.
    ServerLocation.objects.update(next_scan_at=timezone.now())
    assert dispatch_due_scans() == 50
    assert queued_server_ids(redis_broker) == sorted(server.pk for server in servers)


def test_scan_requests_sent_at_once_are_held_to_the_rate_limit(
    transactional_db, redis_broker, settings
):
    settings.POPC_SCAN_REQUESTS_PER_MINUTE = 1
    first, second = add_servers(2, timezone.now() + timedelta(hours=1))
    user = User.objects.create_user("hasty")

    def ask(server):
        try:
            return request_scan(server, user).joined
        except TooManyScanRequests:
            return "refused"

    barrier = threading.Barrier(2)

    def run(server):
        try:
            barrier.wait()
            return ask(server)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(map(str, pool.map(run, [first, second])))
    assert outcomes == ["False", "refused"]  # one scan started, one request refused
    assert len(queued_tasks(redis_broker)) == 1
