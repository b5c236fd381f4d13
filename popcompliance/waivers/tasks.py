"""Celery task of the waivers app (beat, every minute): settle the waivers whose start or
expiry passed (popcompliance.waivers.settle), and warn the owners of those expiring within a
week. Idempotent: the rows it reads are marked in the same transaction."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from popcompliance.alerts.tasks import deliver
from popcompliance.waivers import settle


@shared_task(name="waivers.settle")
def settle_waivers() -> dict[str, int]:
    now = timezone.now()
    changed = settle.settle(now)
    queued = settle.warn_expiring(now)
    if queued:
        deliver.delay()
    return {"servers": changed, "emails": queued}
