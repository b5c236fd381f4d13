"""The monthly report to auditors: on the first of each month (from SEND_HOUR in the dashboard's
time zone), the PDF as of the last day of the month before, to each address of the
ReportSchedule, through the alerts outbox (popcompliance.alerts.delivery: retries with
backoff while SMTP is down, nothing lost).

Made once per month: the StoredReport's `key` names the month, and each Notification's key
names the report and the recipient, so a second run, a second worker or a retried task
queues nothing more. A recipient added later in the month gets that month's report at the next
run; the PDF is the one first made.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction

from popcompliance.alerts.messages import queue
from popcompliance.alerts.models import NotificationKind
from popcompliance.reports.content import Report, build_report
from popcompliance.reports.formats import filename, render_pdf
from popcompliance.reports.models import ReportSchedule, StoredReport
from popcompliance.reports.params import ReportParams, parse_profile, parse_scope

# Late enough that the month's last scans and the nightly snapshot are in.
SEND_HOUR = 6


def month_key(day: date) -> str:
    return f"monthly {day:%Y-%m}"


def last_month_end(now: datetime) -> date | None:
    """The last day of the month before, once the first of this month has reached SEND_HOUR
    (in the dashboard's time zone); None before that on the first. Any later day of the month
    also answers, so a run missed on the first still sends."""
    local = now.astimezone(ZoneInfo(settings.TIME_ZONE))
    if local.day == 1 and local.hour < SEND_HOUR:
        return None
    return local.date().replace(day=1) - timedelta(days=1)


def send_monthly(now: datetime) -> int:
    """Queue the month's report for each recipient who has not had it; how many were queued."""
    schedule = ReportSchedule.current()
    day = last_month_end(now)
    if day is None or not schedule.recipients:
        return 0
    stored = StoredReport.objects.filter(key=month_key(day)).first()
    if stored is None:
        try:
            stored = _make(schedule, day, now)
        except ValueError as exc:
            # A scope or profile that no longer exists (a site renamed, a tag deleted): said
            # where beat's failures are read (the overview's banner), every hour until fixed.
            raise MonthlyReportFailed(f"the monthly report cannot be made: {exc}") from exc
    return _queue(stored, schedule.recipients, now)


class MonthlyReportFailed(Exception):
    """The monthly report's schedule names something that no longer exists."""


def _make(schedule: ReportSchedule, day: date, now: datetime) -> StoredReport:
    """The month's report, rendered outside any transaction (it may take a minute), then
    stored; when another run stored it meanwhile, theirs."""
    params = ReportParams(day, parse_scope(schedule.scope), parse_profile(schedule.tls_profile))
    report = build_report(params, now)
    pdf = render_pdf(report)
    try:
        with transaction.atomic():
            return StoredReport.objects.create(
                key=month_key(day),
                day=day,
                scope=str(params.scope),
                tls_profile=params.profile.name if params.profile else "",
                filename=filename(params, "pdf"),
                pdf=pdf,
                summary=_summary(report),
                created_at=now,
            )
    except IntegrityError:
        return StoredReport.objects.get(key=month_key(day))


def _summary(report: Report) -> dict[str, object]:
    return {
        "counts": report.counts,
        "excepted": report.excepted,
        "failing_servers": len(report.failing),
        "total": report.total,
    }


def _queue(stored: StoredReport, recipients: list[str], now: datetime) -> int:
    """One Notification per recipient (the key makes a second queuing write nothing)."""
    already = set(stored.notifications.values_list("to", flat=True))
    waiting = [to for to in recipients if to not in already]
    if not waiting:
        return 0
    context = {"stored": stored, "summary": stored.summary}
    return queue(
        NotificationKind.REPORT, context, waiting, f"report:{stored.key}", now, report=stored
    )
