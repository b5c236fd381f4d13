"""Alerts and the email outbox.

- Alert: one problem of one check on one server, from its settled regression to its recovery;
  acknowledged by an operator, reminded on its own schedule while open.
- ExpiryWarning: one row per (certificate, threshold in days) warned about, so each threshold
  is sent once; a renewed certificate is a new Certificate and starts fresh.
- Channel: a destination besides email (an Apprise URL: Teams Workflows, Slack, a JSON
  webhook…) for every server, the servers of a tag, or those of an owner.
- Notification: one message to one recipient (an email address, or a Channel), rendered when
  queued (the outbox row).
- DeliveryAttempt: each try to hand a Notification to the SMTP server or the channel's
  service, with its error.

Retention (alerts.lifecycle.prune): sent and failed notifications with their attempts live
NOTIFICATION_RETENTION; resolved alerts live as long as the Change history
(POPC_CHANGE_RETENTION_DAYS); expiry warnings go with their certificate.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from popcompliance.alerts import channels
from popcompliance.compliance.models import Certificate, Change
from popcompliance.inventory import credentials
from popcompliance.inventory.models import Server, Tag
from popcompliance.limits import validate_plain_text
from scanner import STATUS_RANK

# A transient SMTP error is retried after 1, 2, 4, 8 and then every 15 minutes, for three days:
# an SMTP outage of hours loses nothing and the mail goes out within 15 minutes of its return.
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(minutes=15)
GIVE_UP_AFTER = timedelta(days=3)
NOTIFICATION_RETENTION = timedelta(days=90)
# Checks whose failure alerts.expiry mails, once per certificate and threshold: their alerts
# open without an email of their own (alerts.lifecycle.ServerPass.mailed_by_expiry).
EXPIRY_MAILED_CHECKS = frozenset({"cert.validity"})


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


ALERT_STATE_COLOURS = {"open": "red", "acknowledged": "amber", "resolved": "green"}


class AlertLevel(models.TextChoices):
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"


class MaintenanceHold(models.TextChoices):
    """What a maintenance window did to an alert's emails (Alert.withholds, alerts.holding).
    A waiver of the check (popcompliance.waivers) holds them the same way."""

    NONE = "", "Not held"
    HELD = "held", "During maintenance: email held until the window ends"
    RELEASED = "released", "During maintenance: mailed once when the window ended"
    DROPPED = "dropped", "During maintenance: over before the window ended, never mailed"


class AlertQuerySet(models.QuerySet["Alert"]):
    def open(self) -> AlertQuerySet:
        """Not resolved (acknowledged ones included)."""
        return self.filter(resolved_at__isnull=True)

    def acknowledged(self, now: datetime) -> AlertQuerySet:
        acknowledgement_holds = Q(ack_until__isnull=True) | Q(ack_until__gt=now)
        return self.open().filter(acknowledgement_holds, acknowledged_at__isnull=False)

    def unacknowledged(self, now: datetime) -> AlertQuerySet:
        """Open, and never acknowledged or the acknowledgement expired."""
        return self.open().filter(Q(acknowledged_at__isnull=True) | Q(ack_until__lte=now))

    def resolved(self) -> AlertQuerySet:
        return self.filter(resolved_at__isnull=False)

    def in_state(self, state: str, now: datetime) -> AlertQuerySet:
        """Filter by AlertState value ("open" means open and not acknowledged)."""
        if state == AlertState.ACKNOWLEDGED:
            return self.acknowledged(now)
        return self.resolved() if state == AlertState.RESOLVED else self.unacknowledged(now)


class Alert(models.Model):
    """One problem of one check on one server (all its addresses), opened by a settled
    regression Change and resolved by the Change that makes the check pass again.

    At most one alert per server × check is open. `status` is the worst alerting status of the
    check while open (warn or fail); a warn that becomes a fail escalates this alert. `silent`
    alerts were reopened while their server was flapping: no opening or recovery mail, only
    reminders. `maintenance` says what a maintenance window did to its emails (MaintenanceHold).
    The state (open, acknowledged, resolved) is computed from the timestamps, since an
    acknowledgement may expire.
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="alerts")
    check_id = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=AlertLevel.choices)
    address = models.CharField(max_length=45, blank=True, help_text="Where it was first seen.")
    summary = models.TextField(help_text="The evidence when it opened.")
    remediation = models.TextField(blank=True)
    opened_at = models.DateTimeField()
    opened_by = models.ForeignKey(
        Change, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    silent = models.BooleanField(default=False)
    maintenance = models.CharField(
        max_length=10, choices=MaintenanceHold.choices, default=MaintenanceHold.NONE, blank=True
    )
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveIntegerField(default=0)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    ack_comment = models.TextField(blank=True)
    ack_until = models.DateTimeField(
        null=True, blank=True, help_text="Reminders resume after this (empty: never)."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        Change, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "check_id"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_alert_per_check",
            )
        ]
        indexes = [
            # Read by alerts.lifecycle.send_reminders: the open alerts whose reminder is due.
            models.Index(
                fields=["next_reminder_at"],
                condition=Q(resolved_at__isnull=True),
                name="alert_reminder_due_idx",
            ),
            # The unresolved alerts newest first, with what tells open from acknowledged: the
            # overview's panel (its newest and their count) and the Open and Acknowledged tabs
            # read them from the index alone, not from rows made wide by their summaries
            # (bench/dashboard.py: 10 → 1 ms for the panel with 4,000 unresolved alerts).
            models.Index(
                fields=["-opened_at", "-id", "acknowledged_at", "ack_until"],
                condition=Q(resolved_at__isnull=True),
                name="alert_unresolved_newest_idx",
            ),
            # Every alert by resolution, newest first: the Resolved tab, and the count of each
            # tab (alerts.views.state_counts) from the index alone (6–12 → 1 ms for 11,000).
            models.Index(
                fields=["-resolved_at", "-id", "acknowledged_at", "ack_until"],
                name="alert_resolved_newest_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.check_id} {self.status} since {self.opened_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        """The alert's page, where an operator acknowledges it (emails link here)."""
        return reverse("alerts:detail", args=[self.pk])

    @property
    def expiry_mailed(self) -> bool:
        """The certificate expiry warnings mail this check's failure (unless the certificate
        is not valid yet), so the alert's opening is not mailed again."""
        return self.check_id in EXPIRY_MAILED_CHECKS

    def state(self, now: datetime | None = None) -> str:
        if self.resolved_at is not None:
            return AlertState.RESOLVED
        acknowledged = self.is_acknowledged(now or timezone.now())
        return AlertState.ACKNOWLEDGED if acknowledged else AlertState.OPEN

    def is_acknowledged(self, now: datetime) -> bool:
        expired = self.ack_until is not None and self.ack_until <= now
        return self.acknowledged_at is not None and not expired

    def acknowledge(
        self,
        user: AbstractBaseUser | None,
        comment: str,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """An operator knows: no reminders until `until` (or ever, when None)."""
        self.acknowledged_at, self.acknowledged_by = now or timezone.now(), user
        self.ack_comment, self.ack_until = comment, until
        self.save(update_fields=["acknowledged_at", "acknowledged_by", "ack_comment", "ack_until"])

    def escalate(self, status: str, change: Change, next_reminder_at: datetime | None) -> None:
        """A worse status is news: it is mailed even if the alert opened silently, it cancels
        the acknowledgement of the milder problem, and reminders count from its mail (else
        one held back by that acknowledgement would follow the mail at once)."""
        self.status, self.summary, self.remediation = status, change.summary, change.remediation
        self.silent, self.next_reminder_at = False, next_reminder_at
        self.acknowledged_at, self.acknowledged_by, self.ack_until = None, None, None
        self.ack_comment = ""
        self.save()

    def lower(self, status: str) -> None:
        """Still alerting, at a milder status (fail → warn with the policy's alert_on_warn)."""
        self.status = status
        self.save(update_fields=["status"])

    def remind(self, now: datetime, every: timedelta) -> None:
        self.reminders_sent += 1
        self.next_reminder_at = now + every
        self.save(update_fields=["reminders_sent", "next_reminder_at"])

    def resolve(self, change: Change | None, now: datetime) -> None:
        self.resolved_at, self.resolved_by, self.next_reminder_at = now, change, None
        self.save(update_fields=["resolved_at", "resolved_by", "next_reminder_at"])

    def worse_than(self, status: str) -> bool:
        return STATUS_RANK[self.status] > STATUS_RANK[status]

    @property
    def held(self) -> bool:
        return self.maintenance == MaintenanceHold.HELD

    def withholds(self, kind: str, during_maintenance: bool) -> bool:
        """Whether the email of `kind` about this alert, for a Change during a maintenance
        window or not, is held back; records on the alert what the window did:
        - an opening or an escalation during a window waits for its end (alerts.holding);
        - a recovery is not mailed during a window, nor ever for an alert still held (its
          problem came and went unannounced);
        - an opening or escalation after a window, of an alert still held, announces it."""
        if kind == NotificationKind.RECOVERY:
            if self.held:
                self.mark_maintenance(MaintenanceHold.DROPPED)
                return True
            return during_maintenance
        if during_maintenance:
            self.mark_maintenance(MaintenanceHold.HELD)
            return True
        if self.held:
            self.mark_maintenance(MaintenanceHold.RELEASED)
        return False

    def mark_maintenance(self, hold: str) -> None:
        self.maintenance = hold
        self.save(update_fields=["maintenance"])

    def release(self, next_reminder_at: datetime | None) -> None:
        """The window is over and the problem is still there: its one email goes now, and the
        reminders count from it."""
        self.maintenance, self.next_reminder_at = MaintenanceHold.RELEASED, next_reminder_at
        self.save(update_fields=["maintenance", "next_reminder_at"])


class ExpiryWarning(models.Model):
    """A certificate crossed `days` before its expiry (0: it expired). `notified` is False
    for thresholds passed over because a closer one was crossed at the same time (a
    certificate first seen 5 days before expiry gets one warning, not three)."""

    certificate = models.ForeignKey(
        Certificate, on_delete=models.CASCADE, related_name="expiry_warnings"
    )
    days = models.PositiveIntegerField()
    notified = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["certificate", "-days"]
        constraints = [
            models.UniqueConstraint(
                fields=["certificate", "days"], name="one_warning_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.certificate}: {self.days} days"

    def get_absolute_url(self) -> str:
        return self.certificate.get_absolute_url()


class NotificationKind(models.TextChoices):
    ALERT = "alert", "Alert"
    RECOVERY = "recovery", "Recovery"
    REMINDER = "reminder", "Reminder"
    FLAPPING = "flapping", "Flapping"
    EXPIRY = "expiry", "Certificate expiry"
    DIGEST = "digest", "Daily digest"
    TEST = "test", "Test message"
    WAIVER_EXPIRY = "waiver_expiry", "Exception expiry"
    REPORT = "report", "Monthly compliance report"


class ChannelScope(models.TextChoices):
    GLOBAL = "global", "Every server"
    TAG = "tag", "The servers of a tag"
    OWNER = "owner", "The servers of an owner"


class UndecryptableChannelUrl(Exception):
    """No configured key decrypts a channel's stored URL (POPC_CREDENTIALS_KEY changed)."""


class ChannelQuerySet(models.QuerySet["Channel"]):
    def serving(self, servers: list[Server]) -> ChannelQuerySet:
        """The enabled channels that hear about these servers: every global one, those of
        their tags, those of their owners (compared without case)."""
        owners = {email.lower() for server in servers for email in server.owner_emails}
        tagged = Q(scope=ChannelScope.TAG, tag__servers__in=[server.pk for server in servers])
        owned = Q(scope=ChannelScope.OWNER, owner_email__in=owners)
        chosen = Q(scope=ChannelScope.GLOBAL) | tagged | owned
        ids = self.filter(chosen, enabled=True).values("pk")
        return self.filter(pk__in=ids).order_by("name")


class Channel(models.Model):
    """A destination for alerts besides email: an Apprise URL (Teams Workflows, Slack,
    Mattermost, a generic JSON webhook…), for every server, a tag's or an owner's.

    The URL holds the webhook's secret: it is stored as a Fernet token under
    POPC_CREDENTIALS_KEY (inventory.credentials, like the monitoring passwords), set through
    `set_url` only and never shown back; pages and the API show `url_redacted`
    ("jsons://hooks.example.com/…"). `broken_reason` is the last permanent failure (an HTTP
    4xx: a deleted webhook, a revoked token), cleared by the next delivery.
    """

    name = models.CharField(max_length=100, unique=True, validators=[validate_plain_text])
    url_encrypted = models.TextField(editable=False)
    url_redacted = models.CharField(max_length=300, editable=False)
    service = models.CharField(max_length=100, editable=False, help_text="As Apprise names it.")
    scope = models.CharField(max_length=10, choices=ChannelScope.choices)
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, null=True, blank=True, related_name="channels"
    )
    owner_email = models.EmailField(blank=True, help_text="Stored in lower case.")
    enabled = models.BooleanField(default=True)
    broken_reason = models.TextField(blank=True, editable=False)
    broken_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="global", tag__isnull=True, owner_email="")
                    | Q(scope="tag", tag__isnull=False, owner_email="")
                    | (Q(scope="owner", tag__isnull=True) & ~Q(owner_email=""))
                ),
                name="channel_scope_matches_target",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("alerts:channel_edit", args=[self.pk])

    @property
    def has_url(self) -> bool:
        return bool(self.url_encrypted)

    @property
    def audience(self) -> str:
        """Whose alerts it carries, in words."""
        if self.scope == ChannelScope.TAG and self.tag is not None:
            return f"servers tagged {self.tag.name}"
        if self.scope == ChannelScope.OWNER:
            return f"servers owned by {self.owner_email}"
        return "every server"

    def set_url(self, url: str) -> None:
        """Check `url` as Apprise reads it (ValueError, worded for the admin), then store it
        encrypted with its redacted form and service name."""
        checked = channels.check_url(url)
        self.url_encrypted = credentials.encrypt(url.strip())
        self.url_redacted, self.service = checked.redacted, checked.service

    def url(self) -> str:
        try:
            return credentials.decrypt(self.url_encrypted)
        except credentials.UndecryptablePassword:
            raise UndecryptableChannelUrl(
                "the channel's stored URL cannot be decrypted with the current "
                "POPC_CREDENTIALS_KEY: set the URL again"
            ) from None

    def set_scope(self, scope: str, tag: Tag | None = None, owner_email: str = "") -> None:
        """Keep only the target the scope uses (the table's constraint insists)."""
        self.scope = scope
        self.tag = tag if scope == ChannelScope.TAG else None
        self.owner_email = owner_email.strip().lower() if scope == ChannelScope.OWNER else ""

    def record_outcome(self, permanent_error: str, now: datetime) -> None:
        """A delivery went through (""), or failed for good: remember why, for the admins."""
        if permanent_error:
            self.broken_reason, self.broken_at = permanent_error, now
        elif not self.broken_reason:
            return
        else:
            self.broken_reason, self.broken_at = "", None
        Channel.objects.filter(pk=self.pk).update(
            broken_reason=self.broken_reason, broken_at=self.broken_at
        )


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


NOTIFICATION_COLOURS = {"pending": "amber", "sent": "green", "failed": "red"}


class Notification(models.Model):
    """One message to one recipient: the outbox row, rendered when queued so it says what was
    true then. `key` names the event and recipient, so queuing one event twice adds nothing.
    The recipient is an email address (`to`), or a Channel (`to` then holds its name, the
    subject its title, `body_text` its Markdown body).

    alerts.delivery claims due pending rows (`next_attempt_at`); each try is a
    DeliveryAttempt. `message_id` is fixed at queuing, so a retry after a lost acknowledgement
    carries the same Message-ID and mail clients can fold the duplicate.
    """

    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField()
    key = models.CharField(max_length=300, unique=True)
    message_id = models.CharField(max_length=200)
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    server = models.ForeignKey(
        Server, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    expiry_warning = models.ForeignKey(
        ExpiryWarning,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    # The PDF attached to a monthly report's email (popcompliance.reports).
    report = models.ForeignKey(
        "reports.StoredReport",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Read by alerts.delivery.claim: the pending notifications that are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="notification_due_idx",
            ),
            models.Index(fields=["server", "kind", "-created_at"], name="notification_server"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to}: {self.subject}"

    def get_absolute_url(self) -> str:
        return reverse("admin:alerts_notification_change", args=[self.pk])

    @property
    def status_colour(self) -> str:
        return NOTIFICATION_COLOURS[self.status]

    @staticmethod
    def new_message_id() -> str:
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "popcompliance"
        return f"<{uuid.uuid4().hex}@{domain}>"

    def as_email(self) -> EmailMultiAlternatives:
        """The message; `Auto-Submitted` keeps vacation responders from answering it."""
        headers = {"Message-ID": self.message_id, "Auto-Submitted": "auto-generated"}
        message = EmailMultiAlternatives(
            self.subject, self.body_text, settings.DEFAULT_FROM_EMAIL, [self.to], headers=headers
        )
        message.attach_alternative(self.body_html, "text/html")
        if self.report_id is not None:
            message.attach(self.report.filename, bytes(self.report.pdf), "application/pdf")
        return message

    def backoff(self) -> timedelta:
        """The wait after the attempt now failing: doubling with each earlier attempt."""
        return min(BACKOFF_FIRST * 2**self.attempt_count, BACKOFF_MAX)

    def record_delivery(self, now: datetime, duration_ms: int) -> None:
        self.status, self.sent_at, self.next_attempt_at = NotificationStatus.SENT, now, None
        self.last_error = ""
        self._record_attempt(AttemptOutcome.SENT, "", now, duration_ms)

    def record_failure(self, error: str, permanent: bool, now: datetime, duration_ms: int) -> None:
        """Retry a transient error after the backoff; give up on a permanent one, or after
        GIVE_UP_AFTER of transient ones."""
        outcome = AttemptOutcome.PERMANENT if permanent else AttemptOutcome.TRANSIENT
        gave_up = permanent or now - self.created_at >= GIVE_UP_AFTER
        self.status = NotificationStatus.FAILED if gave_up else NotificationStatus.PENDING
        self.next_attempt_at, self.last_error = None if gave_up else now + self.backoff(), error
        self._record_attempt(outcome, error, now, duration_ms)

    def retry_now(self, now: datetime) -> None:
        """An operator fixed the address or the SMTP settings: try again at once."""
        self.status, self.next_attempt_at = NotificationStatus.PENDING, now
        self.save(update_fields=["status", "next_attempt_at"])

    def _record_attempt(self, outcome: str, error: str, now: datetime, duration_ms: int) -> None:
        self.attempt_count += 1
        with transaction.atomic():
            self.save()
            self.attempts.create(at=now, outcome=outcome, error=error, duration_ms=duration_ms)


class AttemptOutcome(models.TextChoices):
    SENT = "sent", "Sent"
    TRANSIENT = "transient", "Transient error (will retry)"
    PERMANENT = "permanent", "Permanent error"


class DeliveryAttempt(models.Model):
    """One try to hand a Notification to the SMTP server (or its channel's service), with the
    error when it failed."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempts"
    )
    at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["notification", "at", "id"]

    def __str__(self) -> str:
        return f"{self.notification_id} at {self.at:%Y-%m-%d %H:%M:%S}: {self.outcome}"

    def get_absolute_url(self) -> str:
        return self.notification.get_absolute_url()
