"""MaintenanceWindow: a planned span (one-off or recurring) during which a server, every
server of a tag, or every server of a site is under maintenance.

Scans keep running and history is kept during a window; what changes is the alerts: the
Changes recorded meanwhile are marked `during_maintenance` (compliance.recording), and the
alerts they open or escalate are held until the window ends (alerts.holding).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse

from popcompliance.inventory.models import Server, Tag
from popcompliance.limits import MAINTENANCE_MINUTES_VALIDATORS, validate_plain_text
from popcompliance.maintenance import schedule
from popcompliance.maintenance.schedule import Occurrence

logger = logging.getLogger(__name__)

COMMENT_MAX_LENGTH = 2000


class Recurrence(models.TextChoices):
    ONCE = "once", "Once (start and end)"
    RRULE = "rrule", "Recurring: RRULE"
    CRON = "cron", "Recurring: cron expression"


# Exactly one of a server, a tag or a site says which servers the window covers.
ONE_SCOPE = (
    Q(server__isnull=False, tag__isnull=True, site="")
    | Q(server__isnull=True, tag__isnull=False, site="")
    | (Q(server__isnull=True, tag__isnull=True) & ~Q(site=""))
)


class MaintenanceWindowQuerySet(models.QuerySet["MaintenanceWindow"]):
    def covering(self, server: Server) -> MaintenanceWindowQuerySet:
        """The windows whose scope includes `server` (its id, one of its tags, its site)."""
        scope = Q(server=server) | Q(tag__in=Tag.objects.filter(servers=server))
        if server.site:
            scope |= Q(site=server.site)
        return self.filter(scope)

    def may_be_on(self, start: datetime, end: datetime) -> MaintenanceWindowQuerySet:
        """A cheap prefilter: the windows that may have an occurrence overlapping [start,
        end) (the rules themselves are read in Python)."""
        once = Q(recurrence=Recurrence.ONCE, starts_at__lt=end, ends_at__gt=start)
        recurring = ~Q(recurrence=Recurrence.ONCE) & Q(starts_at__lt=end)
        return self.filter(once | recurring)


class MaintenanceWindow(models.Model):
    """A planned maintenance of a server, a tag's servers or a site's servers.

    One-off: from `starts_at` to `ends_at`. Recurring: `rule` (an RRULE whose first start is
    `starts_at`, or a cron expression firing from `starts_at` on), each occurrence lasting
    `duration_minutes`. Rules and typed times are read in `time_zone`; stored times are UTC.
    """

    name = models.CharField(max_length=200, validators=[validate_plain_text])
    comment = models.TextField(
        blank=True, max_length=COMMENT_MAX_LENGTH, help_text="What is done, who to call."
    )
    server = models.ForeignKey(
        Server,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="maintenance_windows",
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, null=True, blank=True, related_name="maintenance_windows"
    )
    site = models.CharField(max_length=100, blank=True, validators=[validate_plain_text])
    recurrence = models.CharField(
        "repeats", max_length=10, choices=Recurrence.choices, default=Recurrence.ONCE
    )
    starts_at = models.DateTimeField(
        help_text="Once: when it starts. Recurring: the first moment an occurrence may start "
        "(an RRULE also takes its time of day from it unless it says BYHOUR)."
    )
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Once: when it ends.")
    rule = models.CharField(
        max_length=500,
        blank=True,
        help_text=f"Recurring: an RRULE such as {schedule.RRULE_EXAMPLE}, or a cron expression "
        f"such as {schedule.CRON_EXAMPLE} (Sundays at 02:00).",
    )
    duration_minutes = models.PositiveIntegerField(
        "each lasts (minutes)",
        null=True,
        blank=True,
        validators=MAINTENANCE_MINUTES_VALIDATORS,
        help_text="Recurring: how long each occurrence lasts.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="The IANA time zone (Europe/Paris) in which the times and the rule are read.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=ONE_SCOPE,
                name="maintenance_one_scope",
                violation_error_message="Choose exactly one of a server, a tag or a site.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Its row on the maintenance page (the edit form is for operators only)."""
        return f"{reverse('maintenance:list')}#window-{self.pk}"

    @property
    def scope_label(self) -> str:
        if self.server_id:
            return f"server {self.server}"
        return f"tag {self.tag}" if self.tag_id else f"site {self.site}"

    @property
    def recurring(self) -> bool:
        return self.recurrence != Recurrence.ONCE

    @property
    def zone(self) -> ZoneInfo:
        return schedule.zone(self.time_zone)

    @cached_property
    def timing(self) -> schedule.Schedule:
        """The window's occurrences. clean() has read the rule of every saved window; one
        that cannot be read anyway (written around the forms) is never on, and says so in the
        log rather than break the scan that asks."""
        try:
            return self._timing()
        except ValueError as exc:
            logger.warning("maintenance window %s is never on: %s", self.pk, exc)
            return schedule.Never()

    def _timing(self) -> schedule.Schedule:
        if self.recurrence == Recurrence.ONCE:
            if self.ends_at is None:
                raise ValueError("a one-off window without its end")
            return schedule.Once(self.starts_at, self.ends_at)
        duration = timedelta(minutes=self.duration_minutes or 0)
        if self.recurrence == Recurrence.CRON:
            expression = schedule.check_cron(self.rule)
            return schedule.CronSchedule(expression, self.zone, self.starts_at, duration)
        return schedule.RRuleSchedule(
            schedule.parse_rrule(self.rule, self.starts_at, self.zone), duration
        )

    def occurrence_at(self, at: datetime) -> Occurrence | None:
        return self.timing.covering(at)

    def next_occurrence(self, after: datetime) -> Occurrence | None:
        return self.timing.next_after(after)

    def local(self, moment: datetime) -> str:
        """`moment` as the window's own clock reads it, with the zone's abbreviation."""
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def clean(self) -> None:
        """The rule reads, and each kind has its own fields; errors go to the field."""
        try:
            zone = self.zone
        except ValueError as exc:
            raise ValidationError({"time_zone": str(exc)}) from exc
        if self.starts_at is not None:
            self.starts_at = self.starts_at.replace(second=0, microsecond=0)
        if self.recurrence == Recurrence.ONCE:
            self._clean_once()
        else:
            self._clean_recurring(zone)
        self.__dict__.pop("timing", None)

    def _clean_once(self) -> None:
        if self.ends_at is None:
            raise ValidationError({"ends_at": "A one-off window needs its end."})
        self.ends_at = self.ends_at.replace(second=0, microsecond=0)
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must come after the start."})
        self.rule, self.duration_minutes = "", None

    def _clean_recurring(self, zone: ZoneInfo) -> None:
        errors = {}
        if not self.duration_minutes:
            errors["duration_minutes"] = "A recurring window needs the length of each occurrence."
        try:
            if self.recurrence == Recurrence.CRON:
                self.rule = schedule.check_cron(self.rule)
            elif self.starts_at is not None:
                schedule.parse_rrule(self.rule, self.starts_at, zone)
        except ValueError as exc:
            errors["rule"] = str(exc)
        if errors:
            raise ValidationError(errors)
        self.ends_at = None
