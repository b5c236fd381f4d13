"""Who gets an email and what it says: recipients, rendering, and queuing into the outbox.

Each kind of message has three templates under templates/emails/: `<kind>-subject.txt`,
`<kind>.txt` and `<kind>.html`. Messages are rendered once when queued, then one
Notification row is written per recipient. Touches only the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import chain
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from popcompliance.alerts.models import Alert, Notification
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


def queue(
    kind: str,
    context: dict[str, Any],
    recipients: list[str],
    key: str,
    now: datetime,
    **links: Any,
) -> int:
    """Render one message and queue it for each recipient; how many rows that asked for.

    `key` names the event: with the recipient it is unique, so queuing an event twice (two
    workers, a retried task) writes nothing new."""
    if not recipients:
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
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
