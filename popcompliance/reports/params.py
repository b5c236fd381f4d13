"""What a report is asked for: a day, a scope and a TLS profile, read from what a person typed
(the Reports page, `manage.py report`, the API) with errors in operator words.

A report "as of" a day describes the fleet at the end of that day in the dashboard's time zone
(settings.TIME_ZONE, UTC by default): the last instant of 30 June, so every change recorded on
30 June counts (compliance.history.end_of_day, as the overview's "as of" day). A day that has
not ended yet (today) means now; a day before the history kept is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import QuerySet
from django.utils import timezone

import scanner
from popcompliance.compliance import history
from popcompliance.compliance.history import end_of_day
from popcompliance.inventory.models import Policy, Server, Tag

SCOPE_KINDS = ("site", "tag", "policy")
SCOPE_HELP = "all, site:NAME, tag:NAME or policy:NAME"


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day; ValueError in words otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write it as YYYY-MM-DD (2026-06-30).") from None


def moment_of(day: date, now: datetime) -> datetime | None:
    """The moment a report as of `day` describes: its end, or None (now) for a day not over;
    HistoryPruned (a ValueError in words) for a day older than the history kept."""
    return history.moment(end_of_day(day), now)


@dataclass(frozen=True)
class Scope:
    """Which servers a report covers: `kind` all, site, tag or policy, and its `value`."""

    kind: str = "all"
    value: str = ""

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.value}"

    @property
    def label(self) -> str:
        """How the report names it."""
        return "every server" if self.kind == "all" else f"the servers of {self.kind} {self.value}"

    def servers(self) -> QuerySet[Server]:
        """The servers in scope (lazy)."""
        lookups = {"site": "site", "tag": "tags__name", "policy": "policy__name"}
        if self.kind == "all":
            return Server.objects.all()
        return Server.objects.filter(**{lookups[self.kind]: self.value})


def parse_scope(text: str) -> Scope:
    """`all`, `site:NAME`, `tag:NAME` or `policy:NAME`, naming something that exists;
    ValueError saying what there is otherwise."""
    text = text.strip()
    if text in ("", "all"):
        return Scope()
    kind, _, value = text.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if kind not in SCOPE_KINDS or not value:
        raise ValueError(f"{text!r} is not a scope: write {SCOPE_HELP}.")
    known = _known(kind)
    if value not in known:
        listed = ", ".join(known[:20]) or "none yet"
        raise ValueError(f"No {kind} named {value!r}. The {kind}s are: {listed}.")
    return Scope(kind, value)


def _known(kind: str) -> list[str]:
    if kind == "site":
        rows = Server.objects.exclude(site="").order_by("site").values_list("site", flat=True)
        return list(rows.distinct())
    model = Tag if kind == "tag" else Policy
    return list(model.objects.order_by("name").values_list("name", flat=True))


def parse_profile(name: str) -> scanner.TlsProfile | None:
    """A TLS profile by name ("" for none); ValueError listing the names otherwise."""
    if not name.strip():
        return None
    try:
        return scanner.profile_named(name.strip())
    except (KeyError, ValueError):
        names = ", ".join(profile.name for profile in scanner.PROFILES)
        raise ValueError(f"No TLS profile named {name!r}. The profiles are: {names}.") from None


@dataclass(frozen=True)
class ReportParams:
    """One report's question: the fleet in `scope` as of the end of `day`, optionally only the
    servers whose policy judges TLS by `profile` (verdicts are those recorded when the servers
    were scanned, so a report names the profile that judged them rather than re-judging)."""

    day: date
    scope: Scope
    profile: scanner.TlsProfile | None = None

    def servers(self) -> QuerySet[Server]:
        servers = self.scope.servers()
        if self.profile is not None:
            servers = servers.filter(policy__tls_profile=self.profile.name)
        return servers

    @property
    def slug(self) -> str:
        """For file names: popcompliance-report-2026-06-30-tag-exchange."""
        scope = "all" if self.scope.kind == "all" else f"{self.scope.kind}-{self.scope.value}"
        profile = f"-{self.profile.name}" if self.profile else ""
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{scope}{profile}")
        return f"popcompliance-report-{self.day.isoformat()}-{safe}"


def check_day(day: date, now: datetime) -> date:
    """`day` when a report can describe it: not after today (a report says what was, not what
    will be), nor before the history kept; ValueError in words otherwise."""
    if day > timezone.localdate(now):
        raise ValueError(f"{day.isoformat()} has not come yet: choose today or a day before.")
    moment_of(day, now)
    return day


def parse_params(day: str, scope: str, profile: str, now: datetime) -> ReportParams:
    """ReportParams from typed text (an empty day is today); ValueError in words."""
    chosen = check_day(parse_day(day), now) if day.strip() else timezone.localdate(now)
    return ReportParams(chosen, parse_scope(scope), parse_profile(profile))
