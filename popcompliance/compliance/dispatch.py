"""Claiming due servers: the dispatcher's conditional UPDATE, one row at a time.

Several dispatchers (two beats by mistake, or a manual run beside beat) may run at once: each
claims a server only by moving its `next_scan_at` from the value it read, in one UPDATE that
matches the old value. Whoever loses that race updates no row and does not enqueue, so no
server is scanned twice for one slot.

A claim moves `next_scan_at` only a lease ahead (POPC_SCAN_LEASE); recording the scan sets the
real next time (recording.py). A scan that is never recorded (its worker was killed, the broker
dropped it) leaves the server due again when the lease ends: the database, not the broker's
redelivery, guarantees that every server is scanned.

Each row is claimed on its own: one that raises (a row no form would accept today, a bug) is
logged, pushed a lease ahead with the reason shown on its server page, and the others are
still dispatched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction

from popcompliance.inventory.models import Server

logger = logging.getLogger(__name__)


@dataclass
class Claims:
    """What one dispatcher run claimed, and the rows it could not (server name → reason)."""

    claimed: list[int] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def lease_length() -> timedelta:
    return timedelta(seconds=settings.POPC_SCAN_LEASE)


def lease_end(now: datetime) -> datetime:
    return now + lease_length()


def claim_due_servers(now: datetime, limit: int) -> list[int]:
    """Claim up to `limit` unpaused servers due at `now`, soonest first; their ids."""
    return claim_due(now, limit).claimed


def claim_due(now: datetime, limit: int) -> Claims:
    """Claim up to `limit` unpaused servers due at `now`, soonest first, each on its own."""
    due = list(
        Server.objects.filter(paused=False, next_scan_at__lte=now)
        .order_by("next_scan_at")
        .values_list("pk", "name", "next_scan_at")[:limit]
    )
    try:
        # The usual case, at one statement a row: every claim in one savepoint.
        with transaction.atomic():
            return Claims(claimed=[pk for pk, _, due_at in due if claim(pk, due_at, now)])
    except Exception:
        logger.warning("a claim failed: claiming the %d due servers one by one", len(due))
    claims = Claims()
    for pk, name, due_at in due:
        try:
            # A savepoint each: a row that fails takes back only its own claim.
            with transaction.atomic():
                won = claim(pk, due_at, now)
        except Exception as exc:
            claims.failed[name] = note_dispatch_failure([pk], now, exc)
            continue
        if won:
            claims.claimed.append(pk)
    return claims


def claim(pk: int, due_at: datetime, now: datetime) -> bool:
    """Move one server from `due_at` to the end of a lease, if no one else has; the claim
    clears a dispatch error left by an earlier run."""
    return bool(
        Server.objects.filter(pk=pk, next_scan_at=due_at, paused=False).update(
            next_scan_at=lease_end(now),
            scan_queued_at=now,
            dispatch_error="",
            dispatch_error_at=None,
        )
    )


def note_dispatch_failure(pks: list[int], now: datetime, exc: Exception) -> str:
    """Log why the servers `pks` could not be dispatched, show it on their pages and push them
    a lease ahead, so they neither block the run nor are retried every minute. The reason."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    logger.error("could not dispatch servers %s: %s", pks, reason, exc_info=exc)
    try:
        with transaction.atomic():
            # No scan of theirs is queued: a "Scan now" must not join one.
            Server.objects.filter(pk__in=pks).update(
                next_scan_at=lease_end(now),
                scan_queued_at=None,
                dispatch_error=reason,
                dispatch_error_at=now,
            )
    except DatabaseError:
        logger.exception("could not record the dispatch failure of servers %s", pks)
    return reason
