"""Celery tasks: thin wrappers that take ids, call the scanner and hand results to recording.

- dispatch_due_scans (beat, every minute): claims due server × location rows, enqueues
  scan_server on each location's queue after commit, and pings the locations' queues.
- scan_server(id, location=…): scans one server from one location (the worker that takes it
  runs there) and records the report; idempotent, so acks_late is safe.
- request_scan(server, user): "Scan now" from the dashboard and the API; joins a scan already
  queued or running, and applies the per-person rate limit.
- snapshot_fleet (hourly) and prune (daily): housekeeping.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from popcompliance import locations
from popcompliance.alerts.tasks import process_changes
from popcompliance.compliance.dispatch import (
    Claim,
    Claims,
    claim_due,
    earliest_schedule,
    lease_end,
    lease_length,
    note_dispatch_failure,
)
from popcompliance.compliance.models import ScanPurpose, ScanRequest
from popcompliance.compliance.recording import record_crash, record_report
from popcompliance.compliance.retention import prune as prune_rows
from popcompliance.compliance.scanning import (
    ScanFailed,
    crash_description,
    earlier_tls_support,
    scan_servers,
)
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Server, ServerLocation
from popcompliance.ops import heartbeats

logger = logging.getLogger(__name__)

# A database that is briefly away (restart, failover) is worth retrying; a bug is not.
TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="compliance.dispatch_due_scans")
def dispatch_due_scans() -> int:
    """Claim the due server × location rows of the locations whose workers are alive and
    enqueue one scan each on its location's queue, once the claims commit; ping the other
    locations' queues; record the dispatcher's heartbeat, with what failed, so the overview
    never calls a failing dispatcher "running". The number of scans claimed."""
    now = timezone.now()
    try:
        with transaction.atomic():
            served = heartbeats.served_locations(now)
            claims = claim_due(now, settings.POPC_DISPATCH_BATCH, served)
            transaction.on_commit(partial(_send_claimed, claims, now))
    except Exception as exc:
        logger.exception("the dispatcher failed")
        heartbeats.dispatcher_failed(now, f"{type(exc).__name__}: {exc}")
        raise
    heartbeats.send_pings(now)
    failure = ""
    if claims.failed:
        what = "; ".join(f"{name} ({reason})" for name, reason in sorted(claims.failed.items()))
        failure = f"could not dispatch {what}"
    heartbeats.dispatcher_ran(now, f"dispatched {len(claims.claimed)}", failure)
    return len(claims.claimed)


def _send_claimed(claims: Claims, now: datetime) -> None:
    """Enqueue the claimed scans, each on its location's queue. When the broker refuses one,
    the rest are not tried (each would wait for it again): their leases end and they are due
    again then, with the reason on their pages. A scan expires with its lease: a location
    whose workers come back after it ended must not run it beside the one dispatched since."""
    for sent, claim in enumerate(claims.claimed):
        try:
            send_scan(claim, {"dispatched_at": now.isoformat()}, expires=lease_end(now))
        except Exception as exc:
            unsent = claims.claimed[sent:]
            del claims.claimed[sent:]
            reason = note_dispatch_failure(unsent, now, exc)
            servers = len({claim.server_id for claim in unsent})
            claims.failed[f"{servers} claimed servers"] = reason
            return


def send_scan(claim: Claim, kwargs: dict[str, Any], **options: Any) -> None:
    """Put one scan of a server from one location on that location's queue."""
    kwargs = {**kwargs, **location_argument(claim.location)}
    queue = locations.queue(claim.location)
    scan_server.apply_async((claim.server_id,), kwargs, queue=queue, **options)


def location_argument(location: str) -> dict[str, str]:
    """scan_server's `location` keyword: none for the default location, so a deployment
    without locations sends the messages it always sent."""
    return {} if location == locations.DEFAULT_LOCATION else {"location": location}


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
    location: str = locations.DEFAULT_LOCATION,
) -> str:
    """Scan one server from `location` and store the result; re-probe a suspected regression
    shortly after, from the same location."""
    server = Server.objects.select_related("policy").filter(pk=server_id).first()
    if server is None:
        return "gone"
    if location not in _listed_locations(server):
        # Taken off the server's locations after this scan was sent.
        logger.warning("%s is no longer probed from %s: scan dropped", server, location)
        return f"not probed from {location}"
    if purpose == ScanPurpose.SCHEDULED and dispatched_at:
        schedule = server.schedules.filter(location=location).first()
        if schedule is not None and _already_done(schedule, purpose, dispatched_at):
            _schedule_after_covering_scan(server, schedule)
            return "already scanned"
    worker = getattr(getattr(self, "request", None), "hostname", "") or ""
    try:
        # Scheduled scans reuse a recent TLS enumeration; manual and confirming ones redo it.
        reuse = purpose == ScanPurpose.SCHEDULED
        now = timezone.now()
        earlier = {server.pk: earlier_tls_support(server, now, location)} if reuse else None
        report = scan_servers([server], earlier_support=earlier)[server.pk]
        if report.failure:
            raise ScanFailed(report.failure)
        recorded = record_report(
            server.pk, report, purpose=purpose, worker=worker, location=location
        )
    except TRANSIENT:
        raise
    except Exception as exc:
        record_crash(server, location, purpose, worker, crash_description(exc))
        raise
    if recorded.changes:
        process_changes.delay(server.pk)  # alerts go out now, not at the next beat
    if recorded.needs_confirmation:
        send_scan(
            Claim(server_id, location),
            {"purpose": ScanPurpose.CONFIRMATION},
            countdown=settings.POPC_CONFIRMATION_DELAY,
        )
    return f"{len(recorded.changes)} changes"


def _listed_locations(server: Server) -> list[str]:
    """The locations the server's row lists, read as written: a worker whose POPC_LOCATIONS
    lacks one must still scan for it, not drop its scans."""
    return [name.strip() for name in server.locations.split(",") if name.strip()] or [
        locations.DEFAULT_LOCATION
    ]


def _schedule_after_covering_scan(server: Server, schedule: ServerLocation) -> None:
    """A scan recorded after this claim (a manual one) covered the round: the next time from
    this location counts from it, not from the claim's lease, unless an edit asked for a scan
    sooner meanwhile."""
    assert schedule.last_scan_at is not None
    if schedule.next_scan_at > timezone.now():
        claimed = ServerLocation.objects.filter(pk=schedule.pk, next_scan_at=schedule.next_scan_at)
        claimed.update(next_scan_at=server.next_scan_after(schedule.last_scan_at))
        mirror_schedule([server.pk])


def mirror_schedule(server_ids: list[int]) -> None:
    """Set the servers' `next_scan_at` to the earliest of their locations'."""
    Server.objects.filter(pk__in=server_ids).update(next_scan_at=earliest_schedule())


def _already_done(schedule: ServerLocation, purpose: str, dispatched_at: str | None) -> bool:
    """A scheduled task redelivered after its scan was stored (the worker died before it
    acknowledged) has nothing left to do."""
    if purpose != ScanPurpose.SCHEDULED or not dispatched_at or schedule.last_scan_at is None:
        return False
    return schedule.last_scan_at >= datetime.fromisoformat(dispatched_at)


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
        for n, location in enumerate(server.probe_locations):
            # The first scan carries the id the caller follows; the others get their own.
            scan_server.apply_async_on_commit(
                (server.pk,),
                {"purpose": ScanPurpose.MANUAL, **location_argument(location)},
                task_id=task_id if n == 0 else None,
                queue=locations.queue(location),
                expires=lease_end(now),
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
    started = bool(Server.objects.filter(idle, pk=server.pk).update(scan_queued_at=now))
    if started:
        # Each location's scan is queued: the request is joined until the last is recorded.
        server.schedules.update(scan_queued_at=now)
    return started


@shared_task(name="compliance.snapshot_fleet")
def snapshot_fleet() -> None:
    take_snapshot(timezone.now())


@shared_task(name="compliance.prune")
def prune() -> dict[str, int]:
    return prune_rows(timezone.now())
