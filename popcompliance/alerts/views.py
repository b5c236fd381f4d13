"""The alerts pages: the list by state (open, acknowledged, resolved), one alert with the emails
sent about it and their delivery attempts, and acknowledging an alert.

Reading needs a signed-in user (any role); acknowledging is a POST by an operator. The list
runs a fixed number of queries whatever the number of alerts (pinned in
tests/test_alert_views.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

import scanner
from popcompliance.accounts.roles import OPERATOR, role_required
from popcompliance.alerts.forms import AcknowledgeForm, state_of
from popcompliance.alerts.models import (
    ALERT_STATE_COLOURS,
    Alert,
    AlertQuerySet,
    AlertState,
    AttemptOutcome,
    NotificationStatus,
)
from popcompliance.compliance.models import Change, CheckState
from popcompliance.dashboard.catalog import Badge
from popcompliance.waivers.effect import waived_checks, waived_pairs

ALERTS_PER_PAGE = 50
# How many of the check's changes during the alert its page shows, newest first.
CHANGES_SHOWN = 50

# Newest first: open and acknowledged alerts by when they opened, resolved ones by when they
# ended (what an operator looks for there is "what just recovered"). The id makes it total.
ORDERING = {
    AlertState.OPEN: ("-opened_at", "-id"),
    AlertState.ACKNOWLEDGED: ("-opened_at", "-id"),
    AlertState.RESOLVED: ("-resolved_at", "-id"),
}

# A state is shown by colour, symbol and word together, never by colour alone.
STATE_SYMBOLS = {"open": "!", "acknowledged": "◑", "resolved": "✓"}
DELIVERY_SYMBOLS = {"pending": "…", "sent": "✓", "failed": "✗"}
DELIVERY_COLOURS = {"pending": "amber", "sent": "green", "failed": "red"}
ATTEMPT_SYMBOLS = {"sent": "✓", "transient": "↻", "permanent": "✗"}
ATTEMPT_COLOURS = {"sent": "green", "transient": "amber", "permanent": "red"}


def state_badge(state: str) -> Badge:
    return Badge(ALERT_STATE_COLOURS[state], STATE_SYMBOLS[state], AlertState(state).label)


def delivery_badge(status: str) -> Badge:
    word = str(NotificationStatus(status).label)
    return Badge(DELIVERY_COLOURS[status], DELIVERY_SYMBOLS[status], word)


def attempt_badge(outcome: str) -> Badge:
    word = str(AttemptOutcome(outcome).label)
    return Badge(ATTEMPT_COLOURS[outcome], ATTEMPT_SYMBOLS[outcome], word)


def _alerts() -> AlertQuerySet:
    """Alerts with what every alerts page shows beside them: the server, who acknowledged, and
    the Change that resolved it (whether that was during a maintenance window)."""
    return Alert.objects.select_related("server", "acknowledged_by", "resolved_by")


@dataclass(frozen=True)
class AlertRow:
    """One alert as a page shows it: its state at `now` and, while it is not resolved, the
    addresses where its check does not pass now."""

    alert: Alert
    state: str
    findings: list[CheckState] = field(default_factory=list)
    # Held by a waiver of its check (popcompliance.waivers) rather than a maintenance window.
    waived: bool = False

    @property
    def badge(self) -> Badge:
        return state_badge(self.state)

    @property
    def check_title(self) -> str:
        return scanner.check_title(self.alert.check_id)

    @property
    def ack_expired(self) -> bool:
        """Acknowledged once, but the acknowledgement ran out: reminders are back."""
        return self.alert.acknowledged_at is not None and self.state == AlertState.OPEN


def state_counts(now: datetime) -> dict[str, int]:
    """How many alerts each tab holds, in one query. The conditions are AlertQuerySet's
    (tests/test_alert_views.py checks that the two agree)."""
    unresolved = Q(resolved_at__isnull=True)
    holds = Q(acknowledged_at__isnull=False) & (Q(ack_until__isnull=True) | Q(ack_until__gt=now))
    lapsed_or_never = Q(acknowledged_at__isnull=True) | Q(ack_until__lte=now)
    return Alert.objects.aggregate(
        open=Count("pk", filter=unresolved & lapsed_or_never),
        acknowledged=Count("pk", filter=unresolved & holds),
        resolved=Count("pk", filter=~unresolved),
    )


def findings(alerts: Iterable[Alert]) -> dict[tuple[int, str], list[CheckState]]:
    """The current states that do not pass, of the checks of the unresolved `alerts`, by
    (server id, check id): one query for a whole page, none when every alert is resolved."""
    pending = [alert for alert in alerts if alert.resolved_at is None]
    if not pending:
        return {}
    wanted = {(alert.server_id, alert.check_id) for alert in pending}
    states = CheckState.objects.filter(
        server_id__in={server_id for server_id, _ in wanted},
        check_id__in={check_id for _, check_id in wanted},
    ).exclude(status__in=scanner.PASSING)
    # Only what the list shows of them: not each state's summary and remediation text.
    states = states.only("server_id", "check_id", "address", "status")
    found: dict[tuple[int, str], list[CheckState]] = defaultdict(list)
    # The filter above is a cross product: keep only the pairs that have an alert.
    for state in states.order_by("address"):
        if (state.server_id, state.check_id) in wanted:
            found[(state.server_id, state.check_id)].append(state)
    return found


def rows(alerts: Iterable[Alert], now: datetime) -> list[AlertRow]:
    """A page of alerts as rows (one more query, for the addresses; see `findings`; and one
    for the waivers when some alert is held)."""
    alerts = list(alerts)
    current = findings(alerts)
    held = {alert.server_id for alert in alerts if alert.held}
    waived = waived_pairs(held, now) if held else frozenset()
    return [
        AlertRow(
            alert,
            alert.state(now),
            current.get((alert.server_id, alert.check_id), []),
            alert.held and (alert.server_id, alert.check_id) in waived,
        )
        for alert in alerts
    ]


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    """The alerts in one state (`?state=open|acknowledged|resolved`), newest first, paginated,
    with each tab's count."""
    now = timezone.now()
    state = state_of(request.GET.get("state"))
    ordering = ORDERING[state]
    ids = Alert.objects.in_state(state, now).order_by(*ordering).values_list("pk", flat=True)
    counts = state_counts(now)
    paginator = Paginator(ids, ALERTS_PER_PAGE)
    # The tab already counted these (same `now`): spares a second scan of the alerts.
    paginator.count = counts[state]
    page = paginator.get_page(request.GET.get("page"))
    # The page's ids are picked in a subquery, so only those rows are joined with their servers
    # and acknowledgers; paging the join made PostgreSQL join every alert in the tab first.
    page.object_list = list(_alerts().filter(pk__in=Subquery(page.object_list)).order_by(*ordering))
    context = {
        "state": state,
        "state_label": AlertState(state).label,
        "tabs": [(value, label, counts[value]) for value, label in AlertState.choices],
        "page": page,
        "rows": rows(page, now),
        "now": now,
    }
    return render(request, "alerts/alerts.html", context)


@login_required
@require_GET
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One alert: its evidence, where its check fails now, the check's changes while it was
    open, every email sent about it with each delivery attempt, and (for operators) the
    acknowledgement form. `?acknowledge` (the list's button) puts the cursor in the form."""
    now = timezone.now()
    alert = get_object_or_404(_alerts().select_related("opened_by"), pk=pk)
    form = AcknowledgeForm(now=now, initial=_current_acknowledgement(alert, now))
    if "acknowledge" in request.GET:
        form.fields["comment"].widget.attrs["autofocus"] = True
    return render(request, "alerts/alert.html", _detail_context(alert, form, now))


def _current_acknowledgement(alert: Alert, now: datetime) -> dict[str, Any]:
    """Acknowledging again starts from the acknowledgement that holds (to extend it)."""
    if not alert.is_acknowledged(now):
        return {}
    return {"comment": alert.ack_comment, "until": alert.ack_until}


def _held_by_waiver(alert: Alert, now: datetime) -> bool:
    """Whether a waiver of its check holds the alert (one query, for a held alert only)."""
    return alert.held and alert.check_id in waived_checks(alert.server, now)


def _detail_context(alert: Alert, form: AcknowledgeForm, now: datetime) -> dict[str, Any]:
    """What the alert page shows; a fixed number of queries (states, changes, emails and
    their attempts)."""
    states = CheckState.objects.filter(server_id=alert.server_id, check_id=alert.check_id)
    # The change that opened the alert may predate it (alerts are processed after recording).
    start = alert.opened_by.created_at if alert.opened_by else alert.opened_at
    changes = Change.objects.filter(
        server_id=alert.server_id, check_id=alert.check_id, created_at__gte=start
    )
    if alert.resolved_at is not None:
        changes = changes.filter(created_at__lte=alert.resolved_at)
    notifications = list(alert.notifications.prefetch_related("attempts"))
    return {
        "alert": alert,
        "row": AlertRow(alert, alert.state(now), waived=_held_by_waiver(alert, now)),
        "states": list(states.order_by("address")),
        "changes": list(changes[:CHANGES_SHOWN]),
        "notifications": [
            (n, delivery_badge(n.status), [(a, attempt_badge(a.outcome)) for a in n.attempts.all()])
            for n in notifications
        ],
        "form": form,
        "now": now,
    }


@role_required(OPERATOR)
@require_POST
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """Acknowledge an alert that is not resolved (again, to change the comment or extend it):
    no reminders until `until`, or until it is resolved. Then show it under "Acknowledged"."""
    now = timezone.now()
    alert = get_object_or_404(_alerts().select_related("opened_by"), pk=pk)
    if alert.resolved_at is not None:
        # It recovered while the operator was typing: nothing is left to silence.
        messages.warning(request, f"{_name(alert)} was resolved meanwhile: nothing to acknowledge.")
        return redirect(alert)
    form = AcknowledgeForm(request.POST, now=now)
    if not form.is_valid():
        return render(request, "alerts/alert.html", _detail_context(alert, form, now))
    until = form.cleaned_data["until"]
    alert.acknowledge(request.user, form.cleaned_data["comment"], until, now=now)
    resume = f"{timezone.localtime(until):%Y-%m-%d %H:%M}" if until else "it is resolved"
    messages.success(request, f"Acknowledged {_name(alert)}: no reminders until {resume}.")
    return redirect(f"{reverse('alerts:list')}?state={AlertState.ACKNOWLEDGED}#alert-{alert.pk}")


def _name(alert: Alert) -> str:
    return f"the alert on {alert.server.name} ({alert.check_id})"
