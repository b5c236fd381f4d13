"""Hand the outbox to the SMTP server (EMAIL_HOST:EMAIL_PORT) and to the alert channels'
services (alerts.channels, through Apprise), with retries.

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
- Channel messages are sent one request each (POPC_CHANNEL_TIMEOUT). An HTTP 4xx other than
  408 and 429 is permanent (the row fails, and the channel shows why until a delivery goes
  through); a 5xx, 408, 429, a refused connection or a timeout is transient. A channel that
  cannot be reached costs one timeout per batch, like the SMTP server.
"""

from __future__ import annotations

import contextlib
import smtplib
import time
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from popcompliance.alerts import channels
from popcompliance.alerts.models import (
    Channel,
    Notification,
    NotificationStatus,
    UndecryptableChannelUrl,
)

BATCH = 20
# Longer than a run can live (the task's hard time limit, 300 s by default), which cuts short
# a batch of BATCH messages at SMTP_TIMEOUT, or twice POPC_CHANNEL_TIMEOUT, each.
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
        emails = [notification for notification in batch if notification.channel_id is None]
        if emails:
            counts.update(send_batch(emails))
        counts.update(send_channel_batch([n for n in batch if n.channel_id is not None]))
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


def send_channel_batch(batch: list[Notification]) -> Counter[str]:
    """Each message to its channel; after a channel proved unreachable, its other messages
    in the batch get the same error without a try."""
    counts: Counter[str] = Counter()
    by_id = Channel.objects.in_bulk({notification.channel_id for notification in batch})
    unreachable: dict[int, channels.Outcome] = {}
    for notification in batch:
        channel = by_id.get(notification.channel_id)  # type: ignore[arg-type]
        if channel is None:
            continue  # deleted meanwhile, and its messages with it
        started = time.monotonic()
        outcome = unreachable.get(channel.pk) or send_to_channel(channel, notification)
        record_channel_outcome(channel, notification, outcome, elapsed_ms(started))
        if outcome.unreachable:
            unreachable[channel.pk] = outcome
        counts[outcome_name(notification, None if outcome.delivered else outcome.error)] += 1
    return counts


def send_to_channel(channel: Channel, notification: Notification) -> channels.Outcome:
    if not channel.enabled:
        return channels.Outcome(False, permanent=True, error="the channel was disabled")
    try:
        url = channel.url()
    except UndecryptableChannelUrl as exc:
        return channels.Outcome(False, error=str(exc))
    return channels.send(
        url,
        notification.subject,
        notification.body_text,
        notification.kind,
        notification.message_id,
        settings.POPC_CHANNEL_TIMEOUT,
    )


def record_channel_outcome(
    channel: Channel, notification: Notification, outcome: channels.Outcome, duration_ms: int
) -> None:
    """The attempt on the row; on the channel, a permanent failure until a delivery."""
    now = timezone.now()
    if outcome.delivered:
        notification.record_delivery(now, duration_ms)
        channel.record_outcome("", now)
        return
    notification.record_failure(outcome.error, outcome.permanent, now, duration_ms)
    if outcome.permanent and channel.enabled:
        channel.record_outcome(outcome.error, now)


def record_failure(notification: Notification, error: Exception, duration_ms: int) -> None:
    notification.record_failure(describe(error), permanent(error), timezone.now(), duration_ms)


def outcome_name(notification: Notification, error: Exception | str | None) -> str:
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
