"""Claiming due servers: the dispatcher's conditional UPDATE.

Several dispatchers (two beats by mistake, or a manual run beside beat) may run at once: each
claims a server only by moving its `next_scan_at` from the value it read to the next slot, in
one UPDATE that matches the old value. Whoever loses that race updates no row and does not
enqueue, so no server is scanned twice for one slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from popcompliance.inventory.models import Server


def claim_due_servers(now: datetime, limit: int) -> list[int]:
    """Claim up to `limit` unpaused servers due at `now`, soonest first; their ids."""
    due = (
        Server.objects.filter(paused=False, next_scan_at__lte=now)
        .order_by("next_scan_at")
        .values_list("pk", "next_scan_at", "scan_interval")[:limit]
    )
    claimed = []
    for pk, due_at, interval in due:
        # The next slot counts from now, not from when it was due: after downtime the fleet is
        # scanned once, not once per missed slot.
        next_slot = now + timedelta(minutes=interval)
        won = Server.objects.filter(pk=pk, next_scan_at=due_at, paused=False).update(
            next_scan_at=next_slot
        )
        if won:
            claimed.append(pk)
    return claimed
