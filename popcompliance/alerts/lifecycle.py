"""The alert lifecycle: settled Changes in, Alerts and queued Notifications out.

The rules (docs/alerts.md says the same for operators):
- An alert covers one check of one server, over all its addresses: a name with two addresses
  that both start taking passwords in clear is one problem with one fix, so one email that
  lists both addresses.
- Only settled Changes are read (compliance.recording confirms a regression with a second
  scan first). An alert opens on a Change to an alerting status: `fail`, or `warn` when the
  policy's `alert_on_warn` is on. A first sighting (a server just added) opens one for `fail`
  only: a new server that leaks passwords deserves a mail, its missing SRV record does not.
- `error` ("could not determine") neither opens nor resolves an alert.
- `cert.validity` opens an alert only when it fails (expired, not yet valid, or critically
  close to expiry), so that every non-compliant server shows why on the alerts page. Its
  opening is not mailed: alerts.expiry already mails each certificate once per threshold
  (the last days before expiry, and expiry) to every server's owners in one email, and a
  second mail per server would repeat it. A certificate not valid yet is no expiry email's
  business, so that opening is mailed. Reminders and recovery are mailed, as no expiry email
  says them. Its warn is the expiry emails' alone, whatever the policy's alert_on_warn.
- An alert resolves (recovery email) when no address of the check alerts and none is
  undetermined. A warn that becomes a fail escalates the alert: a new email, the
  acknowledgement of the milder problem ends and reminders count from that email. A fail that
  eases to a warn (with alert_on_warn) lowers the alert without an email.
- Reminders every POPC_REMINDER_HOURS while open and not acknowledged (or after the
  acknowledgement expired); before each, the current state is checked again.
- Flapping: when POPC_FLAP_CHANGES scans within 24 h changed something on a server, its
  owners get one notice per 24 h; meanwhile an alert that reopens a check resolved within
  the last 24 h opens silently (no opening or recovery mail; reminders still run).
- Maintenance windows: a Change recorded during one (`during_maintenance`) queues nothing.
  The alert it opens or escalates is held (Alert.withholds, in `notify`, the one place alert
  emails are queued) and alerts.holding mails it once when the window ends if the problem is
  still there; a recovery during a window is not mailed. Reminders wait for the window's
  end, and changes during a window count neither towards flapping nor for its notice.
- Waivers (popcompliance.waivers): the emails of a check a waiver covers are held the same
  way, until the waiver ends (expiry or revocation); alerts.holding mails it once then if the
  check still alerts.

Each server's pending Changes are processed with the server row locked (as recording does)
and marked `alerted_at` in the same transaction, so two runs never alert twice. A backlog is
judged against the current state: a regression already over when processed opens nothing,
and on upgrade the history recorded before alerts existed opens one alert per check that
fails now (as a new server's first scan would), none for what has been fixed since.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet

from popcompliance.alerts.expiry import thresholds
from popcompliance.alerts.messages import (
    absolute_url,
    channels_for,
    owners_first,
    queue,
    recipients_for,
)
from popcompliance.alerts.models import (
    EXPIRY_MAILED_CHECKS,
    NOTIFICATION_RETENTION,
    Alert,
    AlertQuerySet,
    ExpiryWarning,
    MaintenanceHold,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from popcompliance.compliance.certificates import seen_at_last_scan
from popcompliance.compliance.models import CertificateSighting, Change, CheckState, ScanRun
from popcompliance.compliance.recording import REGRESSION_SIGHTINGS
from popcompliance.inventory.models import Policy, Server
from popcompliance.maintenance.windows import servers_in_maintenance
from popcompliance.waivers.effect import waived_checks
from scanner import PASSING, check_title, whole_days_left, worst_status

FLAP_WINDOW = timedelta(hours=24)
# Servers (and reminders) handled per run; the next run, a minute later, takes the rest.
BATCH = 500


def alerting(status: str, check_id: str, policy: Policy) -> bool:
    if status == "fail":
        return True
    warns = status == "warn" and policy.alert_on_warn
    return warns and check_id not in EXPIRY_MAILED_CHECKS


def worst_alerting(states: Iterable[CheckState], policy: Policy) -> str | None:
    """The worst of the statuses that alert (fail, or warn as the policy says); None when
    none does."""
    statuses = [s.status for s in states if alerting(s.status, s.check_id, policy)]
    return worst_status(statuses) if statuses else None


def all_clear(states: Iterable[CheckState], policy: Policy) -> bool:
    """Nothing alerts and nothing is undetermined (an `error` may hide the old fail)."""
    return not any(alerting(s.status, s.check_id, policy) or s.status == "error" for s in states)


def opens(change: Change, policy: Policy) -> bool:
    """To an alerting status, from a known one; a first sighting only when it fails."""
    return alerting(change.status, change.check_id, policy) and (
        bool(change.previous_status) or change.status == "fail"
    )


def reminder_interval() -> timedelta | None:
    hours = settings.POPC_REMINDER_HOURS
    return timedelta(hours=hours) if hours > 0 else None


def first_reminder_at(mailed: datetime) -> datetime | None:
    """When the first reminder of an alert mailed at `mailed` is due (None: reminders off)."""
    every = reminder_interval()
    return mailed + every if every else None


def first_seen(change: Change) -> datetime:
    """When the bad status was first seen: a regression settles on its
    REGRESSION_SIGHTINGS-th consecutive sighting, so the scans before the settling one saw it
    first."""
    if not change.regression or change.scan_run is None:
        return change.created_at
    earlier = ScanRun.objects.filter(
        server_id=change.server_id, started_at__lt=change.scan_run.started_at
    ).order_by("-started_at")
    runs = list(earlier.values_list("started_at", flat=True)[: REGRESSION_SIGHTINGS - 1])
    return runs[-1] if len(runs) == REGRESSION_SIGHTINGS - 1 else change.created_at


def recent_changes(server: Server, now: datetime) -> QuerySet[Change]:
    """The server's status changes within FLAP_WINDOW (first sightings are no change, nor is
    what a maintenance window planned)."""
    recent = server.changes.filter(created_at__gt=now - FLAP_WINDOW, during_maintenance=False)
    return recent.exclude(previous_status="")


def is_flapping(server: Server, now: datetime) -> bool:
    """POPC_FLAP_CHANGES scans or more changed a status on the server within 24 h (the
    changes of one scan share their timestamp; first sightings are no change)."""
    recent = recent_changes(server, now).order_by()
    scans = recent.aggregate(scans=Count("created_at", distinct=True))["scans"]
    return 0 < settings.POPC_FLAP_CHANGES <= scans


def alert_context(
    alert: Alert, change: Change | None, states: list[CheckState], now: datetime
) -> dict[str, Any]:
    """What the alert, reminder and recovery templates show."""
    return {
        "server": alert.server,
        "server_url": absolute_url(alert.server),
        "alert": alert,
        "alert_url": absolute_url(alert),
        "change": change,
        "title": check_title(alert.check_id),
        "findings": sorted((s for s in states if s.status not in PASSING), key=lambda s: s.address),
        "first_seen": first_seen(change) if change else alert.opened_at,
        "reminder_hours": settings.POPC_REMINDER_HOURS,
        "now": now,
    }


class ServerPass:
    """One pass over one server's pending Changes, with the server row locked."""

    def __init__(self, server: Server, now: datetime) -> None:
        self.server, self.policy, self.now = server, server.policy, now
        self.states: dict[str, list[CheckState]] = defaultdict(list)
        for state in server.check_states.all():
            self.states[state.check_id].append(state)
        self.open = {alert.check_id: alert for alert in server.alerts.open()}
        self.flapping = is_flapping(server, now)
        self.queued = 0

    def apply(self, change: Change) -> None:
        alert = self.open.get(change.check_id)
        if alert is None:
            self.maybe_open(change)
        else:
            self.follow(alert, change)

    def maybe_open(self, change: Change) -> None:
        level = worst_alerting(self.states[change.check_id], self.policy)
        if level is None or not opens(change, self.policy):
            return
        alert = Alert.objects.create(
            server=self.server,
            check_id=change.check_id,
            status=level,
            address=change.address,
            summary=change.summary,
            remediation=change.remediation,
            opened_at=self.now,
            opened_by=change,
            silent=self.flapping and self.reopens(change.check_id),
            next_reminder_at=first_reminder_at(self.now),
        )
        self.open[change.check_id] = alert
        if not alert.silent and not self.mailed_by_expiry(change.check_id):
            self.notify(NotificationKind.ALERT, alert, change)

    def follow(self, alert: Alert, change: Change) -> None:
        states = self.states[change.check_id]
        level = worst_alerting(states, self.policy)
        if all_clear(states, self.policy):
            alert.resolve(change, self.now)
            del self.open[change.check_id]
            if not alert.silent:
                self.notify(NotificationKind.RECOVERY, alert, change)
        elif level and alert.worse_than(level):
            alert.lower(level)
        elif level and level != alert.status:
            alert.escalate(level, change, first_reminder_at(self.now))
            self.notify(NotificationKind.ALERT, alert, change, escalated=True)

    def mailed_by_expiry(self, check_id: str) -> bool:
        """Whether an expiry warning says this failure, so the alert's opening is not mailed
        too: the leaf this server serves is expired, or within the policy's critical days at a
        threshold no larger than them, and that threshold's warning was not spent before this
        server served the certificate. Otherwise (an intermediate's dates, a certificate not
        valid yet, critical days beyond every threshold) the alert mails it. A few queries,
        for cert.validity alone."""
        if check_id not in EXPIRY_MAILED_CHECKS:
            return False
        sightings = self.server.certificate_sightings.filter(seen_at_last_scan())
        served = list(sightings.select_related("certificate"))
        if not served or any(s.certificate.not_before > self.now for s in served):
            return False
        return any(self.warned_by_expiry(sighting) for sighting in served)

    def warned_by_expiry(self, sighting: CertificateSighting) -> bool:
        left = whole_days_left(sighting.certificate.not_after, self.now)
        closest = min((days for days in thresholds() if days >= left), default=None)
        if closest is None or closest > self.policy.critical_days:
            return False
        spent = ExpiryWarning.objects.filter(
            certificate=sighting.certificate, days=closest, created_at__lt=sighting.first_seen_at
        )
        return not spent.exists()

    def reopens(self, check_id: str) -> bool:
        since = self.now - FLAP_WINDOW
        return self.server.alerts.filter(check_id=check_id, resolved_at__gt=since).exists()

    @functools.cached_property
    def waived(self) -> frozenset[str]:
        """The checks a waiver covers now (one query, asked only when an email is due)."""
        return waived_checks(self.server, self.now)

    def notify(self, kind: str, alert: Alert, change: Change, **extra: Any) -> None:
        held = change.during_maintenance or alert.check_id in self.waived
        if alert.withholds(kind, held):
            return
        context = alert_context(alert, change, self.states[alert.check_id], self.now) | extra
        recipients = recipients_for([self.server])
        key = f"{kind}:{change.pk}"
        channels = channels_for([self.server])
        self.queued += queue(
            kind, context, recipients, key, self.now, channels, server=self.server, alert=alert
        )

    def flap_notice(self) -> None:
        """One notice per 24 h to the owners while the server keeps changing."""
        if not self.flapping or self.noticed_flapping():
            return
        changes = list(recent_changes(self.server, self.now).order_by("created_at", "id"))
        context = {
            "server": self.server,
            "server_url": absolute_url(self.server),
            "changes": changes,
        }
        scans = len({change.created_at for change in changes})
        context |= {"scans": scans, "threshold": settings.POPC_FLAP_CHANGES, "now": self.now}
        key = f"flapping:{self.server.pk}:{self.now.isoformat()}"
        recipients, channels = owners_first(self.server), channels_for([self.server])
        self.queued += queue(
            NotificationKind.FLAPPING,
            context,
            recipients,
            key,
            self.now,
            channels,
            server=self.server,
        )

    def noticed_flapping(self) -> bool:
        notices = self.server.notifications.filter(kind=NotificationKind.FLAPPING)
        return notices.filter(created_at__gt=self.now - FLAP_WINDOW).exists()


def process_pending_changes(now: datetime, server_id: int | None = None) -> int:
    """Alert on the Changes not handled yet (of one server, or all); how many emails were
    queued. Touches only the database."""
    pending = Change.objects.filter(alerted_at__isnull=True)
    if server_id is not None:
        pending = pending.filter(server_id=server_id)
    server_ids = pending.order_by("server_id").values_list("server_id", flat=True).distinct()
    return sum(process_server(pk, now) for pk in list(server_ids[:BATCH]))


def process_server(server_id: int, now: datetime) -> int:
    with transaction.atomic():
        servers = Server.objects.select_for_update(of=("self",)).select_related("policy")
        server = servers.filter(pk=server_id).first()
        if server is None:
            return 0
        pending = list(server.changes.filter(alerted_at__isnull=True).order_by("created_at", "id"))
        if not pending:
            return 0
        run = ServerPass(server, now)
        for change in pending:
            run.apply(change)
        if not all(change.during_maintenance for change in pending):
            run.flap_notice()
        Change.objects.filter(pk__in=[change.pk for change in pending]).update(alerted_at=now)
    return run.queued


def send_reminders(now: datetime) -> int:
    """Remind of the open, unacknowledged alerts that are due; how many emails were queued."""
    if reminder_interval() is None:
        return 0
    due = reminders_due(now).filter(server__paused=False)
    due = due.exclude(server__in=servers_in_maintenance(now))
    ids = list(due.order_by("next_reminder_at").values_list("pk", flat=True)[:BATCH])
    return sum(remind(pk, now) for pk in ids)


def reminders_due(now: datetime) -> AlertQuerySet:
    """Open, unacknowledged, due, and not held for a maintenance window (whose end mails it)."""
    due = Alert.objects.unacknowledged(now).filter(next_reminder_at__lte=now)
    return due.exclude(maintenance=MaintenanceHold.HELD)


def remind(alert_id: int, now: datetime) -> int:
    """One reminder, unless another run took it or the check is clear by now (its bad
    addresses went away without a Change): then the alert resolves instead."""
    with transaction.atomic():
        due = reminders_due(now).filter(pk=alert_id)
        alert = (
            due.select_for_update(skip_locked=True, of=("self",))
            .select_related("server__policy")
            .first()
        )
        if alert is None:
            return 0
        states = list(alert.server.check_states.filter(check_id=alert.check_id))
        kind = NotificationKind.REMINDER
        if all_clear(states, alert.server.policy):
            alert.resolve(None, now)
            if alert.silent:
                return 0
            kind = NotificationKind.RECOVERY
        else:
            alert.remind(now, reminder_interval() or timedelta(0))
        context = alert_context(alert, None, states, now)
        key = f"{kind}:alert{alert.pk}:{alert.reminders_sent}"
        recipients, channels = recipients_for([alert.server]), channels_for([alert.server])
        return queue(
            kind, context, recipients, key, now, channels, server=alert.server, alert=alert
        )


def prune(now: datetime) -> dict[str, int]:
    """Delete delivered and failed emails after NOTIFICATION_RETENTION, and resolved alerts
    after the Change history's retention."""
    done = Notification.objects.filter(
        status__in=[NotificationStatus.SENT, NotificationStatus.FAILED],
        created_at__lt=now - NOTIFICATION_RETENTION,
    )
    resolved = Alert.objects.filter(
        resolved_at__lt=now - timedelta(days=settings.POPC_CHANGE_RETENTION_DAYS)
    )
    # Counted per model: a delete's total also holds the attempts that went with the emails.
    return {
        "notifications": done.delete()[1].get(Notification._meta.label, 0),
        "alerts": resolved.delete()[1].get(Alert._meta.label, 0),
    }
