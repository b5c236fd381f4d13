"""The end of a maintenance window: the alerts held during it are mailed once, or never.

While a window covers a server, the alerts its Changes open or escalate are held
(Alert.withholds, from lifecycle.ServerPass.notify, where every alert email is queued, so the
hold covers every channel the outbox feeds). Beat runs `release_held` every minute; for each
held alert of a server no window covers any more:
- the problem is still there: one alert email now ("found during maintenance, still there"),
  and the reminders count from it; none if someone acknowledged it meanwhile (they know);
- the problem went away without a Change (say its address left DNS): the alert resolves
  without an email, as one resolved during the window did.

A waiver of the check (popcompliance.waivers) holds an alert the same way: it is released
once no window covers the server and no waiver covers the check, and its email then says
the exception ended.

Touches only the database. The server row is locked as lifecycle.process_server locks it, so
a release and a pass over the same server's Changes never both decide about one alert.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from popcompliance.alerts.lifecycle import BATCH, alert_context, all_clear, first_reminder_at
from popcompliance.alerts.messages import queue, recipients_for
from popcompliance.alerts.models import Alert, MaintenanceHold, NotificationKind
from popcompliance.inventory.models import Server
from popcompliance.maintenance.windows import servers_in_maintenance
from popcompliance.waivers.effect import ended_waiver, waived_now


def release_held(now: datetime) -> int:
    """Settle the held alerts of the servers out of maintenance whose check no waiver covers;
    how many emails were queued (two queries, then a few per alert released)."""
    held = Alert.objects.open().filter(maintenance=MaintenanceHold.HELD)
    over = held.exclude(server__in=servers_in_maintenance(now)).exclude(waived_now(now))
    over = over.order_by("opened_at", "pk")
    batch = list(over.values_list("pk", "server")[:BATCH])
    return sum(release(pk, server_id, now) for pk, server_id in batch)


def release(alert_id: int, server_id: int, now: datetime) -> int:
    """Settle one held alert, unless another run did (or a Change resolved it) first."""
    with transaction.atomic():
        servers = Server.objects.select_for_update(of=("self",)).select_related("policy")
        server = servers.filter(pk=server_id).first()
        if server is None:
            return 0
        held = server.alerts.open().filter(pk=alert_id, maintenance=MaintenanceHold.HELD)
        alert = held.first()
        if alert is None:
            return 0
        states = list(server.check_states.filter(check_id=alert.check_id))
        if all_clear(states, server.policy):
            alert.resolve(None, now)
            alert.mark_maintenance(MaintenanceHold.DROPPED)
            return 0
        alert.release(first_reminder_at(now))
        if alert.is_acknowledged(now):
            return 0
        ended = ended_waiver(server, alert.check_id, now)
        context = alert_context(alert, None, states, now) | {"released": True, "waiver": ended}
        # A later window may hold (and release) the same alert again, after an escalation.
        key = f"{NotificationKind.ALERT}:released:{alert.pk}:{now.isoformat()}"
        recipients = recipients_for([server])
        return queue(
            NotificationKind.ALERT, context, recipients, key, now, server=server, alert=alert
        )
