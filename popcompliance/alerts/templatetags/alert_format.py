"""Filters for the email templates."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_CODE = re.compile(r"`([^`]+)`")


@register.filter
def code(text: str) -> SafeString:
    """Escape, then show `backticked` commands (the remediation's) as <code>."""
    style = "background:#f3f4f6;padding:1px 4px;border-radius:3px;font-family:monospace"
    return mark_safe(_CODE.sub(rf'<code style="{style}">\1</code>', escape(text)))
