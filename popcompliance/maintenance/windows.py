"""The questions asked about maintenance windows: is this server under maintenance now, which
servers are, and which windows the pages show. Each states its cost; the windows' rules are
read in Python after one query, as a fleet has a handful of windows, not thousands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from popcompliance.inventory.models import Server
from popcompliance.maintenance.models import MaintenanceWindow
from popcompliance.maintenance.schedule import Occurrence

# The pages show the windows that are on, and those starting within this.
UPCOMING = timedelta(days=7)
_INSTANT = timedelta(microseconds=1)


def in_maintenance(server: Server, at: datetime) -> bool:
    """Whether a window covering `server` is on at `at` (one query)."""
    windows = MaintenanceWindow.objects.covering(server).may_be_on(at, at + _INSTANT)
    return any(window.occurrence_at(at) for window in windows)


def on_at(at: datetime) -> list[MaintenanceWindow]:
    """The windows on at `at` (one query)."""
    candidates = MaintenanceWindow.objects.may_be_on(at, at + _INSTANT)
    return [window for window in candidates if window.occurrence_at(at)]


def servers_in_maintenance(at: datetime) -> QuerySet[Server]:
    """The ids of the servers a window covers at `at`: one query for the windows, then a
    subquery for the caller to filter with (`server__in=`)."""
    windows = on_at(at)
    if not windows:
        return Server.objects.none().values("pk")
    scope = (
        Q(pk__in=[w.server_id for w in windows if w.server_id])
        | Q(tags__in=[w.tag_id for w in windows if w.tag_id])
        | Q(site__in=[w.site for w in windows if w.site])
    )
    return Server.objects.filter(scope).values("pk")


@dataclass(frozen=True)
class Shown:
    """A window as a page shows it: its current occurrence (`on`) or its next one."""

    window: MaintenanceWindow
    occurrence: Occurrence
    on: bool


def shown(windows: Iterable[MaintenanceWindow], now: datetime) -> list[Shown]:
    """The windows on at `now` or starting within UPCOMING, the ones on first, then by start."""
    rows = []
    for window in windows:
        current = window.occurrence_at(now)
        if current is not None:
            rows.append(Shown(window, current, on=True))
            continue
        upcoming = window.next_occurrence(now)
        if upcoming is not None and upcoming.start < now + UPCOMING:
            rows.append(Shown(window, upcoming, on=False))
    return sorted(rows, key=lambda row: (not row.on, row.occurrence.start, row.window.pk))


def fleet_panel(now: datetime) -> list[Shown]:
    """The overview's panel: every window on now or soon (one query)."""
    windows = MaintenanceWindow.objects.may_be_on(now, now + UPCOMING)
    return shown(windows.select_related("server", "tag"), now)


def server_panel(server: Server, now: datetime) -> list[Shown]:
    """The server page's panel: the windows covering `server`, on now or soon (one query)."""
    windows = MaintenanceWindow.objects.covering(server).may_be_on(now, now + UPCOMING)
    return shown(windows.select_related("server", "tag"), now)


@dataclass(frozen=True)
class Listed:
    """A window on the maintenance page: its current occurrence, else its next one (None: it
    is over)."""

    window: MaintenanceWindow
    current: Occurrence | None
    upcoming: Occurrence | None

    @property
    def state(self) -> str:
        if self.current is not None:
            return "on"
        return "upcoming" if self.upcoming is not None else "over"


def listing(now: datetime) -> list[Listed]:
    """Every window, with where it stands at `now` (one query)."""
    windows = MaintenanceWindow.objects.select_related("server", "tag")
    rows = []
    for window in windows:
        current = window.occurrence_at(now)
        rows.append(Listed(window, current, None if current else window.next_occurrence(now)))
    return rows
