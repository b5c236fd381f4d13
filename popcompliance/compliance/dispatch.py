"""Claiming due scans: the dispatcher's conditional UPDATE, one server × location at a time.

Each server is probed from one or more locations (popcompliance.locations), each with its own
schedule (inventory.ServerLocation). Several dispatchers (two beats by mistake, or a manual run
beside beat) may run at once: each claims a server × location only by moving its
`next_scan_at` from the value it read, in one UPDATE that matches the old value. Whoever loses
that race updates no row and does not enqueue, so nothing is scanned twice from one location
for one slot.

A claim moves `next_scan_at` only a lease ahead (POPC_SCAN_LEASE); recording the scan sets the
real next time (recording.py). A scan that is never recorded (its worker was killed, the broker
dropped it) leaves that server × location due again when the lease ends: the database, not the
broker's redelivery, guarantees that every server is scanned from every location.

Locations whose workers are silent (ops.heartbeats) are not claimed: their rows stay due, so
nothing piles up in a queue no one reads, and they are dispatched as soon as a worker serves
the queue again.

Each row is claimed on its own: one that raises (a row no form would accept today, a bug) is
logged, pushed a lease ahead with the reason shown on its server page, and the others are
still dispatched.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Subquery

from popcompliance.inventory.models import Server, ServerLocation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One server to scan from one location."""

    server_id: int
    location: str


@dataclass
class Claims:
    """What one dispatcher run claimed, and the rows it could not (server name → reason)."""

    claimed: list[Claim] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def servers(self) -> list[int]:
        """The servers claimed from at least one location, each once, in claim order."""
        return list(dict.fromkeys(claim.server_id for claim in self.claimed))


def lease_length() -> timedelta:
    return timedelta(seconds=settings.POPC_SCAN_LEASE)


def lease_end(now: datetime) -> datetime:
    return now + lease_length()


def claim_due_servers(now: datetime, limit: int) -> list[int]:
    """Claim up to `limit` due server × location rows; the servers claimed, each once."""
    return claim_due(now, limit).servers


def claim_due(now: datetime, limit: int, served: Collection[str] | None = None) -> Claims:
    """Claim up to `limit` due rows of unpaused servers, soonest first, each on its own;
    `served` (when given) limits them to the locations whose workers are alive."""
    schedule_unscheduled(now, limit)
    rows = ServerLocation.objects.filter(server__paused=False, next_scan_at__lte=now)
    if served is not None:
        rows = rows.filter(location__in=served)
    due = list(
        rows.order_by("next_scan_at").values_list(
            "pk", "server_id", "server__name", "location", "next_scan_at"
        )[:limit]
    )
    try:
        # The usual case, at one statement a row: every claim in one savepoint.
        with transaction.atomic():
            claims = Claims(
                claimed=[Claim(sid, loc) for pk, sid, _, loc, at in due if claim(pk, at, now)]
            )
            mark_claimed(claims.servers, now)
            return claims
    except Exception:
        logger.warning("a claim failed: claiming the %d due rows one by one", len(due))
    claims = Claims()
    for pk, server_id, name, location, due_at in due:
        try:
            # A savepoint each: a row that fails takes back only its own claim.
            with transaction.atomic():
                won = claim(pk, due_at, now)
                if won:
                    mark_claimed([server_id], now)
        except Exception as exc:
            claims.failed[name] = note_dispatch_failure([Claim(server_id, location)], now, exc)
            continue
        if won:
            claims.claimed.append(Claim(server_id, location))
    return claims


def claim(pk: int, due_at: datetime, now: datetime) -> bool:
    """Move one server × location from `due_at` to the end of a lease, if no one else has.
    The condition is on the row alone: PostgreSQL rechecks it against a row a concurrent
    claim has just moved, where a condition on a join (the server's `paused`) would pass on
    the old snapshot and claim it twice."""
    return bool(
        ServerLocation.objects.filter(pk=pk, next_scan_at=due_at).update(
            next_scan_at=lease_end(now), scan_queued_at=now
        )
    )


def earliest_schedule() -> Subquery:
    """A server's `next_scan_at` as its locations' schedules have it: the earliest."""
    rows = ServerLocation.objects.filter(server=OuterRef("pk")).order_by("next_scan_at")
    return Subquery(rows.values("next_scan_at")[:1])


def mark_claimed(server_ids: list[int], now: datetime) -> None:
    """The servers have a scan queued (a "Scan now" joins it) and their next time follows
    their locations'; the claim clears a dispatch error left by an earlier run."""
    if server_ids:
        Server.objects.filter(pk__in=server_ids).update(
            scan_queued_at=now,
            dispatch_error="",
            dispatch_error_at=None,
            next_scan_at=earliest_schedule(),
        )


def schedule_unscheduled(now: datetime, limit: int) -> None:
    """Give due servers that have no schedule rows theirs (servers inserted in bulk, as the CSV
    import does, skip Server.save), so they are claimed like the others. One query when there
    is none."""
    missing = (
        Server.objects.filter(paused=False, next_scan_at__lte=now)
        .exclude(Exists(ServerLocation.objects.filter(server=OuterRef("pk"))))
        .only("pk", "locations", "next_scan_at")[:limit]
    )
    rows = [
        ServerLocation(server_id=server.pk, location=location, next_scan_at=server.next_scan_at)
        for server in missing
        for location in server.probe_locations
    ]
    if rows:
        ServerLocation.objects.bulk_create(rows, ignore_conflicts=True)


def note_dispatch_failure(claims: list[Claim], now: datetime, exc: Exception) -> str:
    """Log why these server × location rows could not be dispatched, show it on their servers'
    pages and push them a lease ahead, so they neither block the run nor are retried every
    minute. The reason."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    server_ids = sorted({c.server_id for c in claims})
    logger.error("could not dispatch servers %s: %s", server_ids, reason, exc_info=exc)
    try:
        with transaction.atomic():
            for location in {c.location for c in claims}:
                ids = [c.server_id for c in claims if c.location == location]
                # No scan of theirs is queued: a "Scan now" must not join one.
                ServerLocation.objects.filter(server__in=ids, location=location).update(
                    next_scan_at=lease_end(now), scan_queued_at=None
                )
            Server.objects.filter(pk__in=server_ids).update(
                next_scan_at=earliest_schedule(),
                scan_queued_at=None,
                dispatch_error=reason,
                dispatch_error_at=now,
            )
    except DatabaseError:
        logger.exception("could not record the dispatch failure of servers %s", server_ids)
    return reason
