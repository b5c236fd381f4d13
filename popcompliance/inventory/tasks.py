"""Celery tasks of the inventory: a large CSV import, run by a worker instead of the web request
that uploaded it (the page polls its ImportJob)."""

from __future__ import annotations

import io
import logging

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from popcompliance.audit.context import acting_as
from popcompliance.audit.models import Source
from popcompliance.inventory import csvio
from popcompliance.inventory.models import IMPORT_TIME_LIMIT, ImportJob, ImportState

logger = logging.getLogger(__name__)

# A hundred thousand rows take about a minute: far more than a scan's limits.
IMPORT_HARD_TIME_LIMIT = int(IMPORT_TIME_LIMIT.total_seconds())


@shared_task(
    name="inventory.import_servers",
    soft_time_limit=IMPORT_HARD_TIME_LIMIT - 60,
    time_limit=IMPORT_HARD_TIME_LIMIT,
)
def import_servers(job_id: int) -> str:
    """Run a queued import, saving its progress after every chunk. A job already running is
    left alone, unless it ran past the time limit: its worker died, and this delivery of the
    task takes it over (importing a file twice changes nothing the second time)."""
    now = timezone.now()
    takeable = Q(state=ImportState.QUEUED) | Q(
        state=ImportState.RUNNING, started_at__lt=now - IMPORT_TIME_LIMIT
    )
    claimed = ImportJob.objects.filter(takeable, pk=job_id)
    if not claimed.update(state=ImportState.RUNNING, started_at=now):
        return "not queued"
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)

    def progress(done: int, total: int, result: csvio.ImportResult) -> None:
        job.record_progress(done, total, result.counts())

    label = f"import of {job.file_name}"
    try:
        with acting_as(label, Source.WEB, user=job.created_by):
            result = csvio.import_csv(io.StringIO(job.text, newline=""), progress)
    except csvio.CsvFileError as exc:
        job.end(ImportState.FAILED, [], f"{exc}. Nothing was imported.")
        return "refused"
    except Exception as exc:
        logger.exception("the import %s crashed", job_id)
        job.end(ImportState.FAILED, [], f"The import stopped: {type(exc).__name__}: {exc}")
        raise
    job.record_progress(job.total_rows, job.total_rows, result.counts())
    job.end(ImportState.DONE, [[error.line, error.message] for error in result.errors])
    return result.summary()
