"""Template filters of the maintenance pages."""

from __future__ import annotations

from datetime import datetime

from django import template

from popcompliance.maintenance.models import MaintenanceWindow

register = template.Library()


@register.filter
def local_time(window: MaintenanceWindow, moment: datetime | None) -> str:
    """`moment` on the window's own clock, with its zone: '2026-12-06 02:00 CET'."""
    return window.local(moment) if moment is not None else "—"
