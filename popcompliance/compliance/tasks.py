"""Celery tasks: thin wrappers that take ids, call the scanner and hand results to recording.

- dispatch_due_scans (beat, every minute): claims due servers, enqueues scan_server after commit.
- scan_server(id): scans one server and records the report; idempotent, so acks_late is safe.
- request_scan(server, user): "Scan now" from the dashboard and the API; joins a scan already
  queued or running, and applies the per-person rate limit.
- snapshot_fleet (hourly) and prune (daily): housekeeping.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from celery import shared_task
from celery.signals import after_task_publish, beat_init, task_postrun, worker_ready
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from popcompliance.alerts.tasks import process_changes
from popcompliance.compliance.dispatch import (
    Claims,
    claim_due,
    lease_length,
    note_dispatch_failure,
)
from popcompliance.compliance.models import Heartbeat, ScanPurpose, ScanRequest, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.retention import prune as prune_rows
from popcompliance.compliance.scanning import earlier_tls_support, scan_servers
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Server

logger = logging.getLogger(__name__)

# A database that is briefly away (restart, failover) is worth retrying; a bug is not.
TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="compliance.dispatch_due_scans")
def dispatch_due_scans() -> int:
    """Claim the due servers and enqueue one scan each, once the claims commit; records the
    dispatcher's heartbeat, with what failed, so the overview never calls a failing
    dispatcher "running"."""
    now = timezone.now()
    try:
        with transaction.atomic():
            claims = claim_due(now, settings.POPC_DISPATCH_BATCH)
            transaction.on_commit(partial(_send_claimed, claims, now))
    except Exception as exc:
        _dispatcher_failed(now, exc)
        raise
    failure = ""
    if claims.failed:
        what = "; ".join(f"{name} ({reason})" for name, reason in sorted(claims.failed.items()))
        failure = f"could not dispatch {what}"
    Heartbeat.beat("dispatcher", now, f"dispatched {len(claims.claimed)}", failure)
    return len(claims.claimed)


def _send_claimed(claims: Claims, now: datetime) -> None:
    """Enqueue the claimed scans. When the broker refuses one, the rest are not tried (each
    would wait for it again): their leases end and they are due again then, with the reason
    on their pages."""
    for sent, server_id in enumerate(claims.claimed):
        try:
            scan_server.apply_async((server_id,), {"dispatched_at": now.isoformat()})
        except Exception as exc:
            unsent = claims.claimed[sent:]
            del claims.claimed[sent:]
            reason = note_dispatch_failure(unsent, now, exc)
            claims.failed[f"{len(unsent)} claimed servers"] = reason
            return


def _dispatcher_failed(now: datetime, exc: Exception) -> None:
    logger.exception("the dispatcher failed")
    try:
        Heartbeat.fail("dispatcher", now, f"{type(exc).__name__}: {exc}")
    except DatabaseError:
        logger.exception("could not record the dispatcher's failure")


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
        _schedule_after_covering_scan(server)
        return "already scanned"
    worker = getattr(getattr(self, "request", None), "hostname", "") or ""
    try:
        # Scheduled scans reuse a recent TLS enumeration; manual and confirming ones redo it.
        reuse = purpose == ScanPurpose.SCHEDULED
        earlier = {server.pk: earlier_tls_support(server, timezone.now())} if reuse else None
        report = scan_servers([server], earlier_support=earlier)[server.pk]
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


def _schedule_after_covering_scan(server: Server) -> None:
    """A scan recorded after this claim (a manual one) covered the round: the next time counts
    from it, not from the claim's lease, unless an edit asked for a scan sooner meanwhile."""
    assert server.last_scan_at is not None
    if server.next_scan_at > timezone.now():
        claimed = Server.objects.filter(pk=server.pk, next_scan_at=server.next_scan_at)
        claimed.update(next_scan_at=server.next_scan_after(server.last_scan_at))


def _already_done(server: Server, purpose: str, dispatched_at: str | None) -> bool:
    """A scheduled task redelivered after its scan was stored (the worker died before it
    acknowledged) has nothing left to do."""
    if purpose != ScanPurpose.SCHEDULED or not dispatched_at or server.last_scan_at is None:
        return False
    return server.last_scan_at >= datetime.fromisoformat(dispatched_at)


def _record_crash(server: Server, purpose: str, worker: str, exc: Exception) -> None:
    """Keep a visible trace of a scan that crashed (a bug or a bad row), without hiding the
    exception from Celery. A crashed scheduled scan counts as the round's scan: the server's
    next time comes one interval on, as after a recorded one, so it cannot starve the
    dispatcher nor be retried at every lease's end."""
    logger.exception("scan of %s crashed", server)
    now = timezone.now()
    try:
        with transaction.atomic():
            ScanRun.objects.create(
                server=server,
                purpose=purpose,
                started_at=now,
                finished_at=now,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                worker=worker,
            )
            # The schedule as it is now: an edit during the scan may have asked for one sooner.
            server.refresh_from_db(fields=["next_scan_at"])
            server.save(update_fields=server.finish_scan(purpose == ScanPurpose.SCHEDULED, now))
    except DatabaseError:
        logger.exception("could not record the crash of %s", server)


class ScanNotQueued(Exception):
    """The task queue (the broker) could not take a requested scan."""


class TooManyScanRequests(Exception):
    """The person asked for more scans this minute than POPC_SCAN_REQUESTS_PER_MINUTE."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Too many scan requests: at most {limit} a minute. Wait a minute and try again."
        )


@dataclass(frozen=True)
class ScanRequested:
    """A "Scan now": the task that will scan, and whether the request joined a scan already
    queued or running rather than starting one."""

    task_id: str
    joined: bool

    @property
    def message(self) -> str:
        if self.joined:
            return "A scan of this server is already queued or running; your request joins it."
        return "Scan queued."


def request_scan(server: Server, user: AbstractBaseUser) -> ScanRequested:
    """Queue a manual scan of `server` for `user`, the one entry point of "Scan now" for the
    dashboard and the API; while a scan of it is queued or running (claimed, or requested
    within a lease) the request joins that one instead.

    The message is sent once the current transaction commits: at once outside one, as the
    dashboard and the API call it, so a broker that is down raises ScanNotQueued (logged) here
    and the next request may try again. Raises TooManyScanRequests past the person's rate
    limit (POPC_SCAN_REQUESTS_PER_MINUTE)."""
    now = timezone.now()
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        _check_rate(user, now)
        started = _mark_queued(server, now)
        ScanRequest.objects.create(user=user, server=server, requested_at=now, joined=not started)
    if not started:
        return ScanRequested("", joined=True)
    try:
        scan_server.apply_async_on_commit(
            (server.pk,), {"purpose": ScanPurpose.MANUAL}, task_id=task_id
        )
    except BrokerError as exc:
        logger.exception("could not queue a scan of %s", server)
        Server.objects.filter(pk=server.pk, scan_queued_at=now).update(scan_queued_at=None)
        raise ScanNotQueued(str(exc)) from exc
    return ScanRequested(task_id, joined=False)


def _check_rate(user: AbstractBaseUser, now: datetime) -> None:
    """Refuse a request past the person's limit. The person's row is locked until the request
    is recorded, so requests sent at once are counted one after the other."""
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    limit = settings.POPC_SCAN_REQUESTS_PER_MINUTE
    recent = ScanRequest.objects.filter(user=user, requested_at__gt=now - timedelta(minutes=1))
    if recent.count() >= limit:
        raise TooManyScanRequests(limit)


def _mark_queued(server: Server, now: datetime) -> bool:
    """Mark `server` as having a scan queued, unless one already is; True when this request
    starts the scan. One conditional UPDATE, so two requests at once never both start one. A
    mark older than a lease belongs to a scan that was lost: it no longer counts."""
    idle = Q(scan_queued_at__isnull=True) | Q(scan_queued_at__lte=now - lease_length())
    return bool(Server.objects.filter(idle, pk=server.pk).update(scan_queued_at=now))


@shared_task(name="compliance.snapshot_fleet")
def snapshot_fleet() -> None:
    take_snapshot(timezone.now())


@shared_task(name="compliance.prune")
def prune() -> dict[str, int]:
    return prune_rows(timezone.now())


# Each process proves it is alive at most this often: beat when the broker took a task it sent
# (its own heartbeat, "beat"), a worker when it starts and after each task ("worker
# <hostname>"). The dispatcher records what it did as "dispatcher". Beat sends alerts.deliver
# every minute, so while beat runs a worker heartbeat older than a few minutes means no worker
# takes tasks. A failure (beat cannot reach the broker, a worker's task failed, the dispatcher
# failed) is recorded at once on the heartbeat's `failure`, and cleared by the next success.
HEARTBEAT_EVERY = 30.0
_last_heartbeat = 0.0
_in_beat = False


@beat_init.connect
def _beat_started(sender: object = None, **kwargs: object) -> None:
    global _in_beat
    _in_beat = True
    _heartbeat("beat", force=True)


@after_task_publish.connect
def _task_sent(sender: object = None, **kwargs: object) -> None:
    # After the broker took the task: a beat that cannot send must not look alive.
    if _in_beat:
        _heartbeat("beat")


def beat_failed(failure: str) -> None:
    """Beat could not send its tasks (the broker is away): say so on its heartbeat, and record
    the next task it does send at once, so the failure clears as soon as sending works."""
    global _last_heartbeat
    _last_heartbeat = 0.0
    try:
        close_old_connections()
        Heartbeat.fail("beat", timezone.now(), failure)
    except DatabaseError:
        logger.warning("could not record that beat failed: %s", failure)


@worker_ready.connect
def _worker_started(sender: object = None, **kwargs: object) -> None:
    _heartbeat(f"worker {getattr(sender, 'hostname', 'worker')}", force=True)


@task_postrun.connect
def _task_finished(sender: object = None, **kwargs: object) -> None:
    task = kwargs.get("task")
    hostname = getattr(getattr(task, "request", None), "hostname", None)
    if not hostname:
        return
    if kwargs.get("state") == "FAILURE":
        # At once, and the next success clears it: a worker whose tasks fail is not healthy.
        failure = f"{getattr(task, 'name', 'a task')} failed: {kwargs.get('retval')!r}"
        _heartbeat(f"worker {hostname}", force=True, failure=failure)
    else:
        _heartbeat(f"worker {hostname}")


def _heartbeat(name: str, *, force: bool = False, failure: str = "") -> None:
    """Record that `name` is alive (and what failed, if anything); a failure forces the next
    heartbeat too, so it clears as soon as the process works again."""
    global _last_heartbeat
    clock = time.monotonic()
    if not force and clock - _last_heartbeat < HEARTBEAT_EVERY:
        return
    _last_heartbeat = 0.0 if failure else clock
    try:
        if _in_beat:
            # Beat has no task boundaries where Celery would recycle its connection: drop one
            # that a database restart broke, or this heartbeat would fail forever.
            close_old_connections()
        Heartbeat.beat(name, timezone.now(), failure=failure)
    except DatabaseError:
        logger.warning("could not record the heartbeat of %s", name)
