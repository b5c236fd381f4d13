"""Waivers in time: what their start and end change in the stored state, and the owners'
warning before they expire.

A server's status is stored (Server.status, so lists filter and count it cheaply); a waiver
starting or ending changes it without a scan. `apply` settles it at once for a grant or a
revocation; beat's `settle` (every minute, waivers.tasks) does the same for the waivers whose
start or expiry passed since, so a status is right within a minute of the moment. The pages
apply the waivers in force at read time (popcompliance.waivers.effect), to the minute.

While a waiver holds, the open alerts of its check are held (MaintenanceHold.HELD, as a
maintenance window holds them); alerts.holding mails each once when the waiver ended if the
check still alerts.

Touches only the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from itertools import chain

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet

from popcompliance.alerts.messages import dedupe, queue, site_url
from popcompliance.alerts.models import Alert, MaintenanceHold, NotificationKind
from popcompliance.compliance.models import CheckState
from popcompliance.compliance.recording import settled_status
from popcompliance.inventory.models import Server
from popcompliance.waivers.effect import servers_covered, waived_pairs
from popcompliance.waivers.models import WARN_BEFORE, Waiver

# Waivers settled or warned about per run; the next run, a minute later, takes the rest.
BATCH = 200


def revoke(pk: int, user: object, now: datetime) -> tuple[Waiver, str | None]:
    """End waiver `pk` now and settle what it held, under the waiver's row lock: of two admins
    revoking it at once, one does and the other is told it had ended. Returns the waiver and,
    when it had already ended, how (`revoked` or `expired`). Run inside a transaction."""
    waiver = Waiver.objects.select_for_update().get(pk=pk)
    ended = waiver.state(now)
    if ended in ("revoked", "expired"):
        return waiver, ended
    waiver.revoke(user, now)
    apply([waiver], now)
    return waiver, None


def apply(waivers: Iterable[Waiver], now: datetime) -> int:
    """Settle what `waivers` (granted, revoked, started or expired) change at `now`: the
    stored status of every server they cover, and the hold on the open alerts of the checks
    in force. Marks them settled; how many servers changed status."""
    waivers = list(waivers)
    changed = resettle(servers_covered(waivers), now)
    for waiver in waivers:
        if waiver.holds_at(now):
            hold_alerts(waiver, servers_covered([waiver]))
    Waiver.objects.filter(pk__in=[w.pk for w in waivers]).update(settled_at=now)
    return changed


def resettle(server_ids: Iterable[int], now: datetime) -> int:
    """Judge the stored status of `server_ids` again from their check states and the waivers
    in force at `now`, with the rows locked as a scan's recording locks them; how many
    changed. Servers never scanned (no state) keep theirs. A fixed number of queries."""
    ids = sorted(set(server_ids))
    if not ids:
        return 0
    with transaction.atomic():
        locked = Server.objects.select_for_update(of=("self",)).filter(pk__in=ids)
        servers = list(locked.order_by("pk").only("pk", "status", "status_changed_at", "paused"))
        states: dict[int, list[CheckState]] = defaultdict(list)
        for state in CheckState.objects.filter(server_id__in=ids).only(
            "server_id", "check_id", "status"
        ):
            states[state.server_id].append(state)
        waived: dict[int, set[str]] = defaultdict(set)
        for server_id, check_id in waived_pairs(ids, now):
            waived[server_id].add(check_id)
        changed = [
            server
            for server in servers
            if states[server.pk]
            and server.settle_status(settled_status(states[server.pk], waived[server.pk]), now)
        ]
        Server.objects.bulk_update(changed, ["status", "status_changed_at"])
    return len(changed)


def hold_alerts(waiver: Waiver, server_ids: Iterable[int]) -> int:
    """Hold the open alerts of the waived check on the covered servers: no reminder while
    the waiver holds, one email when it ends if the check still alerts (alerts.holding)."""
    alerts = Alert.objects.open().filter(check_id=waiver.check_id, server_id__in=list(server_ids))
    return alerts.exclude(maintenance=MaintenanceHold.HELD).update(maintenance=MaintenanceHold.HELD)


def due(now: datetime) -> QuerySet[Waiver]:
    """The waivers whose start, expiry or revocation passed since they were last settled."""
    settled = F("settled_at")
    started = Q(starts_at__lte=now) & (Q(settled_at__isnull=True) | Q(starts_at__gt=settled))
    expired = Q(expires_at__lte=now, expires_at__gt=settled)
    revoked = Q(revoked_at__lte=now, revoked_at__gt=settled)
    return Waiver.objects.filter(started | expired | revoked)


def settle(now: datetime) -> int:
    """Beat's step: settle the due waivers; how many servers changed status."""
    return apply(due(now).order_by("pk")[:BATCH], now)


def warn_expiring(now: datetime) -> int:
    """Tell the owners of the servers each waiver covers, once, that it expires within
    WARN_BEFORE; how many emails were queued. Nothing is lost when SMTP is down: the outbox
    retries."""
    soon = Waiver.objects.in_force(now).filter(
        expires_at__lte=now + WARN_BEFORE, expiry_warned_at__isnull=True
    )
    ids = list(soon.order_by("expires_at").values_list("pk", flat=True)[:BATCH])
    return sum(warn(pk, now) for pk in ids)


def warn(waiver_id: int, now: datetime) -> int:
    """One waiver's warning, unless another run sent it first."""
    with transaction.atomic():
        unwarned = Waiver.objects.filter(pk=waiver_id, expiry_warned_at__isnull=True)
        waiver = unwarned.select_for_update(skip_locked=True, of=("self",)).first()
        if waiver is None:
            return 0
        servers = list(Server.objects.filter(pk__in=servers_covered([waiver])).order_by("name"))
        owners = dedupe(chain.from_iterable(server.owner_emails for server in servers))
        recipients = owners or dedupe(settings.POPC_ALERT_RECIPIENTS)
        context = {
            "waiver": waiver,
            "servers": servers,
            "waiver_url": site_url(waiver.get_absolute_url()),
            "now": now,
        }
        one = servers[0] if len(servers) == 1 else None
        key = f"{NotificationKind.WAIVER_EXPIRY}:{waiver.pk}"
        queued = queue(NotificationKind.WAIVER_EXPIRY, context, recipients, key, now, server=one)
        waiver.expiry_warned_at = now
        waiver.save(update_fields=["expiry_warned_at"])
    return queued
