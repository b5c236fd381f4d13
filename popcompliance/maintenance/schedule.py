"""When a maintenance window is on: a one-off span, or a recurring rule (an RFC 5545 RRULE read
by python-dateutil, or a five-field cron expression read by croniter) with a duration.

Pure functions over aware datetimes, no database. An occurrence covers [start, end): the
minute it starts is inside it, the minute it ends is outside. Recurring rules are read in the
window's time zone, so "every Sunday at 02:00" stays 02:00 local across daylight saving; the
duration is counted in real minutes from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from dateutil.rrule import rrule, rrulestr

# RRULE iterates from its first start at every question, so a rule that starts often costs
# time in proportion to its age: at most a few starts a day (DAILY, with BYHOUR say) keeps
# ten years of history under a few milliseconds.
RRULE_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_STARTS_PER_WEEK = 28
RRULE_EXAMPLE = "FREQ=WEEKLY;BYDAY=SU"
CRON_EXAMPLE = "0 2 * * 0"


@dataclass(frozen=True)
class Occurrence:
    """One span of a window, as aware datetimes in UTC."""

    start: datetime
    end: datetime

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


class Schedule(Protocol):
    def covering(self, at: datetime) -> Occurrence | None:
        """The occurrence `at` falls in, if any."""

    def next_after(self, at: datetime) -> Occurrence | None:
        """The first occurrence that starts after `at` (None: the rule is over)."""


@dataclass(frozen=True)
class Once:
    start: datetime
    end: datetime

    def covering(self, at: datetime) -> Occurrence | None:
        span = Occurrence(self.start, self.end)
        return span if span.covers(at) else None

    def next_after(self, at: datetime) -> Occurrence | None:
        return Occurrence(self.start, self.end) if self.start > at else None


class Never:
    """A window whose rule cannot be read: never on."""

    def covering(self, at: datetime) -> Occurrence | None:
        return None

    def next_after(self, at: datetime) -> Occurrence | None:
        return None


@dataclass(frozen=True)
class RRuleSchedule:
    rule: rrule
    duration: timedelta

    def covering(self, at: datetime) -> Occurrence | None:
        # The latest start is enough: an earlier one, as long, ended earlier.
        start = self.rule.before(at, inc=True)
        return _covering(_occurrence(start, self.duration), at)

    def next_after(self, at: datetime) -> Occurrence | None:
        return _occurrence(self.rule.after(at, inc=False), self.duration)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    zone: ZoneInfo
    first: datetime
    duration: timedelta

    def covering(self, at: datetime) -> Occurrence | None:
        start = self._latest_start(at)
        if start is None or start < self.first:
            return None
        return _covering(_occurrence(start, self.duration), at)

    def next_after(self, at: datetime) -> Occurrence | None:
        # croniter answers strictly after its base: a second before the first start lets the
        # first start itself count.
        base = max(at, self.first - timedelta(seconds=1)).astimezone(self.zone)
        return _occurrence(_cron_step(self.expression, base, forward=True), self.duration)

    def _latest_start(self, at: datetime) -> datetime | None:
        """The latest start at or before `at`. croniter's get_prev is strictly before its
        base, and cron has minute steps: from a minute later, at most one start is too late."""
        local = at.astimezone(self.zone) + timedelta(minutes=1)
        start = _cron_step(self.expression, local, forward=False)
        if start is not None and start > at:
            start = _cron_step(self.expression, start, forward=False)
        return start


def _cron_step(expression: str, base: datetime, *, forward: bool) -> datetime | None:
    """The start just after (or before) `base`; None when there is none (30 February)."""
    steps = croniter(expression, base)
    try:
        found: datetime = steps.get_next(datetime) if forward else steps.get_prev(datetime)
    except CroniterBadDateError:
        return None
    return found


def _occurrence(start: datetime | None, duration: timedelta) -> Occurrence | None:
    if start is None:
        return None
    start = start.astimezone(UTC)
    return Occurrence(start, start + duration)


def _covering(occurrence: Occurrence | None, at: datetime) -> Occurrence | None:
    return occurrence if occurrence is not None and occurrence.covers(at) else None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (Europe/Paris, UTC); ValueError names it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {name!r}: use an IANA name such as UTC.") from exc


def parse_rrule(text: str, first: datetime, tz: ZoneInfo) -> rrule:
    """The RRULE `text` (FREQ=...; with or without the "RRULE:" prefix) starting at `first`,
    read in `tz`. ValueError says what is wrong in words."""
    body = text.strip().removeprefix("RRULE:")
    if not body or "\n" in body or "DTSTART" in body.upper():
        raise ValueError(
            f"Give one rule such as {RRULE_EXAMPLE}: the first start is its own field."
        )
    frequency = _rrule_part(body, "FREQ")
    if frequency not in RRULE_FREQUENCIES:
        raise ValueError(
            f"FREQ must be one of {', '.join(RRULE_FREQUENCIES)} (a window recurs at most "
            f"a few times a day), for example {RRULE_EXAMPLE}."
        )
    try:
        rule = rrulestr(body, dtstart=first.astimezone(tz))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Not a valid RRULE ({exc}); for example {RRULE_EXAMPLE}.") from exc
    if not isinstance(rule, rrule):
        raise ValueError(f"Give one rule such as {RRULE_EXAMPLE}.")
    _check_rrule_rate(rule, first)
    return rule


def _rrule_part(body: str, name: str) -> str:
    for part in body.upper().split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip()
    return ""


def _check_rrule_rate(rule: rrule, first: datetime) -> None:
    starts = rule.between(first, first + timedelta(days=7), inc=True)
    if len(starts) > MAX_STARTS_PER_WEEK:
        raise ValueError(
            f"The rule starts {len(starts)} times in its first week; at most "
            f"{MAX_STARTS_PER_WEEK} are allowed."
        )
    if rule.after(first, inc=True) is None:
        raise ValueError("The rule never starts on or after the first start.")


def check_cron(text: str) -> str:
    """The five-field cron expression `text`, tidied; ValueError says what is wrong."""
    fields = text.split()
    expression = " ".join(fields)
    if len(fields) != 5 or not croniter.is_valid(expression):
        raise ValueError(
            "Give five fields: minute hour day-of-month month day-of-week, for example "
            f"{CRON_EXAMPLE} (Sundays at 02:00)."
        )
    if _cron_step(expression, datetime(2000, 1, 1, tzinfo=UTC), forward=True) is None:
        raise ValueError("This expression never fires (a day that no month has?).")
    return expression
