"""Celery tasks of the inventory: a large CSV import, run by a worker instead of the web request
that uploaded it (the page polls its ImportJob)."""

from __future__ import annotations

import io
import logging

from celery import shared_task

from popcompliance.audit.context import acting_as
from popcompliance.audit.models import Source
from popcompliance.inventory import csvio
from popcompliance.inventory.models import ImportJob, ImportState

logger = logging.getLogger(__name__)

# A hundred thousand rows take about a minute: far more than a scan's limits.
IMPORT_SOFT_TIME_LIMIT = 1800


@shared_task(
    name="inventory.import_servers",
    soft_time_limit=IMPORT_SOFT_TIME_LIMIT,
    time_limit=IMPORT_SOFT_TIME_LIMIT + 60,
)
def import_servers(job_id: int) -> str:
    """Run a queued import, saving its progress after every chunk; idempotent (a job already
    started is left alone, and importing a file twice changes nothing the second time)."""
    claimed = ImportJob.objects.filter(pk=job_id, state=ImportState.QUEUED)
    if not claimed.update(state=ImportState.RUNNING):
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
