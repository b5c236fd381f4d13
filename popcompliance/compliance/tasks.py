"""Celery tasks: thin wrappers that take ids, call the scanner and hand results to recording.

- dispatch_due_scans (beat, every minute): claims due servers, enqueues scan_server after commit.
- scan_server(id): scans one server and records the report; idempotent, so acks_late is safe.
- request_scan(server): "Scan now" from the dashboard and the API, queued after commit.
- snapshot_fleet (hourly) and prune (daily): housekeeping.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

from celery import shared_task
from celery.signals import beat_init, before_task_publish, task_postrun, worker_ready
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from popcompliance.alerts.tasks import process_changes
from popcompliance.compliance.dispatch import claim_due_servers
from popcompliance.compliance.models import Heartbeat, ScanPurpose, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.retention import prune as prune_rows
from popcompliance.compliance.scanning import scan_servers
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Server

logger = logging.getLogger(__name__)

# A database that is briefly away (restart, failover) is worth retrying; a bug is not.
TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="compliance.dispatch_due_scans")
def dispatch_due_scans() -> int:
    """Claim the due servers and enqueue one scan each; records the dispatcher's heartbeat."""
    now = timezone.now()
    with transaction.atomic():
        claimed = claim_due_servers(now, settings.POPC_DISPATCH_BATCH)
        for server_id in claimed:
            scan_server.delay_on_commit(server_id, dispatched_at=now.isoformat())
    Heartbeat.beat("dispatcher", now, f"dispatched {len(claimed)}")
    return len(claimed)


@shared_task(
    name="compliance.scan_server",
    bind=True,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
)
def scan_server(
    self: object,
    server_id: int,
    purpose: str = ScanPurpose.SCHEDULED,
    dispatched_at: str | None = None,
) -> str:
    """Scan one server and store the result; re-probe a suspected regression shortly after."""
    server = Server.objects.select_related("policy").filter(pk=server_id).first()
    if server is None:
        return "gone"
    if _already_done(server, purpose, dispatched_at):
        return "already scanned"
    worker = getattr(getattr(self, "request", None), "hostname", "") or ""
    try:
        report = scan_servers([server])[server.pk]
        recorded = record_report(server.pk, report, purpose=purpose, worker=worker)
    except TRANSIENT:
        raise
    except Exception as exc:
        _record_crash(server, purpose, worker, exc)
        raise
    if recorded.changes:
        process_changes.delay(server.pk)  # alerts go out now, not at the next beat
    if recorded.needs_confirmation:
        scan_server.apply_async(
            (server_id,),
            {"purpose": ScanPurpose.CONFIRMATION},
            countdown=settings.POPC_CONFIRMATION_DELAY,
        )
    return f"{len(recorded.changes)} changes"


def _already_done(server: Server, purpose: str, dispatched_at: str | None) -> bool:
    """A scheduled task redelivered after its scan was stored (the worker died before it
    acknowledged) has nothing left to do."""
    if purpose != ScanPurpose.SCHEDULED or not dispatched_at or server.last_scan_at is None:
        return False
    return server.last_scan_at >= datetime.fromisoformat(dispatched_at)


def _record_crash(server: Server, purpose: str, worker: str, exc: Exception) -> None:
    """Keep a visible trace of a scan that crashed (a bug or a bad row), without hiding the
    exception from Celery. The row's next_scan_at was pushed forward when it was claimed, so
    it cannot starve the dispatcher."""
    logger.exception("scan of %s crashed", server)
    now = timezone.now()
    try:
        ScanRun.objects.create(
            server=server,
            purpose=purpose,
            started_at=now,
            finished_at=now,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            worker=worker,
        )
    except DatabaseError:
        logger.exception("could not record the crash of %s", server)


class ScanNotQueued(Exception):
    """The task queue (the broker) could not take a requested scan."""


def request_scan(server: Server) -> str:
    """Queue a manual scan of `server` once the current transaction commits; the task's id.

    Outside a transaction, as the dashboard and the API call it, the message is sent at once,
    so a broker that is down raises ScanNotQueued (logged) here and the caller can say so.
    Inside one, nothing is sent if it rolls back, and a broker failure surfaces at commit."""
    task_id = str(uuid.uuid4())
    try:
        scan_server.apply_async_on_commit(
            (server.pk,), {"purpose": ScanPurpose.MANUAL}, task_id=task_id
        )
    except BrokerError as exc:
        logger.exception("could not queue a scan of %s", server)
        raise ScanNotQueued(str(exc)) from exc
    return task_id


@shared_task(name="compliance.snapshot_fleet")
def snapshot_fleet() -> None:
    take_snapshot(timezone.now())


@shared_task(name="compliance.prune")
def prune() -> dict[str, int]:
    return prune_rows(timezone.now())


# Each process proves it is alive at most this often: beat when it sends a task (its own
# heartbeat, "beat"), a worker when it starts and after each task ("worker <hostname>"). The
# dispatcher records what it did as "dispatcher". Beat sends alerts.deliver every minute, so
# while beat runs a worker heartbeat older than a few minutes means no worker takes tasks.
HEARTBEAT_EVERY = 30.0
_last_heartbeat = 0.0
_in_beat = False


@beat_init.connect
def _beat_started(sender: object = None, **kwargs: object) -> None:
    global _in_beat
    _in_beat = True
    _heartbeat("beat", force=True)


@before_task_publish.connect
def _task_sent(sender: object = None, **kwargs: object) -> None:
    if _in_beat:
        _heartbeat("beat")


@worker_ready.connect
def _worker_started(sender: object = None, **kwargs: object) -> None:
    _heartbeat(f"worker {getattr(sender, 'hostname', 'worker')}", force=True)


@task_postrun.connect
def _task_finished(sender: object = None, **kwargs: object) -> None:
    task = kwargs.get("task")
    hostname = getattr(getattr(task, "request", None), "hostname", None)
    if hostname:
        _heartbeat(f"worker {hostname}")


def _heartbeat(name: str, *, force: bool = False) -> None:
    global _last_heartbeat
    clock = time.monotonic()
    if not force and clock - _last_heartbeat < HEARTBEAT_EVERY:
        return
    _last_heartbeat = clock
    try:
        if _in_beat:
            # Beat has no task boundaries where Celery would recycle its connection: drop one
            # that a database restart broke, or this heartbeat would fail forever.
            close_old_connections()
        Heartbeat.beat(name, timezone.now())
    except DatabaseError:
        logger.warning("could not record the heartbeat of %s", name)
