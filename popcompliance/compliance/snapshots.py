"""Daily fleet snapshots for the trend charts: one row per day, upserted as the day goes on."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from popcompliance.compliance.models import CheckState, FleetSnapshot
from popcompliance.inventory.models import Server, ServerStatus


def take_snapshot(now: datetime) -> FleetSnapshot:
    """Count the fleet by status, and the servers failing each check, into today's row."""
    by_status = dict(
        Server.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    failing = dict(
        CheckState.objects.filter(status="fail")
        .values("check_id")
        .annotate(servers=Count("server", distinct=True))
        .values_list("check_id", "servers")
    )
    counts = {status.value: by_status.get(status.value, 0) for status in ServerStatus}
    snapshot, _ = FleetSnapshot.objects.update_or_create(
        day=now.date(),
        defaults={
            "total": sum(counts.values()),
            **counts,
            "failing_checks": failing,
            "taken_at": now,
        },
    )
    return snapshot
