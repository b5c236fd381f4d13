"""The fleet's compliance as of any moment: what each check of each server was, and so each
server's status, read from the history. The overview's "as of" view, the API's `?as_of=` and
the compliance reports all read it, so their numbers agree.

`when=None` is now: it reads what the dashboard reads (Server.status, CheckState). A past moment
is rebuilt from the Change rows, one per settled transition of a check of an address seen from
a location (a "key"), by these rules:

- the key's latest Change at or before `when` gives its status then (and since when);
- with none, but a later Change: that Change's `previous_status` ("": not yet observed);
- with no Change at all: its check state, if that was settled by then. A first sighting that
  passes writes no Change, so such a check has been passing since its state's `since`.

A check state that stops applying (an address the name no longer resolves to, a location the
server is no longer probed from) leaves a Change to `skip` (compliance.models.retire_states),
so the moments after it do not show it still failing.

Waivers (popcompliance.waivers) in force at the moment apply as they do on today's pages: a
waived `fail` or `warn` reads `excepted` (the scanner's verdict stays in `verdict`), and a
server whose only problems are excepted is excepted. Paused servers count as paused from
their pause on; earlier pauses are not kept. History older than POPC_CHANGE_RETENTION_DAYS is
pruned: a moment before that is refused (HistoryPruned).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import FirstValue, RowNumber
from django.utils import timezone

import scanner
from popcompliance.compliance.models import Change, CheckState
from popcompliance.dashboard.catalog import SERVER_STATUS_ORDER
from popcompliance.inventory.models import Server, ServerStatus
from popcompliance.waivers.effect import EXCEPTED, WaivedPairs, shown_status, waived_pairs

# Servers whose checks are read at once: bounds memory (a report streams 10,000 servers' checks)
# while a page of servers is one batch, in a fixed number of queries.
SERVERS_PER_BATCH = 500

Key = tuple[int, str, str, str]  # server id, location, address, check id


class HistoryPruned(ValueError):
    """The moment asked for is older than the history kept."""


@dataclass(frozen=True)
class CheckAsOf:
    """One check of one address of a server, seen from one location, as it was at a moment."""

    server_id: int
    location: str
    address: str  # "" = about the name
    check_id: str
    status: str
    since: datetime | None  # when it entered this status; None when that is not known
    summary: str
    remediation: str
    # The scanner's verdict when a waiver changed `status` to excepted ("": it did not).
    verdict: str = ""

    @property
    def raw_status(self) -> str:
        """The scanner's verdict, before any waiver: what the failing counts count."""
        return self.verdict or self.status


def moment(when: datetime | None, now: datetime | None = None) -> datetime | None:
    """`when` checked against the history kept: None (now) for now or a future moment; a moment
    before the oldest Change kept raises HistoryPruned."""
    now = now or timezone.now()
    if when is None or when >= now:
        return None
    oldest = now - timedelta(days=settings.POPC_CHANGE_RETENTION_DAYS)
    if when < oldest:
        raise HistoryPruned(
            f"History is kept for {settings.POPC_CHANGE_RETENTION_DAYS} days "
            f"(POPC_CHANGE_RETENTION_DAYS): the oldest moment that can be shown is "
            f"{oldest:%Y-%m-%d %H:%M} UTC."
        )
    return when


def end_of_day(day: date) -> datetime:
    """The last moment of `day` in the configured time zone: "as of 30 June" includes what
    happened on 30 June."""
    try:
        following = day + timedelta(days=1)
    except OverflowError:  # 31 December 9999: its end is the end of time, a future moment
        return datetime.max.replace(tzinfo=UTC)
    start = datetime.combine(following, time.min, tzinfo=timezone.get_current_timezone())
    return start - timedelta(microseconds=1)


def checks_as_of(
    when: datetime | None, servers: QuerySet[Server], *, problems_only: bool = False
) -> Iterator[CheckAsOf]:
    """Every check of every address of `servers` as it was at `when` (None: now), ordered by
    server id, location, address and check id; `problems_only` keeps those not passing. The
    waivers in force then apply (a waived fail or warn is `excepted`). Streams: two queries
    per SERVERS_PER_BATCH servers now, four at a past moment, whatever their history."""
    server_ids = servers.order_by("pk").values_list("pk", flat=True)
    for batch in _batches(server_ids.iterator(), SERVERS_PER_BATCH):
        waived = waived_pairs(batch, when or timezone.now())
        if when is None:
            # Already in order (see _now).
            yield from (_waived(check, waived) for check in _now(batch, problems_only))
        else:
            found = _past(when, batch, problems_only)
            yield from sorted((_waived(check, waived) for check in found), key=_order)


def _waived(check: CheckAsOf, waived: WaivedPairs) -> CheckAsOf:
    shown = shown_status(check.status, (check.server_id, check.check_id) in waived)
    return check if shown == check.status else replace(check, status=shown, verdict=check.status)


def _batches(items: Iterator[int], size: int) -> Iterator[tuple[int, ...]]:
    while batch := tuple(islice(items, size)):
        yield batch


def _order(check: CheckAsOf) -> Key:
    return (check.server_id, check.location, check.address, check.check_id)


def _now(server_ids: tuple[int, ...], problems_only: bool) -> list[CheckAsOf]:
    # In the order of unique_check_state's index, which PostgreSQL reads in order.
    states = CheckState.objects.filter(server_id__in=server_ids).order_by(*STATE_FIELDS[:4])
    if problems_only:
        states = states.exclude(status__in=scanner.PASSING)
    # Tuples, not model instances: a report of 10,000 servers reads 220,000 states, and building
    # a model per row was half its time (bench/reports.py).
    return [CheckAsOf(*row) for row in states.values_list(*STATE_FIELDS)]


def _past(when: datetime, server_ids: tuple[int, ...], problems_only: bool) -> list[CheckAsOf]:
    return _checks_at(when, Server.objects.filter(pk__in=server_ids), problems_only)


KEY_COLUMNS = ("server_id", "location", "address", "check_id")
CHANGE_FIELDS = (*KEY_COLUMNS, "status", "created_at", "summary", "remediation")
STATE_FIELDS = (*KEY_COLUMNS, "status", "since", "summary", "remediation")
NOT_PASSING = tuple(sorted(set(scanner.STATUS_RANK) - scanner.PASSING))
ALL_STATUSES = tuple(sorted(scanner.STATUS_RANK))


def _checks_at(
    when: datetime, servers: QuerySet[Server], problems_only: bool, words: bool = True
) -> list[CheckAsOf]:
    """The checks of `servers` at `when` by the module's rules (`problems_only`: those not
    passing), unordered. Each rule is one query that returns only the checks it decides: the
    database picks each check's latest Change with a window function (bench/dashboard.py:
    reading the fleet's whole history in Python took seconds)."""
    wanted = NOT_PASSING if problems_only else ALL_STATUSES
    fleet = Subquery(servers.values("pk"))
    changes = Change.objects.filter(server_id__in=fleet)
    return [
        *_latest(changes, when, wanted, words),
        *_pruned(changes, when, wanted),
        *_states_without_changes(when, fleet, wanted, words),
    ]


def _per_key(expression: Any, *order: Any) -> Window:
    return Window(expression, partition_by=[F(c) for c in KEY_COLUMNS], order_by=list(order))


def _latest(
    changes: QuerySet[Change], when: datetime, wanted: tuple[str, ...], words: bool
) -> list[CheckAsOf]:
    """Rule 1: the checks whose latest Change by `when` left them in a `wanted` status. Both
    filters are on window functions, so they apply to each check's latest Change, after the
    window."""
    newest = (F("created_at").desc(), F("id").desc())
    rows = (
        changes.filter(created_at__lte=when)
        .order_by()  # Change's default order would sort every row again, on disk
        .annotate(
            rank=_per_key(RowNumber(), *newest),
            latest=_per_key(FirstValue("status"), *newest),
        )
        .filter(rank=1, latest__in=wanted)
        .values_list(*_fields(CHANGE_FIELDS, words))
    )
    return [_check(row) for row in rows]


def _pruned(changes: QuerySet[Change], when: datetime, wanted: tuple[str, ...]) -> list[CheckAsOf]:
    """Rule 2: the checks with no Change by `when` whose first later Change left a `wanted`
    status ("" is a first sighting: not observed yet). Since when, and in which words, is not
    known: for a failing status, the history saying so was pruned."""
    earlier = Change.objects.filter(
        **{column: OuterRef(column) for column in KEY_COLUMNS}, created_at__lte=when
    )
    oldest = (F("created_at").asc(), F("id").asc())
    rows = (
        changes.filter(created_at__gt=when)
        .exclude(Exists(earlier))
        .order_by()
        .annotate(
            rank=_per_key(RowNumber(), *oldest),
            before=_per_key(FirstValue("previous_status"), *oldest),
        )
        .filter(rank=1, before__in=wanted)
        .values_list(*KEY_COLUMNS, "previous_status")
    )
    return [CheckAsOf(*key, status, None, "", "") for *key, status in rows]


def _states_without_changes(
    when: datetime, fleet: Subquery, wanted: tuple[str, ...], words: bool
) -> list[CheckAsOf]:
    """Rule 3: the check states settled by `when` that no Change ever touched, in a `wanted`
    status (passing since their first sighting, or failing with their history pruned)."""
    changed = Change.objects.filter(**{column: OuterRef(column) for column in KEY_COLUMNS})
    rows = (
        CheckState.objects.filter(server_id__in=fleet, since__lte=when, status__in=wanted)
        .exclude(Exists(changed))
        .values_list(*_fields(STATE_FIELDS, words))
    )
    return [_check(row) for row in rows]


def _fields(fields: tuple[str, ...], words: bool) -> tuple[str, ...]:
    """`fields`, or only the check and its status unless `words`: the fleet's statuses need
    neither since when nor the summary and remediation, and reading them (a timestamp is
    parsed in Python) was most of the time (bench/dashboard.py)."""
    return fields if words else (*KEY_COLUMNS, "status")


def _check(row: tuple[Any, ...]) -> CheckAsOf:
    return CheckAsOf(*row) if len(row) == len(STATE_FIELDS) else CheckAsOf(*row, None, "", "")


@dataclass(frozen=True)
class FleetAsOf:
    """Servers at a past moment: each one's status, and the checks that did not pass, by
    server id (servers added after the moment are left out). The problems carry their
    statuses only (no since, empty summary and remediation): checks_as_of reads those."""

    when: datetime
    statuses: dict[int, str]
    problems: dict[int, list[CheckAsOf]]

    def failing(self, check_ids: Iterable[str]) -> set[int]:
        """The servers failing one of `check_ids` on some address."""
        wanted = set(check_ids)
        return {
            server_id
            for server_id, checks in self.problems.items()
            if any(c.check_id in wanted and c.raw_status == "fail" for c in checks)
        }


def fleet_as_of(when: datetime, servers: QuerySet[Server]) -> FleetAsOf:
    """`servers` at the past moment `when`. Each status is judged as compliance.recording
    settles it: a failing check makes a server non-compliant, a check that could not be
    determined unknown; a server with no check observed yet is new."""
    existing = servers.filter(created_at__lte=when).order_by()
    waived = waived_pairs(existing, when)
    problems: dict[int, list[CheckAsOf]] = {}
    for check in sorted(_checks_at(when, existing, True, words=False), key=_order):
        problems.setdefault(check.server_id, []).append(_waived(check, waived))
    observed = set(existing.filter(_observed_by(when)).values_list("pk", flat=True))
    statuses = {
        pk: _status_of(
            [c.status for c in problems.get(pk, [])],
            pk in observed,
            paused and _before(changed, when),
        )
        for pk, paused, changed in existing.values_list("pk", "paused", "status_changed_at")
    }
    return FleetAsOf(when, statuses, problems)


def statuses_as_of(when: datetime | None, servers: QuerySet[Server]) -> dict[int, str]:
    """Each server's status at `when` (None: now, the stored status), by server id."""
    if when is None:
        return dict(servers.order_by().values_list("pk", "status"))
    return fleet_as_of(when, servers).statuses


def _observed_by(when: datetime) -> Q:
    """Whether some check of the server had been observed by `when`."""
    return Q(
        Exists(CheckState.objects.filter(server=OuterRef("pk"), since__lte=when))
        | Exists(Change.objects.filter(server=OuterRef("pk"), created_at__lte=when))
        | Exists(
            Change.objects.filter(server=OuterRef("pk"), created_at__gt=when).exclude(
                previous_status=""
            )
        )
    )


def _before(moment: datetime | None, when: datetime) -> bool:
    return moment is not None and moment <= when


def _status_of(problems: list[str], observed: bool, paused: bool) -> str:
    if paused:
        return ServerStatus.PAUSED
    if not observed:
        return ServerStatus.NEW
    compliant = scanner.compliance_of(status for status in problems if status != EXCEPTED)
    if compliant is None:
        return ServerStatus.UNKNOWN
    if not compliant:
        return ServerStatus.NON_COMPLIANT
    return ServerStatus.EXCEPTED if EXCEPTED in problems else ServerStatus.COMPLIANT


def counts_as_of(when: datetime | None, servers: QuerySet[Server]) -> dict[str, int]:
    """Servers per status at `when`, every status present, in the dashboard's order."""
    return count_statuses(statuses_as_of(when, servers))


def count_statuses(statuses: dict[int, str]) -> dict[str, int]:
    counted = Counter(statuses.values())
    return {status.value: counted.get(status.value, 0) for status in SERVER_STATUS_ORDER}


def worst_by_check(checks: Iterable[CheckAsOf]) -> dict[int, dict[str, str]]:
    """Each server's worst status of each check over its addresses and locations: the worst
    verdict, excepted when a waiver covered the check (as today's matrix shows it)."""
    found: dict[int, dict[str, list[CheckAsOf]]] = {}
    for check in checks:
        found.setdefault(check.server_id, {}).setdefault(check.check_id, []).append(check)
    return {
        server_id: {check_id: _worst(checks) for check_id, checks in by.items()}
        for server_id, by in found.items()
    }


def _worst(checks: list[CheckAsOf]) -> str:
    worst = scanner.worst_status([check.raw_status for check in checks])
    return shown_status(worst, any(check.status == EXCEPTED for check in checks))
