"""The fleet's metrics in Prometheus' text exposition format (version 0.0.4).

Every family is computed by one aggregate query (the three email outbox families share one),
so scraping costs the same eight queries whatever the size of the fleet:

    popc_servers{status}                       servers by settled status
    popc_checks_failing{check}                 unpaused servers failing each check
    popc_certificate_expiry_days{server}       days to the earliest expiry of a certificate the
                                               server still serves (unpaused servers; negative:
                                               expired)
    popc_scan_duration_seconds                 histogram of the scans started in the last hour
    popc_queue_lag_seconds                     age of the oldest due, unclaimed, unpaused server
    popc_servers_dispatch_failing              servers the dispatcher could not dispatch
    popc_heartbeat_timestamp_seconds{process,name}  beat's, the dispatcher's, each worker's and
                                               each location queue's (unix; ops.heartbeats)
    popc_heartbeat_failing{process,name}       1 when that process's last round failed
    popc_notifications{status}                 emails in the outbox: pending, sent, failed (sent
                                               and failed ones are kept 90 days)
    popc_notification_oldest_pending_seconds   age of the oldest email not yet sent: SMTP is
                                               down or refusing when it keeps growing
    popc_notifications_undelivered             emails the overview warns about (alerts.outbox:
                                               pending after a failed attempt or for longer
                                               than LONG_PENDING, or failed lately)
    popc_channel_messages_undelivered{channel}  the same, of the messages to each alert channel
                                               (a webhook down or refusing)

The histogram is a window (recomputed from ScanRun rows at each scrape), not a counter that
only grows: graph its buckets directly rather than through rate().
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, Sum

from popcompliance.alerts.models import Channel, Notification, NotificationStatus
from popcompliance.alerts.outbox import EMAILS, LONG_PENDING, channel_undelivered, undelivered
from popcompliance.compliance.certificates import seen_at_last_scan
from popcompliance.compliance.models import CertificateSighting, CheckState, ScanRun
from popcompliance.inventory.models import Server, ServerStatus
from popcompliance.ops import heartbeats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds of the scan duration buckets, in seconds.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DURATION_WINDOW = timedelta(hours=1)
LONG_PENDING_MINUTES = int(LONG_PENDING.total_seconds() // 60)

Sample = tuple[dict[str, str], float]


def escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: integers without a fraction, +Inf spelled as Prometheus wants."""
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """The HELP and TYPE lines of one metric family, then one line per sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        if labels:
            pairs = ",".join(f'{key}="{escape(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{pairs}}} {number(value)}")
        else:
            lines.append(f"{name} {number(value)}")
    return lines


def servers_by_status() -> list[Sample]:
    counts = dict(Server.objects.values_list("status").annotate(n=Count("id")).order_by())
    return [({"status": status}, counts.get(status, 0)) for status in ServerStatus.values]


def checks_failing() -> list[Sample]:
    failing = Count("server", distinct=True, filter=Q(status="fail", server__paused=False))
    rows = CheckState.objects.values_list("check_id").annotate(n=failing).order_by("check_id")
    return [({"check": check_id}, n) for check_id, n in rows]


def certificate_expiry(now: datetime) -> list[Sample]:
    rows = (
        CertificateSighting.objects.filter(seen_at_last_scan(), server__paused=False)
        .values_list("server__name")
        .annotate(earliest=Min("certificate__not_after"))
        .order_by("server__name")
    )
    return [
        ({"server": name}, round((earliest - now).total_seconds() / 86400, 3))
        for name, earliest in rows
    ]


def scan_durations(now: datetime) -> list[str]:
    """The histogram family's lines (buckets, sum, count) for scans started in the window."""
    name = "popc_scan_duration_seconds"
    buckets = {
        f"le{i}": Count("id", filter=Q(duration_ms__lte=bound * 1000))
        for i, bound in enumerate(DURATION_BUCKETS)
    }
    totals = ScanRun.objects.filter(started_at__gte=now - DURATION_WINDOW).aggregate(
        count=Count("id"), total_ms=Sum("duration_ms"), **buckets
    )
    lines = [
        f"# HELP {name} Duration of the scans started in the last hour.",
        f"# TYPE {name} histogram",
    ]
    for i, bound in enumerate(DURATION_BUCKETS):
        lines.append(f'{name}_bucket{{le="{number(bound)}"}} {totals[f"le{i}"]}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {totals["count"]}')
    lines.append(f"{name}_sum {number((totals['total_ms'] or 0) / 1000)}")
    lines.append(f"{name}_count {totals['count']}")
    return lines


def schedule(now: datetime) -> tuple[float, int]:
    """Seconds since the oldest due, unclaimed, unpaused server became due (0 if none is), and
    how many servers the dispatcher could not dispatch last time."""
    due = Q(paused=False, next_scan_at__lte=now)
    totals = Server.objects.aggregate(
        oldest=Min("next_scan_at", filter=due),
        failing=Count("id", filter=~Q(dispatch_error="")),
    )
    return age_seconds(now, totals["oldest"]), totals["failing"]


def outbox(now: datetime) -> tuple[list[Sample], float, int]:
    """Emails by status, the age in seconds of the oldest pending one (0 if none), and how
    many are undelivered as the overview's banner counts them."""
    pending = Q(status=NotificationStatus.PENDING)
    counts = {status: Count("id", filter=Q(status=status)) for status in NotificationStatus.values}
    totals = Notification.objects.filter(EMAILS).aggregate(
        oldest=Min("created_at", filter=pending),
        undelivered=Count("id", filter=undelivered(now)),
        **counts,
    )
    age = age_seconds(now, totals.pop("oldest"))
    stuck = totals.pop("undelivered")
    return [({"status": status}, n) for status, n in totals.items()], age, stuck


def channels_undelivered(now: datetime) -> list[Sample]:
    """Per channel, its messages that are undelivered as an email would be."""
    rows = Channel.objects.annotate(
        stuck=Count("notifications", filter=Q(notifications__in=_undelivered_to_channels(now)))
    )
    return [({"channel": name}, stuck) for name, stuck in rows.values_list("name", "stuck")]


def _undelivered_to_channels(now: datetime) -> Iterable[int]:
    return Notification.objects.filter(channel_undelivered(now)).values("pk")


def age_seconds(now: datetime, since: datetime | None) -> float:
    """Seconds from `since` to `now`; 0 when there is nothing waiting (None)."""
    return max(0.0, (now - since).total_seconds()) if since else 0.0


def render(now: datetime) -> str:
    """The whole exposition, as of `now`."""
    by_status, oldest_pending, stuck = outbox(now)
    lag, dispatch_failing = schedule(now)
    seen, failing = heartbeats.samples()
    lines = [
        *family("popc_servers", "gauge", "Servers by settled status.", servers_by_status()),
        *family(
            "popc_checks_failing", "gauge", "Unpaused servers failing each check.", checks_failing()
        ),
        *family(
            "popc_certificate_expiry_days",
            "gauge",
            "Days to the earliest expiry of a certificate the server serves.",
            certificate_expiry(now),
        ),
        *scan_durations(now),
        *family(
            "popc_queue_lag_seconds",
            "gauge",
            "Age of the oldest due server not yet claimed by the dispatcher.",
            [({}, round(lag, 3))],
        ),
        *family(
            "popc_servers_dispatch_failing",
            "gauge",
            "Servers the dispatcher could not dispatch last time (see their pages).",
            [({}, dispatch_failing)],
        ),
        *family(
            "popc_heartbeat_timestamp_seconds",
            "gauge",
            "When beat, the dispatcher, each worker and each location's queue last ran"
            " (unix time).",
            seen,
        ),
        *family(
            "popc_heartbeat_failing",
            "gauge",
            "1 when the process's last round failed (dispatching fails), else 0.",
            failing,
        ),
        *family("popc_notifications", "gauge", "Emails in the outbox by status.", by_status),
        *family(
            "popc_notification_oldest_pending_seconds",
            "gauge",
            "Age of the oldest email not sent yet.",
            [({}, round(oldest_pending, 3))],
        ),
        *family(
            "popc_notifications_undelivered",
            "gauge",
            f"Emails pending after a failed attempt or for over {LONG_PENDING_MINUTES} minutes,"
            " or failed within a day.",
            [({}, stuck)],
        ),
        *family(
            "popc_channel_messages_undelivered",
            "gauge",
            "Messages to each alert channel pending after a failed attempt or for over "
            f"{LONG_PENDING_MINUTES} minutes, or failed within a day.",
            channels_undelivered(now),
        ),
    ]
    return "\n".join(lines) + "\n"
