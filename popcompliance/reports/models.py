"""The monthly report's schedule, and the reports stored to be mailed.

- ReportSchedule: one row, who gets the monthly report and of which scope (set by admins on
  the Reports page, recorded in the audit log).
- StoredReport: a PDF made for mailing, referenced by each recipient's Notification (the
  alerts outbox attaches it), so a retry sends the very document first made. Kept
  RETENTION_DAYS, as the record of what auditors were sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from popcompliance.inventory.models import validate_owner_emails
from popcompliance.reports.params import parse_profile, parse_scope

RETENTION_DAYS = 400


def validate_scope(value: str) -> None:
    try:
        parse_scope(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def validate_profile(value: str) -> None:
    try:
        parse_profile(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class ReportSchedule(models.Model):
    """Who receives the monthly compliance report: on the first of each month, the PDF as of
    the end of the month before goes to each address. No address: nothing is sent."""

    recipients = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_owner_emails],
        help_text="Auditors' email addresses.",
    )
    scope = models.CharField(max_length=160, default="all", validators=[validate_scope])
    tls_profile = models.CharField(
        "TLS profile", max_length=40, blank=True, validators=[validate_profile]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "report schedule"

    def __str__(self) -> str:
        return "monthly report"

    def get_absolute_url(self) -> str:
        return reverse("reports:schedule")

    @classmethod
    def current(cls) -> ReportSchedule:
        """The one schedule; before an admin saved it, one with no recipient (not stored, so
        reading it writes nothing)."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class StoredReport(models.Model):
    """A report made to be mailed: `key` names the period ("monthly 2026-06"), so a month's
    report is made and queued once."""

    key = models.CharField(max_length=100, unique=True)
    day = models.DateField(help_text="As of the end of this day.")
    scope = models.CharField(max_length=160)
    tls_profile = models.CharField(max_length=40, blank=True)
    filename = models.CharField(max_length=200)
    pdf = models.BinaryField()
    summary = models.JSONField(default=dict, help_text="Servers per status, as the PDF says.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key} ({self.scope})"

    def get_absolute_url(self) -> str:
        return reverse("admin:reports_storedreport_change", args=[self.pk])

    @classmethod
    def prune(cls, now: datetime) -> int:
        """Delete those older than RETENTION_DAYS (and their notifications); how many."""
        old = cls.objects.filter(created_at__lt=now - timedelta(days=RETENTION_DAYS))
        _, deleted = old.delete()
        return deleted.get(cls._meta.label, 0)
