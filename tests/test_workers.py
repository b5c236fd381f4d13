"""Real Celery worker and beat processes against the test database, the tests' own Redis and
the POP3 emulator: the pipeline end to end, and what happens when a worker or Redis dies."""

import signal
import time
from datetime import timedelta

import pytest
from django.db.models import Count, F
from django.utils import timezone

from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from popcompliance.compliance.models import Change, CheckState, Heartbeat, ScanRun
from popcompliance.compliance.tasks import dispatch_due_scans, scan_server
from popcompliance.inventory.models import Server, ServerLocation
from tests import split_horizon
from tests.conftest import create_lab_policy, lab_server
from tests.test_dispatch import twice_at_once

pytestmark = pytest.mark.slow

SECURE = EndpointConfig()
# NTLM off: its disclosure (auth.ntlm_disclosure) would be a second finding to account for.
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin", ntlm=False)
# A greeting trickled one byte per half second: a scan of it takes several seconds.
SLOW = HostileConfig("slow_banner", interval=0.5)
# Seconds a task taken by a dead worker stays invisible; Redis hands it out again after that.
VISIBILITY = 2


@pytest.fixture
def policy(transactional_db):
    return create_lab_policy()


@pytest.fixture
def add_server(emulated, policy):
    """Start an emulated server on its own loopback address and put it in the inventory."""

    def add(name, config, **fields):
        endpoint = emulated.start(config)
        return lab_server(
            name,
            endpoint.address,
            endpoint.pop3_port,
            endpoint.pop3s_port,
            policy,
            next_scan_at=timezone.now() - timedelta(seconds=1),
            **fields,
        )

    return add


def reloaded(server):
    return Server.objects.get(pk=server.pk)


def duplicated_changes():
    """(server, location, address, check) that more than one Change was recorded for."""
    rows = Change.objects.values("server", "location", "address", "check_id").annotate(
        n=Count("id")
    )
    return list(rows.filter(n__gt=1))


def test_beat_and_a_worker_scan_due_servers_end_to_end(celery_processes, add_server):
    plaintext = add_server("plaintext", PLAINTEXT)
    secure = add_server("secure", SECURE)
    celery_processes.worker("w1")
    celery_processes.beat(POPC_DISPATCH_EVERY=1)
    celery_processes.wait_until(
        lambda: ScanRun.objects.count() == 2, 30, "beat dispatched and the worker scanned both"
    )
    assert reloaded(plaintext).status == "non_compliant"
    assert reloaded(secure).status == "compliant"
    login = CheckState.objects.get(server=plaintext, check_id="pop3.plaintext_login")
    assert login.status == "fail"
    assert ScanRun.objects.get(server=secure).worker.startswith("w1@")


def test_a_scan_lost_with_a_killed_worker_is_redelivered_to_another(celery_processes, add_server):
    server = add_server("slow", SLOW)
    first = celery_processes.worker("w1", POPC_VISIBILITY_TIMEOUT=VISIBILITY)
    dispatch_due_scans()
    first.wait_for_log(r"Task compliance\.scan_server\[[^]]+\] received")
    time.sleep(1)  # well inside the scan, which takes several seconds
    first.kill()
    assert not ScanRun.objects.exists()
    time.sleep(VISIBILITY + 0.5)  # the unacknowledged task becomes visible again
    celery_processes.worker("w2", POPC_VISIBILITY_TIMEOUT=VISIBILITY)
    celery_processes.wait_until(ScanRun.objects.exists, 40, "the second worker scanned")
    time.sleep(1)  # room for a wrong second delivery to show up
    assert ScanRun.objects.get(server=server).worker.startswith("w2@")
    assert Change.objects.filter(server=server).exists()
    assert duplicated_changes() == []


def test_every_due_server_is_scanned_after_redis_restarts_mid_fleet(
    celery_processes, add_server, redis_broker
):
    # A few slow servers keep scans in flight while Redis is away.
    configs = [SLOW, *[SECURE, PLAINTEXT] * 5]
    servers = [add_server(f"mail{i:02}", configs[i % 11], scan_interval=1) for i in range(30)]
    # Claims (made by the worker's dispatcher) lease a server for less than the minute the
    # test moves the clock by below.
    lease = {"POPC_TASK_SOFT_TIME_LIMIT": 12, "POPC_TASK_TIME_LIMIT": 15, "POPC_SCAN_LEASE": 20}
    celery_processes.worker("w1", concurrency=2, **lease)
    celery_processes.beat(POPC_DISPATCH_EVERY=1)
    celery_processes.wait_until(lambda: ScanRun.objects.count() >= 3, 30, "the fleet scan began")
    redis_broker.stop(signal.SIGKILL)  # the queue and the unacknowledged tasks are lost
    scanned_before = ScanRun.objects.values("server").distinct().count()
    time.sleep(2)
    redis_broker.start()
    restarted = timezone.now()
    # One interval passes: every server's next slot, and the lease of every lost scan, ends.
    ServerLocation.objects.update(next_scan_at=F("next_scan_at") - timedelta(minutes=1))
    celery_processes.wait_until(
        lambda: scanned_since(restarted) == len(servers), 90, "every server was scanned again"
    )
    assert scanned_before < len(servers)


def scanned_since(moment):
    """Servers with a scan recorded since `moment`: a scan still running then counts, as its
    result sets the server's next slot a whole interval after the clock was moved."""
    return ScanRun.objects.filter(finished_at__gte=moment).values("server").distinct().count()


def test_two_deliveries_of_one_scan_record_no_duplicate_change(
    celery_processes, add_server, redis_broker
):
    server = add_server("plaintext", PLAINTEXT)
    worker = celery_processes.worker("w1", concurrency=2)
    dispatched_at = timezone.now().isoformat()
    for _ in range(2):  # the same message, delivered twice (acks_late after a lost ack)
        scan_server.apply_async((server.pk,), {"dispatched_at": dispatched_at}, task_id="twice")
    celery_processes.wait_until(
        lambda: worker.log().count("scan_server[twice] succeeded") == 2, 30, "both deliveries ran"
    )
    changes = Change.objects.filter(server=server).values_list("check_id", "previous_status")
    # Beside the finding, the lab's own gaps: no SRV records, no OCSP nor CRL from its CA.
    assert sorted(changes) == [
        ("cert.revocation", ""),
        ("dns.srv", ""),
        ("pop3.plaintext_login", ""),
    ]
    assert reloaded(server).status == "non_compliant"


# --- probe locations: one worker per queue ---------------------------------------------------


@pytest.fixture
def horizon(settings):
    yield from split_horizon.running(settings)


def location_worker(celery_processes, horizon, location):
    """A worker of `location`: it takes that queue only, and resolves names with that
    location's DNS, as a worker on a machine in that network would."""
    return celery_processes.worker(
        location,
        queues=location,
        POPC_LOCATIONS=",".join(split_horizon.LOCATIONS),
        POPC_DNS_RESOLVER=horizon.resolver(location),
    )


def test_workers_on_two_queues_scan_each_server_once_from_each_location(
    celery_processes, horizon, policy
):
    servers = [
        horizon.server(f"mail{i}", policy, next_scan_at=timezone.now() - timedelta(seconds=1))
        for i in range(3)
    ]
    for location in split_horizon.LOCATIONS:
        location_worker(celery_processes, horizon, location)
    # Each worker's heartbeat is its queue's: the dispatcher sends scans to live locations.
    queues = Heartbeat.objects.filter(name__startswith="queue ").values_list("name", "detail")
    assert sorted((name, detail.split("@")[0]) for name, detail in queues) == [
        ("queue inside", "inside"),
        ("queue outside", "outside"),
    ]
    # Two dispatchers at once: each server × location is claimed and sent once.
    assert sum(twice_at_once(dispatch_due_scans)) == 6
    celery_processes.wait_until(lambda: ScanRun.objects.count() == 6, 60, "six scans stored")
    time.sleep(1)  # room for a wrong second scan to show up
    runs = ScanRun.objects.values_list("server", "location", "worker")
    assert sorted((server, location) for server, location, _ in runs) == sorted(
        (s.pk, location) for s in servers for location in split_horizon.LOCATIONS
    )
    assert all(worker.startswith(f"{location}@") for _, location, worker in runs)
    for server in servers:
        login = CheckState.objects.filter(server=server, check_id="pop3.plaintext_login")
        assert dict(login.values_list("location", "status")) == {
            "inside": "fail",
            "outside": "skip",
        }
        assert reloaded(server).status == "non_compliant"  # the worst of the two
    assert duplicated_changes() == []
