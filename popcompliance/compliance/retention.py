"""How long each kind of row lives, and the prune that enforces it.

- ScanRun (raw facts): POPC_SCAN_RUN_RETENTION_DAYS (30); the latest run of a server from
  each location is kept.
- Change (history, alert outbox): POPC_CHANGE_RETENTION_DAYS (730).
- Heartbeat: 7 days after a process was last seen (a worker that is gone for good).
- ImportJob (a background CSV import's report): 30 days.
- ScanRequest: a day (it only counts toward the per-minute rate limit).
- CheckState, Certificate, FleetSnapshot: current state and daily rows; they do not grow with
  scans, so they are kept (a certificate not seen for the change retention goes too).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max

from popcompliance.compliance.models import Certificate, Change, Heartbeat, ScanRequest, ScanRun
from popcompliance.inventory.models import ImportJob

HEARTBEAT_RETENTION = timedelta(days=7)
SCAN_REQUEST_RETENTION = timedelta(days=1)
IMPORT_JOB_RETENTION = timedelta(days=30)


def prune(now: datetime) -> dict[str, int]:
    """Delete what has outlived its retention; how many rows of each kind went."""
    run_cutoff = now - timedelta(days=settings.POPC_SCAN_RUN_RETENTION_DAYS)
    change_cutoff = now - timedelta(days=settings.POPC_CHANGE_RETENTION_DAYS)
    latest_runs = (
        ScanRun.objects.values("server", "location").annotate(latest=Max("id")).values("latest")
    )
    deleted = {
        "scan_runs": ScanRun.objects.filter(started_at__lt=run_cutoff)
        .exclude(pk__in=latest_runs)
        .delete()[0],
        "changes": Change.objects.filter(created_at__lt=change_cutoff).delete()[0],
        "heartbeats": Heartbeat.objects.filter(last_seen_at__lt=now - HEARTBEAT_RETENTION).delete()[
            0
        ],
        "scan_requests": ScanRequest.objects.filter(
            requested_at__lt=now - SCAN_REQUEST_RETENTION
        ).delete()[0],
        "certificates": Certificate.objects.filter(last_seen_at__lt=change_cutoff).delete()[0],
        "import_jobs": ImportJob.objects.filter(created_at__lt=now - IMPORT_JOB_RETENTION).delete()[
            0
        ],
    }
    return deleted
