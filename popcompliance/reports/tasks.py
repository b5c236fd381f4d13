"""Celery task of the reports app: the monthly report (beat, hourly; cheap once the month's is
queued), and the retention of stored reports."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from popcompliance.alerts.tasks import deliver
from popcompliance.reports.models import StoredReport
from popcompliance.reports.monthly import send_monthly


@shared_task(name="reports.send_monthly")
def send_monthly_report() -> int:
    now = timezone.now()
    StoredReport.prune(now)
    queued = send_monthly(now)
    if queued:
        deliver.delay()
    return queued
