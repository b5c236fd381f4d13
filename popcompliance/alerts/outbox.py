"""Whether email is leaving: the outbox's health, for the overview's banner and /metrics.

An email is *undelivered* when it is pending after a failed attempt, pending longer than
LONG_PENDING, or failed (given up) within the last FAILED_SHOWN. While any is, the overview
says so and names the SMTP server's last error; the banner goes when the emails go out.
Messages to alert channels are judged the same way, but apart (`channel_undelivered`): a
webhook that is down says nothing about the SMTP server. The channels page shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, Min, OuterRef, Q

from popcompliance.alerts.models import (
    BACKOFF_MAX,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
)

# Delivery runs every minute and retries a failed email after 1, 2, 4 and 8 minutes: an email
# queued ten minutes ago and still pending is stuck, whatever it was told.
LONG_PENDING = timedelta(minutes=10)
# How long an email that failed for good keeps the banner up: long enough to be seen.
FAILED_SHOWN = timedelta(days=1)

# What an operator reads for the error classes alerts.delivery.describe records.
PROBLEMS = {
    "ConnectionRefusedError": "refuses connections",
    "TimeoutError": "does not answer (timed out)",
    "SMTPConnectError": "refuses the session",
    "SMTPServerDisconnected": "hangs up",
    "SMTPAuthenticationError": "rejects our login (EMAIL_HOST_USER, EMAIL_HOST_PASSWORD)",
    "gaierror": "cannot be found (its name does not resolve)",
    "SSLError": "fails the TLS handshake",
    "SSLCertVerificationError": "serves a certificate we do not trust",
}


EMAILS = Q(channel__isnull=True)


def waiting(now: datetime, messages: Q = EMAILS) -> Q:
    """Pending after a failed attempt, or for longer than LONG_PENDING."""
    pending = Q(status=NotificationStatus.PENDING)
    return messages & pending & (~Q(last_error="") | Q(created_at__lte=now - LONG_PENDING))


def failed_lately(now: datetime, messages: Q = EMAILS) -> Q:
    """Given up within FAILED_SHOWN: dated by the last attempt, since an email gives up only
    after GIVE_UP_AFTER of transient errors, long after it was queued."""
    recent = DeliveryAttempt.objects.filter(notification=OuterRef("pk"), at__gt=now - FAILED_SHOWN)
    return messages & Q(status=NotificationStatus.FAILED) & Q(Exists(recent))


def undelivered(now: datetime) -> Q:
    """The emails the banner counts."""
    return waiting(now) | failed_lately(now)


def channel_undelivered(now: datetime) -> Q:
    """The channel messages that would be undelivered emails."""
    messages = ~EMAILS
    return waiting(now, messages) | failed_lately(now, messages)


def smtp_problem(error: str) -> str:
    """The SMTP server's trouble in words, from an error as alerts.delivery records it."""
    kind = error.partition(":")[0]
    return PROBLEMS.get(kind) or f"answers: {error}"


@dataclass(frozen=True)
class EmailHealth:
    """The undelivered emails: how many wait, since when, how many failed, the last error."""

    waiting: int
    waiting_since: datetime | None
    failed: int
    last_error: str

    @property
    def troubled(self) -> bool:
        return bool(self.waiting or self.failed)

    @property
    def retry_minutes(self) -> int:
        """Waiting emails go out at most this long after the SMTP server is back."""
        return int(BACKOFF_MAX.total_seconds() // 60)

    @property
    def smtp_server(self) -> str:
        return f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"

    @property
    def problem(self) -> str:
        """What the SMTP server does wrong; "" when no attempt failed (no worker delivers)."""
        return smtp_problem(self.last_error) if self.last_error else ""


def email_health(now: datetime) -> EmailHealth:
    """One aggregate over the outbox, and when something is undelivered, one more query for the
    error of the newest such email."""
    totals = Notification.objects.aggregate(
        waiting=Count("id", filter=waiting(now)),
        since=Min("created_at", filter=waiting(now)),
        failed=Count("id", filter=failed_lately(now)),
    )
    last_error = ""
    if totals["waiting"] or totals["failed"]:
        rows = Notification.objects.filter(undelivered(now)).exclude(last_error="")
        newest = rows.order_by("-created_at", "-id").values_list("last_error", flat=True)
        last_error = newest.first() or ""
    return EmailHealth(totals["waiting"], totals["since"], totals["failed"], last_error)
