"""The dispatcher: what it claims, that concurrent runs never double-claim, that scans reach the
real Redis broker only after the claim commits, and that a crashing scan cannot starve it."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from popcompliance.compliance.dispatch import claim_due_servers
from popcompliance.compliance.models import ScanRun
from popcompliance.compliance.tasks import dispatch_due_scans, scan_server
from popcompliance.inventory.models import Policy, Server
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
def test_it_claims_only_due_unpaused_servers_and_moves_them_one_interval_on(db):
    due = Server.objects.create(name="due", host="127.0.0.1", scan_interval=15, next_scan_at=T0)
    later = Server.objects.create(name="later", host="127.0.0.2", next_scan_at=T0 + timedelta(1))
    paused = Server.objects.create(name="paused", host="127.0.0.3", next_scan_at=T0, paused=True)
    assert dispatch_due_scans() == 1
    assert next_scan_at(due) == T0 + timedelta(minutes=15)
    assert next_scan_at(later) == T0 + timedelta(1)
    assert next_scan_at(paused) == T0


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
    assert next_scan_at(broken) == T0 + broken.interval
    assert dispatch_due_scans() == 0
