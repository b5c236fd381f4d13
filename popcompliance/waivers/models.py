"""Waiver: a formal exception for one check of a server, or of every server of a tag.

An admin grants it with a justification and an expiry (at most MAX_TERM after it starts).
While it holds, the check's failure shows as `excepted` and its alerts are held; the raw
check state is still stored and judged as before, so when the waiver ends (expiry, or an
admin revoking it) the check is judged again from the facts without a rescan
(popcompliance.waivers.effect). Waivers are never deleted: they are the evidence of who
accepted which risk, for how long.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse

import scanner
from popcompliance.inventory.models import Server, Tag
from popcompliance.limits import validate_plain_text

# An exception that outlives a year is a forgotten one: it must be granted again, knowingly.
MAX_TERM = timedelta(days=366)
JUSTIFICATION_MAX_LENGTH = 4000
# The owners hear this long before a waiver expires (popcompliance.waivers.effect).
WARN_BEFORE = timedelta(days=7)

# Exactly one of a server or a tag says which servers the waiver covers.
ONE_SCOPE = Q(server__isnull=False, tag__isnull=True) | Q(server__isnull=True, tag__isnull=False)


def validate_check_id(value: str) -> None:
    if value not in scanner.CHECKS:
        raise ValidationError(
            f"{value!r} is not a check of the catalog (for example "
            f"{scanner.CHECK_IDS[0]}); see docs/checks.md for the list.",
            code="unknown_check",
        )


class WaiverQuerySet(models.QuerySet["Waiver"]):
    def in_force(self, when: datetime) -> WaiverQuerySet:
        """The waivers holding at `when`: granted, started, not expired, not revoked by then.
        "Granted by then" keeps the past as it was: a waiver granted today with last month's
        start does not turn last month's reports and as-of views into exceptions."""
        not_revoked = Q(revoked_at__isnull=True) | Q(revoked_at__gt=when)
        return self.filter(
            not_revoked, created_at__lte=when, starts_at__lte=when, expires_at__gt=when
        )

    def covering(self, server: Server) -> WaiverQuerySet:
        """The waivers of `server` itself or of one of its tags."""
        return self.filter(Q(server=server) | Q(tag__in=Tag.objects.filter(servers=server)))


class Waiver(models.Model):
    """An exception for `check_id` on `server`, or on every server of `tag` (exactly one),
    from `starts_at` until `expires_at` (or `revoked_at` when an admin ended it early),
    granted by `approver` for the reason in `justification`."""

    server = models.ForeignKey(
        Server, on_delete=models.CASCADE, null=True, blank=True, related_name="waivers"
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, null=True, blank=True, related_name="waivers"
    )
    check_id = models.CharField("check", max_length=40, validators=[validate_check_id])
    justification = models.TextField(
        max_length=JUSTIFICATION_MAX_LENGTH,
        validators=[validate_plain_text],
        help_text="Why the risk is accepted, and what mitigates it meanwhile.",
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="waivers_granted"
    )
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="At most a year after it starts.")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="waivers_revoked",
    )
    # When the owners were told it expires within WARN_BEFORE (once per waiver).
    expiry_warned_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When its start and its end were last settled into the servers' stored statuses
    # (effect.settle_due): a waiver whose moment passed after that is due again.
    settled_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = WaiverQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=ONE_SCOPE,
                name="waiver_one_scope",
                violation_error_message="Choose exactly one of a server or a tag.",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("starts_at")),
                name="waiver_expires_after_start",
                violation_error_message="The expiry must come after the start.",
            ),
        ]
        indexes = [
            # Read by effect.waived_pairs and in_force on every page that shows a status.
            models.Index(fields=["expires_at", "starts_at"], name="waiver_in_force_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.check_id} on {self.scope_label}"

    def get_absolute_url(self) -> str:
        return f"{reverse('waivers:list')}#waiver-{self.pk}"

    @property
    def scope_label(self) -> str:
        return f"server {self.server}" if self.server_id else f"tag {self.tag}"

    @property
    def ends_at(self) -> datetime:
        """When it stops holding: its expiry, or its revocation when earlier."""
        if self.revoked_at is not None and self.revoked_at < self.expires_at:
            return self.revoked_at
        return self.expires_at

    def holds_at(self, when: datetime) -> bool:
        """As `in_force`: granted (or not saved yet), started, and not ended by `when`."""
        granted = self.created_at is None or self.created_at <= when
        return granted and self.starts_at <= when < self.ends_at

    def state(self, now: datetime) -> str:
        """ "in force", "upcoming", "expired" or "revoked", as the pages say it."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if now < self.starts_at:
            return "upcoming"
        return "in force" if now < self.expires_at else "expired"

    def clean(self) -> None:
        """Expiry mandatory, after the start and at most MAX_TERM later; errors go to the
        field."""
        if self.starts_at is None or self.expires_at is None:
            return  # the fields' own "required" errors say it
        if self.expires_at <= self.starts_at:
            raise ValidationError({"expires_at": "The expiry must come after the start."})
        if self.expires_at - self.starts_at > MAX_TERM:
            raise ValidationError(
                {"expires_at": "An exception lasts at most a year: grant a new one then."}
            )

    def revoke(self, user: object, now: datetime) -> None:
        """End it now; the record stays, with who ended it."""
        self.revoked_at, self.revoked_by = now, user
        self.settled_at = None
        self.save(update_fields=["revoked_at", "revoked_by", "settled_at"])
