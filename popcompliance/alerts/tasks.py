"""Celery tasks of the alerts app: thin wrappers around lifecycle, expiry and delivery.

- process_changes(server_id=None): after a scan recorded changes (compliance.tasks.scan_server
  enqueues it) and every minute on beat, for what `manage.py scan` recorded or a lost task.
- send_reminders (beat, every 5 minutes), check_certificate_expiry (beat, hourly).
- send_digests (beat, every 15 minutes): the daily digests, once a day from POPC_DIGEST_HOUR.
- release_held (beat, every minute): the alerts held during a maintenance window, once it ended.
- deliver (beat, every minute, and right after anything was queued): the outbox to SMTP.
- prune (beat, daily).

All are idempotent: the rows they read are claimed or marked in the same transaction.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from popcompliance.alerts import delivery, digest, expiry, holding, lifecycle


@shared_task(name="alerts.process_changes")
def process_changes(server_id: int | None = None) -> int:
    queued = lifecycle.process_pending_changes(timezone.now(), server_id)
    if queued:
        deliver.delay()
    return queued


@shared_task(name="alerts.send_reminders")
def send_reminders() -> int:
    queued = lifecycle.send_reminders(timezone.now())
    if queued:
        deliver.delay()
    return queued


@shared_task(name="alerts.release_held")
def release_held() -> int:
    queued = holding.release_held(timezone.now())
    if queued:
        deliver.delay()
    return queued


@shared_task(name="alerts.check_certificate_expiry")
def check_certificate_expiry() -> int:
    queued = expiry.check_expiry(timezone.now())
    if queued:
        deliver.delay()
    return queued


@shared_task(name="alerts.send_digests")
def send_digests() -> int:
    queued = digest.send_digests(timezone.now())
    if queued:
        deliver.delay()
    return queued


@shared_task(name="alerts.deliver")
def deliver() -> dict[str, int]:
    return dict(delivery.deliver_pending())


@shared_task(name="alerts.prune")
def prune() -> dict[str, int]:
    return lifecycle.prune(timezone.now())
