"""The daily digest: once a day, one email per recipient that sums up their servers.

Alerts mail each regression as it happens; the digest is the morning read that says what is
still wrong. It lists, for the recipient's servers:
- the alerts still open (unacknowledged first, then acknowledged), fails before warns;
- the alerts opened and resolved in the last 24 hours;
- the certificates served now that expire within the first expiry threshold (30 days);
- the servers whose status is unknown (a check could not be determined).

Who gets one (POPC_DIGEST_RECIPIENTS, default: everyone who gets alerts) and about what: an
address that owns servers reads about those; a global recipient (POPC_ALERT_RECIPIENTS), or
an address that owns none, reads about the whole fleet. Nothing to say, no digest: a mail
that says "all fine" every morning teaches people to stop reading them.

It goes out at POPC_DIGEST_HOUR (UTC; unset: no digests). Beat asks every 15 minutes; the
first run at or after that hour queues the day's digests, and the Notification key
(digest:<day>:<recipient>) makes every later run, or a second beat, queue nothing again. A
beat that was down at that hour catches up the same day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.urls import reverse

from popcompliance.alerts.expiry import certificate_name, served_certificates, thresholds
from popcompliance.alerts.messages import absolute_url, dedupe, queue, site_url
from popcompliance.alerts.models import Alert, Notification, NotificationKind
from popcompliance.compliance.models import Certificate
from popcompliance.inventory.models import Server, ServerStatus
from scanner import STATUS_RANK, check_title

WINDOW = timedelta(hours=24)
# Lines per section: a digest of 2,000 open alerts is read by nobody; the page has them all.
SECTION_LIMIT = 50


@dataclass
class Digest:
    """What one recipient reads about one set of servers (the fleet when `fleet`)."""

    fleet: bool
    servers: int = 0
    open_alerts: list[Alert] = field(default_factory=list)
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    expiring: list[ExpiringCertificate] = field(default_factory=list)
    unknown: list[Server] = field(default_factory=list)

    def headline(self) -> str:
        """The counts, for the subject: "3 open alerts, 1 opened, 2 certificates expiring"."""
        parts = [
            counted(len(self.open_alerts), "open alert"),
            counted(len(self.opened), "opened", plural="opened"),
            counted(len(self.resolved), "resolved", plural="resolved"),
            counted(len(self.expiring), "certificate expiring", plural="certificates expiring"),
            counted(len(self.unknown), "server unknown", plural="servers unknown"),
        ]
        return ", ".join(part for part in parts if part)

    def is_empty(self) -> bool:
        sections = (self.open_alerts, self.opened, self.resolved, self.expiring, self.unknown)
        return not any(sections)


@dataclass(frozen=True)
class ExpiringCertificate:
    certificate: Certificate
    name: str
    servers: list[Server]

    @property
    def server_names(self) -> str:
        return ", ".join(server.name for server in self.servers)


def counted(n: int, singular: str, plural: str = "") -> str:
    """ "2 open alerts"; "" for none."""
    if not n:
        return ""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def due(now: datetime) -> bool:
    hour = settings.POPC_DIGEST_HOUR
    return hour is not None and now.astimezone(UTC).hour >= hour


def send_digests(now: datetime) -> int:
    """Queue today's digests once it is time; how many. The run that queued them remembers
    it in this process's cache, so the quarter-hourly runs after it read nothing; the
    Notification keys keep another worker from queuing them twice."""
    if not due(now):
        return 0
    done = f"digests-queued:{digest_day(now).isoformat()}"
    if cache.get(done):
        return 0
    queued = queue_digests(digest_recipients(), now)
    cache.set(done, True, timeout=int(WINDOW.total_seconds()))
    return queued


def queue_digests(recipients: list[str], now: datetime) -> int:
    """Queue today's digest for each recipient who has none yet and something to read."""
    day = digest_day(now)
    already = queued_on(day)
    waiting = [to for to in recipients if to.lower() not in already]
    if not waiting:
        return 0
    digests = build_digests(waiting, now)
    return sum(
        queue(NotificationKind.DIGEST, digest_context(digest, day, now), [to], digest_key(day), now)
        for to, digest in digests.items()
        if not digest.is_empty()
    )


def digest_day(now: datetime) -> date:
    """The day a digest is of, in UTC like POPC_DIGEST_HOUR."""
    return now.astimezone(UTC).date()


def digest_recipients() -> list[str]:
    """POPC_DIGEST_RECIPIENTS, or everyone who gets alerts: every owner and the global list."""
    if settings.POPC_DIGEST_RECIPIENTS:
        return dedupe(settings.POPC_DIGEST_RECIPIENTS)
    owners = Server.objects.exclude(owner_emails=[]).values_list("owner_emails", flat=True)
    return dedupe(chain(chain.from_iterable(owners), settings.POPC_ALERT_RECIPIENTS))


def queued_on(day: date) -> set[str]:
    """The recipients (lower case) whose digest of `day` is already in the outbox."""
    prefix = digest_key(day) + ":"
    rows = Notification.objects.filter(kind=NotificationKind.DIGEST, key__startswith=prefix)
    return {key.removeprefix(prefix) for key in rows.values_list("key", flat=True)}


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


@dataclass
class Fleet:
    """What every digest is cut from, read once (three queries), indexed by server."""

    servers: dict[int, Server]  # by id
    alerts: dict[int, list[Alert]]  # open, or opened or resolved within WINDOW
    expiring: dict[int, list[Certificate]]  # served now, expiring within the first threshold
    unknown: list[Server]

    @classmethod
    def read(cls, now: datetime) -> Fleet:
        servers = {s.pk: s for s in Server.objects.only("id", "name", "status", "owner_emails")}
        since = now - WINDOW
        recent = Q(resolved_at__isnull=True) | Q(opened_at__gte=since) | Q(resolved_at__gte=since)
        alerts: dict[int, list[Alert]] = defaultdict(list)
        for alert in Alert.objects.filter(recent).select_related("server", "acknowledged_by"):
            alerts[alert.server_id].append(alert)
        expiring: dict[int, list[Certificate]] = defaultdict(list)
        for certificate, sightings in served_certificates(
            now + timedelta(days=thresholds()[0])
        ).items():
            for server_id in {sighting.server_id for sighting in sightings}:
                expiring[server_id].append(certificate)
        unknown = [s for s in servers.values() if s.status == ServerStatus.UNKNOWN]
        return cls(servers, alerts, expiring, unknown)

    def digest(self, scope: set[int] | None, now: datetime) -> Digest:
        """The digest of the servers in `scope` (None: the whole fleet)."""
        ids = sorted(self.servers if scope is None else scope)
        alerts = [alert for server_id in ids for alert in self.alerts.get(server_id, [])]
        since = now - WINDOW
        still_open = [alert for alert in alerts if alert.resolved_at is None]
        return Digest(
            fleet=scope is None,
            servers=len(ids),
            open_alerts=sorted(still_open, key=lambda a: open_alert_order(a, now)),
            opened=sorted((a for a in alerts if a.opened_at >= since), key=lambda a: a.opened_at),
            resolved=sorted(
                (a for a in alerts if a.resolved_at and a.resolved_at >= since),
                key=lambda a: a.resolved_at or now,
            ),
            expiring=self.expiring_among(ids),
            unknown=[server for server in self.unknown if scope is None or server.pk in scope],
        )

    def expiring_among(self, ids: list[int]) -> list[ExpiringCertificate]:
        """The certificates served on these servers, soonest expiry first, with where."""
        where: dict[Certificate, list[Server]] = defaultdict(list)
        for server_id in ids:
            for certificate in self.expiring.get(server_id, []):
                where[certificate].append(self.servers[server_id])
        soonest_first = sorted(where.items(), key=lambda item: item[0].not_after)
        return [
            ExpiringCertificate(
                certificate, certificate_name(certificate), sorted(servers, key=lambda s: s.name)
            )
            for certificate, servers in soonest_first
        ]


def build_digests(recipients: list[str], now: datetime) -> dict[str, Digest]:
    """Every recipient's digest from one read of the fleet (three queries, however many
    recipients and servers); the whole fleet's is built once and shared."""
    fleet = Fleet.read(now)
    owned = servers_by_owner(fleet.servers.values())
    global_recipients = {to.strip().lower() for to in settings.POPC_ALERT_RECIPIENTS}
    whole: Digest | None = None
    digests = {}
    for to in recipients:
        scope = scope_of(to, owned, global_recipients)
        if scope is None:
            whole = whole or fleet.digest(None, now)
            digests[to] = whole
        else:
            digests[to] = fleet.digest(scope, now)
    return digests


def servers_by_owner(servers: Iterable[Server]) -> dict[str, set[int]]:
    """Server ids by owner address, lower case."""
    owned: dict[str, set[int]] = defaultdict(set)
    for server in servers:
        for owner in server.owner_emails:
            owned[owner.strip().lower()].add(server.pk)
    return owned


def scope_of(
    address: str, owned: dict[str, set[int]], global_recipients: set[str]
) -> set[int] | None:
    """The ids of the servers `address` owns; None (the whole fleet) for a global recipient
    (lower case in `global_recipients`) or an address that owns none."""
    if address.lower() in global_recipients:
        return None
    return owned.get(address.lower()) or None


def open_alert_order(alert: Alert, now: datetime) -> tuple[bool, int, datetime, str]:
    """Unacknowledged first, fails before warns, oldest first, then by server name."""
    rank = -STATUS_RANK[alert.status]
    return (alert.is_acknowledged(now), rank, alert.opened_at, alert.server.name)


def digest_context(digest: Digest, day: date, now: datetime) -> dict[str, Any]:
    """What the digest templates (templates/emails/digest*) read."""
    sections = {
        "open_alerts": digest.open_alerts,
        "opened": digest.opened,
        "resolved": digest.resolved,
        "expiring": digest.expiring,
        "unknown": digest.unknown,
    }
    return {
        "digest": digest,
        "day": day,
        "now": now,
        "expiry_days": thresholds()[0],
        "digest_hour": settings.POPC_DIGEST_HOUR,
        **shown_lines(sections, now),
        "more": {name: max(0, len(items) - SECTION_LIMIT) for name, items in sections.items()},
        "alerts_url": site_url(reverse("alerts:list")),
        "overview_url": site_url(reverse("dashboard:overview")),
        "certificates_url": site_url(reverse("dashboard:certificates")),
    }


def shown_lines(sections: dict[str, list[Any]], now: datetime) -> dict[str, list[Any]]:
    """Each section's first SECTION_LIMIT lines; alerts with what their line needs."""
    shown = {name: items[:SECTION_LIMIT] for name, items in sections.items()}
    for name in ("open_alerts", "opened", "resolved"):
        shown[name] = alert_lines(shown[name], now)
    return shown


def alert_lines(alerts: list[Alert], now: datetime) -> list[dict[str, object]]:
    return [
        {
            "alert": alert,
            "title": check_title(alert.check_id),
            "acknowledged": alert.is_acknowledged(now),
            "alert_url": absolute_url(alert),
            "server_url": absolute_url(alert.server),
        }
        for alert in alerts
    ]
