"""The read queries behind the dashboard's list pages, each a fixed number of SQL statements
whatever the fleet's size (tests/test_dashboard_views.py pins the counts).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    OrderBy,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone
from django.utils.safestring import SafeString

import scanner
from popcompliance.alerts.models import Alert, AlertState
from popcompliance.alerts.outbox import EmailHealth, email_health
from popcompliance.compliance import history
from popcompliance.compliance.certificates import seen_at_last_scan
from popcompliance.compliance.history import FleetAsOf
from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    CheckState,
    FleetSnapshot,
)
from popcompliance.dashboard.catalog import (
    CLEARTEXT_CHECKS,
    SERVER_STATUS_ORDER,
    applies,
    cell_html,
    not_declared_html,
)
from popcompliance.inventory.models import Server
from popcompliance.waivers.effect import shown_status, waived_pairs

EXPIRING_WITHIN = timedelta(days=30)
EXPIRING_PANEL_KEY = "dashboard:expiring-certificates"
EXPIRING_PANEL_SECONDS = 60
EMAIL_HEALTH_KEY = "dashboard:email-health"
EMAIL_HEALTH_SECONDS = 30
TREND_DAYS = 90

# "Not passing": what an operator means by "servers failing cert.name".
PROBLEM_STATUSES = ("fail", "warn", "error")
# The overview's preset filter `exposure=cleartext`.
CLEARTEXT = "cleartext"


def status_counts() -> dict[str, int]:
    """Servers per settled status, every status present (one query). COUNT(*) in status order
    lets PostgreSQL count from the status index alone (1 ms at 10,000 servers, not 4)."""
    rows = Server.objects.order_by("status").values_list("status").annotate(n=Count("*"))
    found = dict(rows)
    return {status.value: found.get(status.value, 0) for status in SERVER_STATUS_ORDER}


def accepts_cleartext() -> Exists:
    """Whether some address of the server fails a check of a password sent in the clear."""
    return Exists(
        CheckState.objects.filter(
            server=OuterRef("pk"),
            check_id__in=scanner.CLEARTEXT_PASSWORD_CHECK_IDS,
            status="fail",
        )
    )


@dataclass(frozen=True)
class CleartextCounts:
    """The overview's "Accepts passwords in the clear" tile: how many servers accept a password
    in the clear on some protocol (`total`, each counted once), and how many on each protocol
    (`by_protocol`: the protocol's heading, its check id and the count, in catalog order)."""

    total: int
    by_protocol: list[tuple[str, str, int]]


def cleartext_counts() -> CleartextCounts:
    """One query: distinct servers failing any cleartext check, and each check, counted from
    the (check_id, status, server) index alone."""
    failing = CheckState.objects.filter(
        check_id__in=scanner.CLEARTEXT_PASSWORD_CHECK_IDS, status="fail"
    )
    counted = failing.aggregate(
        total=Count("server", distinct=True),
        **{
            spec.id: Count("server", distinct=True, filter=Q(check_id=spec.id))
            for spec in CLEARTEXT_CHECKS
        },
    )
    by_protocol = [(spec.group, spec.id, counted[spec.id]) for spec in CLEARTEXT_CHECKS]
    return CleartextCounts(counted["total"], by_protocol)


def sites() -> list[str]:
    rows = Server.objects.exclude(site="").order_by("site").values_list("site", flat=True)
    return list(rows.distinct())


def _status_rank() -> Case:
    whens = [When(status=s, then=Value(i)) for i, s in enumerate(SERVER_STATUS_ORDER)]
    return Case(*whens, default=Value(len(whens)), output_field=IntegerField())


# The sort keys of every server list, each with the columns it orders by, ascending; `-key`
# reverses them. Names are unique, so ending on the name makes the order total and the pages
# stable. `status` goes worst first.
SORTS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "host": ("host", "name"),
    "site": ("site", "name"),
    "status": ("status_rank", "name"),
    "policy": ("policy__name", "name"),
    "interval": ("scan_interval", "name"),
    "last_scan": ("last_scan_at", "name"),
}


def sort_order(sort: str | None) -> list[OrderBy]:
    """The ORDER BY of a sort key (`site`, `-last_scan`; unknown ones sort by name). Servers
    never scanned come first in ascending order, last in descending."""
    sort = sort or "name"
    columns = SORTS.get(sort.removeprefix("-"), SORTS["name"])
    if sort.startswith("-"):
        return [F(column).desc(nulls_last=True) for column in columns]
    return [F(column).asc(nulls_first=True) for column in columns]


def filtered_servers(filters: dict[str, Any]) -> QuerySet[Server]:
    """The servers of every server list (the overview's matrix, the inventory page) matching
    its filters, all optional: `q` (name, host or service name contains), `site`, `tag`,
    `status`, `policy`, `check` with `result` (servers whose check has that result on some
    address; `problem` means fail, warn or error), and `exposure` ("cleartext": servers that
    accept a password in the clear). Sorted by `sort` (SORTS). Lazy: no query yet."""
    servers = Server.objects.annotate(status_rank=_status_rank())
    if q := filters.get("q"):
        servers = servers.filter(
            Q(name__icontains=q) | Q(host__icontains=q) | Q(service_name__icontains=q)
        )
    for field_name, lookup in (("site", "site"), ("tag", "tags__name"), ("status", "status")):
        if filters.get(field_name):
            servers = servers.filter(**{lookup: filters[field_name]})
    if filters.get("policy"):
        servers = servers.filter(policy=filters["policy"])
    if filters.get("check") or filters.get("result"):
        servers = servers.filter(Exists(_matching_states(filters)))
    if filters.get("exposure") == CLEARTEXT:
        servers = servers.filter(accepts_cleartext())
    return servers.order_by(*sort_order(filters.get("sort")))


def _matching_states(filters: dict[str, str]) -> QuerySet[CheckState]:
    states = CheckState.objects.filter(server=OuterRef("pk"))
    if filters.get("check"):
        states = states.filter(check_id=filters["check"])
    result = filters.get("result")
    if result == "problem":
        states = states.filter(status__in=PROBLEM_STATUSES)
    elif result:
        states = states.filter(status=result)
    return states


# The filters that read a server's checks or status, which a past moment answers from the
# history; the others (name, site, tag, policy) read today's inventory.
AS_OF_FILTERS = ("status", "check", "result", "exposure")


def filtered_server_ids_as_of(filters: dict[str, Any], fleet: FleetAsOf) -> list[int]:
    """The ids of the servers matching `filters` as they were at `fleet.when`, sorted as
    `filtered_servers` sorts (the status sort by the status then)."""
    inventory = {name: value for name, value in filters.items() if name not in AS_OF_FILTERS}
    sort = filters.get("sort") or "name"
    by_status = sort.removeprefix("-") == "status"
    if by_status:
        inventory["sort"] = "name"
    servers = filtered_servers(inventory).filter(created_at__lte=fleet.when)
    ids = list(servers.values_list("pk", flat=True))
    if filters.get("status"):
        ids = [pk for pk in ids if fleet.statuses.get(pk) == filters["status"]]
    if filters.get("exposure") == CLEARTEXT:
        leaking = fleet.failing(scanner.CLEARTEXT_PASSWORD_CHECK_IDS)
        ids = [pk for pk in ids if pk in leaking]
    if filters.get("check") or filters.get("result"):
        matching = _matching_as_of(filters, fleet, ids)
        ids = [pk for pk in ids if pk in matching]
    if by_status:
        rank = {status: i for i, status in enumerate(SERVER_STATUS_ORDER)}
        ids.sort(key=lambda pk: rank[fleet.statuses[pk]], reverse=sort.startswith("-"))
    return ids


def _matching_as_of(filters: dict[str, Any], fleet: FleetAsOf, ids: list[int]) -> set[int]:
    """The servers whose check (`check`, any by default) had the result asked for then on some
    address (`problem`: fail, warn or error; any by default)."""
    check, result = filters.get("check"), filters.get("result")
    if result == "problem":
        wanted = set(PROBLEM_STATUSES)
    else:
        wanted = {result} if result else set(scanner.STATUS_RANK)
    checks: Iterable[history.CheckAsOf]
    if wanted <= set(PROBLEM_STATUSES):
        checks = itertools.chain.from_iterable(fleet.problems.values())
    else:
        checks = history.checks_as_of(fleet.when, Server.objects.filter(pk__in=ids))
    return {
        c.server_id for c in checks if c.raw_status in wanted and (not check or c.check_id == check)
    }


def cleartext_counts_as_of(fleet: FleetAsOf) -> CleartextCounts:
    """The "Accepts passwords in the clear" tile at a past moment."""
    total = len(fleet.failing(scanner.CLEARTEXT_PASSWORD_CHECK_IDS))
    by_protocol = [
        (spec.group, spec.id, len(fleet.failing([spec.id]))) for spec in CLEARTEXT_CHECKS
    ]
    return CleartextCounts(total, by_protocol)


@dataclass(frozen=True)
class Cell:
    """One check of one server in the matrix: its worst status over the addresses, or not
    applicable when the server does not declare the check's protocol (`declared` False)."""

    spec: scanner.CheckSpec
    status: str | None
    confirming: bool
    declared: bool = True

    @property
    def check_id(self) -> str:
        return self.spec.id

    @property
    def html(self) -> SafeString:
        if not self.declared:
            return not_declared_html(self.spec.id, self.spec.group)
        return cell_html(self.spec.id, self.status, self.confirming)


@dataclass
class MatrixRow:
    """One server in the overview's matrix: its status, its worst status per check, in catalog
    order, and the protocols on which it accepts a password in the clear (`leaks`, their
    headings)."""

    server: Server
    status: str
    cells: list[Cell] = field(default_factory=list)

    @property
    def cells_html(self) -> SafeString:
        return SafeString("".join(cell.html for cell in self.cells))

    @property
    def leaks(self) -> list[str]:
        return [
            cell.spec.group
            for cell in self.cells
            if cell.spec.cleartext_password and cell.declared and cell.status == "fail"
        ]


def matrix(servers: Iterable[Server], fleet: FleetAsOf | None = None) -> list[MatrixRow]:
    """Rows for a page of servers (already fetched, tags prefetched): one grouped query gives
    each server's worst status per check over its addresses, and whether it is confirming a
    change; as of a past moment (`fleet`), their history does. Which checks apply comes from
    the server's own row (its declared protocols)."""
    servers = list(servers)
    if fleet is None:
        worst = _worst_now(servers)
        statuses = {server.pk: server.status for server in servers}
    else:
        worst = _worst_as_of(servers, fleet.when)
        statuses = fleet.statuses
    rows = []
    for server in servers:
        found = worst.get(server.pk, {})
        declared = {protocol.name for protocol in server.declared_protocols}
        cells = []
        for spec in scanner.CATALOG:
            status, confirming = found.get(spec.id, (None, False))
            cells.append(Cell(spec, status, confirming, applies(spec, declared)))
        rows.append(MatrixRow(server, statuses[server.pk], cells))
    return rows


Worst = dict[int, dict[str, tuple[str, bool]]]


def _worst_now(servers: list[Server]) -> Worst:
    """The stored states, with the waivers in force now (one more query): a waived fail or
    warn shows as excepted."""
    ids = [s.pk for s in servers]
    waived = waived_pairs(ids, timezone.now())
    worst: Worst = defaultdict(dict)
    for server_id, check_id, rank, confirming in _worst_states(ids):
        status = shown_status(_RANK_STATUS[rank], (server_id, check_id) in waived)
        worst[server_id][check_id] = (status, bool(confirming))
    return worst


def _worst_as_of(servers: list[Server], when: datetime) -> Worst:
    """Settled statuses only: what was still being confirmed then is not kept."""
    page = Server.objects.filter(pk__in=[s.pk for s in servers])
    found = history.worst_by_check(history.checks_as_of(when, page))
    return {
        server_id: {check_id: (status, False) for check_id, status in by_check.items()}
        for server_id, by_check in found.items()
    }


_RANK_STATUS = {rank: status for status, rank in scanner.STATUS_RANK.items()}


def _worst_states(server_ids: list[int]) -> QuerySet[Any]:
    if not server_ids:
        return CheckState.objects.none()
    rank = Case(
        *[When(status=s, then=Value(r)) for s, r in scanner.STATUS_RANK.items()],
        output_field=IntegerField(),
    )
    pending = Case(When(~Q(candidate_status=""), then=Value(1)), default=Value(0))
    return (
        CheckState.objects.filter(server_id__in=server_ids)
        .order_by()
        .values("server_id", "check_id")
        .annotate(rank=Max(rank), confirming=Max(pending))
        .values_list("server_id", "check_id", "rank", "confirming")
    )


def trend(now: datetime) -> list[dict[str, Any]]:
    """The daily snapshots of the last TREND_DAYS days, oldest first, for the chart."""
    since = (now - timedelta(days=TREND_DAYS)).date()
    fields = ("total", "compliant", "non_compliant", "excepted", "unknown", "paused", "new")
    # values(): the chart needs no model instances, nor each day's failing_checks JSON.
    rows = FleetSnapshot.objects.filter(day__gt=since).order_by("day").values("day", *fields)
    return [{**row, "day": row["day"].isoformat()} for row in rows]


def served_now() -> Exists:
    """Whether a certificate was still served at its server's latest scan."""
    return Exists(
        CertificateSighting.objects.filter(seen_at_last_scan(), certificate=OuterRef("pk"))
    )


def expiring_certificates_panel(now: datetime) -> list[Certificate]:
    """The overview's "expiring soon" panel, cached for EXPIRING_PANEL_SECONDS in each web
    process. It is the overview's dearest query (bench/dashboard.py: 8 ms of 19 ms of SQL at
    10,000 servers with a year of renewals) and changes only when scans do; a minute late is
    still weeks early."""
    return cache.get_or_set(  # type: ignore[no-any-return]
        EXPIRING_PANEL_KEY, lambda: expiring_certificates(now), EXPIRING_PANEL_SECONDS
    )


def expiring_certificates(now: datetime, limit: int = 10) -> list[Certificate]:
    """Certificates still served that expire within EXPIRING_WITHIN (expired ones first).

    The server count is a subquery, not a join with GROUP BY: PostgreSQL then walks the
    not_after index and stops at the `limit`-th certificate served, instead of counting the
    sightings of every renewed certificate first (bench/dashboard.py: 16 → 8 ms at 10,000
    servers)."""
    servers = (
        CertificateSighting.objects.filter(certificate=OuterRef("pk"))
        .order_by()
        .values("certificate")
        .annotate(n=Count("server", distinct=True))
        .values("n")
    )
    return list(
        Certificate.objects.filter(served_now(), not_after__lte=now + EXPIRING_WITHIN)
        .annotate(servers=Subquery(servers, output_field=IntegerField()))
        .defer("pem")
        .order_by("not_after")[:limit]
    )


def certificates(filters: dict[str, str]) -> QuerySet[Certificate]:
    """Every certificate seen, soonest expiry first, with where it is served (prefetched with
    the servers). `current` keeps only those still served; `q` searches names."""
    found = Certificate.objects.annotate(current=served_now())
    if filters.get("current"):
        found = found.filter(current=True)
    if filters.get("q"):
        text = filters["q"]
        found = found.filter(
            Q(common_name__icontains=text)
            | Q(subject__icontains=text)
            | Q(sightings__server__name__icontains=text)
        ).distinct()
    sightings = CertificateSighting.objects.select_related("server").order_by(
        "server__name", "address", "port"
    )
    return (
        found.defer("pem")
        .prefetch_related(Prefetch("sightings", queryset=sightings))
        .order_by("not_after", "pk")
    )


@dataclass(frozen=True)
class OpenAlerts:
    """The overview's panel: how many alerts are open (neither acknowledged nor resolved, as
    the alerts page's "Open" tab) and the newest of them."""

    count: int
    newest: list[Alert]


def open_alerts(now: datetime, limit: int = 8) -> OpenAlerts:
    """One query: the newest open alerts with their servers, each row also carrying the total.

    The newest ids are picked in a subquery and the total is a scalar subquery, so only those
    few rows are joined with their servers; a window count over the join made PostgreSQL join
    every open alert with the whole server table first (bench/dashboard.py: 15 → 4 ms with
    2,000 open alerts on 10,000 servers)."""
    open_now = Alert.objects.in_state(AlertState.OPEN, now)
    total = open_now.order_by().values(n=Func("pk", function="COUNT"))
    ids = open_now.order_by("-opened_at", "-id").values("pk")[:limit]
    newest = list(
        Alert.objects.filter(pk__in=Subquery(ids))
        .select_related("server")
        .annotate(total=Subquery(total, output_field=IntegerField()))
        .order_by("-opened_at", "-id")
    )
    return OpenAlerts(newest[0].total if newest else 0, newest)


def email_health_banner(now: datetime) -> EmailHealth:
    """The overview's email banner, cached for EMAIL_HEALTH_SECONDS in each web process: one
    aggregate over the whole outbox (sent emails are kept 90 days) on every page load is
    more than a banner is worth, and a stuck outbox stays stuck for minutes."""
    return cache.get_or_set(  # type: ignore[no-any-return]
        EMAIL_HEALTH_KEY, lambda: email_health(now), EMAIL_HEALTH_SECONDS
    )
