"""Certificate expiry warnings: each threshold (POPC_EXPIRY_THRESHOLDS days, then "expired")
once per certificate, to the owners of every server serving it and the global recipients.

A certificate counts as served at a (server, address, port) when it is the latest certificate
seen there, the server is not paused, and the server's last scan saw it (sightings are
refreshed at most every SEEN_GRAIN, so "saw it" means within SEEN_GRAIN of that scan). A
renewed certificate has a new fingerprint, hence a new Certificate row with no warnings: it
starts fresh, and the old one is no longer served, so it stops warning.

When several thresholds are crossed at once (a certificate first seen five days before
expiry), one warning goes out, for the closest; the others are recorded as passed over.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from popcompliance.alerts.messages import absolute_url, channels_for, queue, recipients_for
from popcompliance.alerts.models import ExpiryWarning, NotificationKind
from popcompliance.compliance.certificates import seen_at_last_scan
from popcompliance.compliance.models import Certificate, CertificateSighting
from popcompliance.inventory.models import Server


def thresholds() -> list[int]:
    """POPC_EXPIRY_THRESHOLDS in days, largest first, then 0 (expired)."""
    return sorted({int(days) for days in settings.POPC_EXPIRY_THRESHOLDS} | {0}, reverse=True)


def check_expiry(now: datetime) -> int:
    """Warn about the served certificates that crossed a threshold since the last run; how
    many emails were queued. Touches only the database."""
    days = thresholds()
    served = served_certificates(now + timedelta(days=days[0]))
    warned = thresholds_warned(served)
    return sum(
        warn(certificate, sightings, days, now)
        for certificate, sightings in served.items()
        # Most runs cross nothing new: skip those certificates without a query each.
        if set(crossed(certificate, days, now)) - warned[certificate.pk]
    )


def thresholds_warned(certificates: Iterable[Certificate]) -> dict[int, set[int]]:
    """The thresholds already recorded, by certificate id, in one query."""
    warned: dict[int, set[int]] = defaultdict(set)
    rows = ExpiryWarning.objects.filter(certificate__in=list(certificates))
    for certificate_id, threshold in rows.values_list("certificate_id", "days"):
        warned[certificate_id].add(threshold)
    return warned


def served_certificates(horizon: datetime) -> dict[Certificate, list[CertificateSighting]]:
    """Where each certificate expiring before `horizon` is served now."""
    newer = CertificateSighting.objects.filter(
        server=OuterRef("server"),
        address=OuterRef("address"),
        port=OuterRef("port"),
        first_seen_at__gt=OuterRef("last_seen_at"),
    )
    sightings = (
        CertificateSighting.objects.filter(
            ~Exists(newer),
            seen_at_last_scan(),
            certificate__not_after__lte=horizon,
            server__paused=False,
        )
        .select_related("certificate", "server")
        .order_by("certificate_id", "server__name", "address", "port")
    )
    served: dict[Certificate, list[CertificateSighting]] = defaultdict(list)
    for sighting in sightings:
        served[sighting.certificate].append(sighting)
    return served


def crossed(certificate: Certificate, days: list[int], now: datetime) -> list[int]:
    left = certificate.not_after - now
    return [threshold for threshold in days if left <= timedelta(days=threshold)]


def warn(
    certificate: Certificate, sightings: list[CertificateSighting], days: list[int], now: datetime
) -> int:
    """Record the thresholds newly crossed and mail the closest one. Re-reads what is recorded
    inside the transaction: another run may have warned since check_expiry looked."""
    due = crossed(certificate, days, now)
    if not due:
        return 0
    with transaction.atomic():
        known = set(certificate.expiry_warnings.values_list("days", flat=True))
        new = [threshold for threshold in due if threshold not in known]
        if not new:
            return 0
        closest = min(new)
        ExpiryWarning.objects.bulk_create(
            [
                ExpiryWarning(
                    certificate=certificate, days=d, notified=d == closest, created_at=now
                )
                for d in new
            ],
            ignore_conflicts=True,
        )
        warning = certificate.expiry_warnings.get(days=closest)
        return notify(warning, sightings, now)


def notify(warning: ExpiryWarning, sightings: list[CertificateSighting], now: datetime) -> int:
    servers = list({s.server_id: s.server for s in sightings}.values())
    context = {
        "certificate": warning.certificate,
        "name": certificate_name(warning.certificate),
        "threshold": warning.days,
        "expired": warning.days == 0,
        "servers": servers,
        "places": [(s, absolute_url(s.server)) for s in sightings],
        "now": now,
    }
    only: Server | None = servers[0] if len(servers) == 1 else None
    key = f"expiry:{warning.pk}"
    recipients, channels = recipients_for(servers), channels_for(servers)
    kind = NotificationKind.EXPIRY
    return queue(kind, context, recipients, key, now, channels, server=only, expiry_warning=warning)


def certificate_name(certificate: Certificate) -> str:
    names = certificate.dns_names or []
    return certificate.common_name or (names[0] if names else certificate.subject)
