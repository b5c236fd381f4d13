"""Template tags for status badges and small display helpers: `{% load dashboard %}`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from popcompliance.dashboard.catalog import Badge, badge_html, cell_html, check_badge, server_badge
from scanner import whole_days_left

register = template.Library()


@register.simple_tag
def check_status(status: str | None, confirming: bool = False) -> SafeString:
    """A check's status as a coloured badge with its symbol and word."""
    return badge_html(check_badge(status), bool(confirming))


@register.simple_tag
def server_status(status: str) -> SafeString:
    """A server's settled status as a coloured badge with its symbol and word."""
    return badge_html(server_badge(status))


@register.simple_tag
def status_badge(badge: Badge) -> SafeString:
    """A badge worked out by the view (catalog.Badge), drawn like the ones above."""
    return badge_html(badge)


@register.simple_tag
def matrix_cell(check_id: str, status: str | None, confirming: bool = False) -> SafeString:
    """A matrix cell (`<td>`): the symbol shows, the word is for screen readers."""
    return cell_html(check_id, status, bool(confirming))


@register.filter
def remediation(text: str) -> str:
    """Remediation text as HTML: escaped, `backticked` commands in <code>, line breaks kept.
    Commands are what an operator copies, so they must stand out and stay whole."""
    html = _BACKTICKED.sub(r"<code>\1</code>", str(conditional_escape(text)))
    # Safe: everything from the text was escaped above; only <code> and <br> are ours.
    return mark_safe(html.replace("\n", "<br>"))


_BACKTICKED = re.compile(r"`([^`\n]+)`")
# How a transcript line reads: C: what we sent, S: what the server answered, # our notes.
_SPEAKER = {"sent": "C: ", "received": "S: ", "note": "# "}


@register.filter
def transcript_line(line: dict[str, str]) -> str:
    """One line of a probe's conversation (scanner.evidence_for) as HTML: its speaker's
    prefix, the text escaped, each redaction marked so that it reads as one."""
    direction = line.get("direction", "note")
    text = str(conditional_escape(line.get("text", "")))
    marked = text.replace(_REDACTED, f'<span class="redacted">{_REDACTED}</span>')
    prefix = _SPEAKER.get(direction, "# ")
    # Safe: the text was escaped above; the spans and the prefix are ours.
    return mark_safe(f'<span class="line-{direction}">{prefix}{marked}</span>')


_REDACTED = "[redacted]"


@register.filter
def lookup(mapping: dict[Any, Any] | None, key: Any) -> Any:
    return (mapping or {}).get(key)


# Below a minute, timesince says "0 minutes", which reads like a fault.
_JUST_NOW = 60


@register.filter
def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago `moment` was: 'just now' within a minute, else '3 hours, 5 minutes ago'.
    The one way pages say when something happened."""
    if moment is None:
        return "never"
    now = now or timezone.now()
    if (now - moment).total_seconds() < _JUST_NOW:
        return "just now"
    return f"{timesince(moment, now)} ago"


@register.filter
def duration(start: datetime | None, end: datetime | None = None) -> str:
    """How long from `start` to `end` (default now): 'under a minute', else '2 days, 3 hours'."""
    if start is None:
        return "unknown"
    end = end or timezone.now()
    if (end - start).total_seconds() < _JUST_NOW:
        return "under a minute"
    return timesince(start, end)


@register.filter
def countdown(moment: datetime | None, now: datetime | None = None) -> str:
    """'in 12 days', 'expires today', 'expired 3 days ago': whole days, as an expiry reads."""
    if moment is None:
        return "unknown"
    now = now or timezone.now()
    if moment < now:
        days = whole_days_left(now, moment)  # whole days since, counted the same way
        return "expired today" if days == 0 else f"expired {_days(days)} ago"
    days = whole_days_left(moment, now)
    return "expires today" if days == 0 else f"in {_days(days)}"


@register.filter
def days_left(moment: datetime | None, now: datetime | None = None) -> str:
    """'12 days', '1 day', 'less than a day': what is left before `moment`, for "in …"."""
    if moment is None:
        return "an unknown time"
    days = whole_days_left(moment, now or timezone.now())
    return "less than a day" if days <= 0 else _days(days)


def _days(days: int) -> str:
    return f"{days} day" if days == 1 else f"{days} days"


@register.filter
def expiry_colour(moment: datetime | None, now: datetime | None = None) -> str:
    """red when expired or within 7 days, amber within 30, else green."""
    if moment is None:
        return "grey"
    days = whole_days_left(moment, now or timezone.now())
    return "red" if days < 7 else "amber" if days < 30 else "green"


@register.simple_tag
def optional_url(name: str, *args: Any) -> str:
    """The URL of a page another app may not provide yet, or "" (so navigation can leave a
    place for it without breaking while it is missing)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""
