"""Who gets an email and what it says: recipients, rendering, and queuing into the outbox.

Each kind of message has three templates under templates/emails/: `<kind>-subject.txt`,
`<kind>.txt` and `<kind>.html`, and one for the alert channels, `templates/channels/<kind>.md`
(Markdown, short: a chat message, titled with the email's subject). Messages are rendered once
when queued, then one Notification row is written per recipient and per channel. Touches only
the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import chain
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from popcompliance.alerts.models import Alert, Channel, Notification, NotificationKind
from popcompliance.inventory.models import Server


def dedupe(addresses: Iterable[str]) -> list[str]:
    """Each address once, compared without case, in first-seen order."""
    seen: dict[str, str] = {}
    for address in addresses:
        if address.strip():
            seen.setdefault(address.strip().lower(), address.strip())
    return list(seen.values())


def recipients_for(servers: Iterable[Server]) -> list[str]:
    """The servers' owners, then the global POPC_ALERT_RECIPIENTS."""
    owners = chain.from_iterable(server.owner_emails for server in servers)
    return dedupe(chain(owners, settings.POPC_ALERT_RECIPIENTS))


def owners_first(server: Server) -> list[str]:
    """The owners only; the global recipients when the server has none, so a notice meant
    for the owner is never dropped for want of one."""
    return dedupe(server.owner_emails) or dedupe(settings.POPC_ALERT_RECIPIENTS)


def channels_for(servers: Iterable[Server]) -> list[Channel]:
    """The enabled channels that carry these servers' alerts: global, by tag, by owner."""
    return list(Channel.objects.serving(list(servers)))


def absolute_url(obj: Server | Alert) -> str:
    """The link an email gives to an object's page."""
    return site_url(obj.get_absolute_url())


def site_url(path: str) -> str:
    """The link an email gives to a path of the site (SITE_URL in front)."""
    return f"{settings.SITE_URL}{path}"


def render(kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of one kind of message."""
    context = {**context, "site_url": settings.SITE_URL}
    subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", context).split())
    text = render_to_string(f"emails/{kind}.txt", context)
    return subject, text, render_to_string(f"emails/{kind}.html", context)


def render_for_channels(kind: str, context: dict[str, Any]) -> str:
    """The Markdown body the channels get."""
    context = {**context, "site_url": settings.SITE_URL}
    return render_to_string(f"channels/{kind}.md", context).strip()


def queue(
    kind: str,
    context: dict[str, Any],
    recipients: list[str],
    key: str,
    now: datetime,
    channels: Iterable[Channel] = (),
    **links: Any,
) -> int:
    """Render one message and queue it for each recipient and each channel; how many rows
    that asked for.

    `key` names the event: with the recipient it is unique, so queuing an event twice (two
    workers, a retried task) writes nothing new."""
    channels = list(channels)
    if not recipients and not channels:
        return 0
    subject, text, html = render(kind, context)
    rows = [
        Notification(
            kind=kind,
            to=to,
            subject=subject[:300],
            body_text=text,
            body_html=html,
            key=f"{key}:{to.lower()}"[:300],
            message_id=Notification.new_message_id(),
            created_at=now,
            next_attempt_at=now,
            **links,
        )
        for to in recipients
    ]
    if channels:
        body = render_for_channels(kind, context)
        rows += channel_rows(kind, subject, body, channels, key, now, **links)
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def channel_rows(
    kind: str,
    title: str,
    body: str,
    channels: list[Channel],
    key: str,
    now: datetime,
    **links: Any,
) -> list[Notification]:
    """One outbox row per channel; its key names the channel by id, so a renamed channel
    still never gets an event twice."""
    return [
        Notification(
            kind=kind,
            to=channel.name[:254],
            channel=channel,
            subject=title[:300],
            body_text=body,
            body_html="",
            key=f"{key}:channel{channel.pk}"[:300],
            message_id=Notification.new_message_id(),
            created_at=now,
            next_attempt_at=now,
            **links,
        )
        for channel in channels
    ]


def queue_test(channel: Channel, sender: str, now: datetime) -> int:
    """A test message to one channel, asked for by `sender` (a username) on its page."""
    context = {"channel": channel, "user": sender, "site_url": settings.SITE_URL}
    body = render_to_string("channels/test.md", context).strip()
    title = "[PopCompliance] Test message"
    key = f"test:{now.isoformat()}"
    rows = channel_rows(NotificationKind.TEST, title, body, [channel], key, now)
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
