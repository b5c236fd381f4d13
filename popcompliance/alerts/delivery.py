"""Hand the outbox to the SMTP server (EMAIL_HOST:EMAIL_PORT), with retries.

- `claim` takes due pending Notifications with SELECT … FOR UPDATE SKIP LOCKED and pushes
  their `next_attempt_at` a LEASE ahead before committing: two delivery runs at once never
  take the same row, and a worker that dies mid-batch leaves its rows to be retried when the
  lease ends (the one case where a mail can go out twice; it keeps its Message-ID).
- Each try is a DeliveryAttempt row. Transient errors (connection refused, timeouts, a 4xx
  reply, a rejected login: our configuration, not the message) retry with exponential
  backoff (Notification.backoff); permanent ones (a 5xx reply, an address the SMTP client
  cannot even encode) mark the notification failed, shown in the admin.
- When the server cannot be reached at all, the rest of the batch is not tried: each row gets
  the same error as an attempt and its backoff, so an outage costs one connection per batch.
"""

from __future__ import annotations

import contextlib
import smtplib
import time
from collections import Counter
from datetime import timedelta

from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from popcompliance.alerts.models import Notification, NotificationStatus

BATCH = 20
# Longer than a batch can take: BATCH messages at SMTP_TIMEOUT each.
LEASE = timedelta(minutes=15)
SMTP_TIMEOUT = 20
# One run stops claiming after this long, well inside the task's soft time limit.
RUN_BUDGET = 120.0


def deliver_pending() -> Counter[str]:
    """Send what is due, batch by batch; counts of "sent", "retry" and "failed"."""
    counts: Counter[str] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < RUN_BUDGET:
        batch = claim()
        if not batch:
            break
        counts.update(send_batch(batch))
    return counts


def claim(size: int = BATCH) -> list[Notification]:
    now = timezone.now()
    with transaction.atomic():
        due = Notification.objects.filter(
            status=NotificationStatus.PENDING, next_attempt_at__lte=now
        ).order_by("next_attempt_at", "id")
        batch = list(due.select_for_update(skip_locked=True)[:size])
        Notification.objects.filter(pk__in=[n.pk for n in batch]).update(
            next_attempt_at=now + LEASE
        )
    return batch


def send_batch(batch: list[Notification]) -> Counter[str]:
    """Send over one SMTP session; a fresh session after any error."""
    counts: Counter[str] = Counter()
    connection = get_connection(fail_silently=False, timeout=SMTP_TIMEOUT)
    try:
        for index, notification in enumerate(batch):
            error = send_one(connection, notification)
            counts[outcome_name(notification, error)] += 1
            if error is not None and unreachable(error):
                for rest in batch[index + 1 :]:
                    record_failure(rest, error, 0)
                    counts[outcome_name(rest, error)] += 1
                break
    finally:
        close_quietly(connection)
    return counts


def send_one(connection: BaseEmailBackend, notification: Notification) -> Exception | None:
    started = time.monotonic()
    try:
        connection.open()
        if connection.send_messages([notification.as_email()]) != 1:
            raise ValueError("the message has no valid recipient")
    except Exception as exc:
        close_quietly(connection)
        record_failure(notification, exc, elapsed_ms(started))
        return exc
    notification.record_delivery(timezone.now(), elapsed_ms(started))
    return None


def record_failure(notification: Notification, error: Exception, duration_ms: int) -> None:
    notification.record_failure(describe(error), permanent(error), timezone.now(), duration_ms)


def outcome_name(notification: Notification, error: Exception | None) -> str:
    if error is None:
        return "sent"
    return "failed" if notification.status == NotificationStatus.FAILED else "retry"


def unreachable(error: Exception) -> bool:
    """The server could not be talked to at all (refused, timed out, hung up)."""
    if isinstance(error, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected):
        return True
    return isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException)


def permanent(error: Exception) -> bool:
    """Retrying cannot help: the server said 5xx about this message or its recipient, or the
    message cannot be sent at all. Reaching the server and logging in are ours to fix, so
    their failures stay transient."""
    if unreachable(error) or isinstance(error, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return not isinstance(error, smtplib.SMTPException)


def describe(error: Exception) -> str:
    """The error as an operator reads it, with the server's reply when there is one."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [f"{to}: {code} {_text(reply)}" for to, (code, reply) in error.recipients.items()]
        text = "recipient refused: " + "; ".join(replies)
    elif isinstance(error, smtplib.SMTPResponseException):
        text = f"{type(error).__name__}: {error.smtp_code} {_text(error.smtp_error)}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text[:2000]


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def close_quietly(connection: BaseEmailBackend) -> None:
    # Closing a session that already broke may raise again; there is nothing left to save.
    with contextlib.suppress(Exception):
        connection.close()


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
