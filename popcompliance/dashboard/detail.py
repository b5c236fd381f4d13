"""The server page's data: its checks grouped by check and by address, its latest facts.

`server_context` runs a fixed number of queries (pinned in tests/test_dashboard_views.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db.models import Max, Subquery

import scanner
from popcompliance.alerts.models import Alert
from popcompliance.compliance.models import (
    CertificateSighting,
    Change,
    CheckState,
    ScanRun,
    ServerAddress,
)
from popcompliance.dashboard import facts as report
from popcompliance.dashboard.catalog import CHECK_GROUPS, CheckGroup
from popcompliance.dashboard.locations import side_by_side
from popcompliance.inventory.models import Server
from popcompliance.locations import DEFAULT_LOCATION, declared
from popcompliance.maintenance.windows import server_panel
from popcompliance.waivers.effect import WAIVABLE, shown_status
from popcompliance.waivers.models import Waiver

RECENT_CHANGES = 10
# How many scans the "what changed" pickers offer (the raw facts are pruned after 30 days).
COMPARABLE_RUNS = 50


@dataclass(frozen=True)
class CheckRow:
    """One check of the catalog: its worst settled state, the state on each address, the
    waiver in force for it (None: none holds), and the conversation that state rests on in the
    shown scan (`evidence`, scanner.evidence_for's lines)."""

    check_id: str
    title: str
    worst: CheckState | None
    states: list[CheckState]
    waiver: Waiver | None = None
    evidence: list[dict[str, str]] = field(default_factory=list)

    @property
    def per_address(self) -> bool:
        return len(self.states) > 1

    @property
    def shown_status(self) -> str | None:
        """The worst status as shown: a waived fail or warn is excepted."""
        if self.worst is None:
            return None
        return shown_status(self.worst.status, self.waiver is not None)

    @property
    def in_the_clear(self) -> bool:
        """Whether its evidence is a conversation before TLS, which anyone on the path reads:
        the checks of passwords in the clear."""
        return self.check_id in scanner.CLEARTEXT_PASSWORD_CHECK_IDS

    @property
    def waivable(self) -> bool:
        """Failing (or warning) with no waiver: an admin may grant one from here."""
        return self.waiver is None and self.shown_status in WAIVABLE


def with_evidence(rows: list[CheckRow], run: ScanRun | None) -> list[CheckRow]:
    """Each row with what its worst state rests on in `run`'s facts, at that state's address,
    where the state was seen from the run's location (another location's scan saw another
    conversation). Reads the already loaded facts only: no query, whatever the checks."""
    if run is None or not run.facts:
        return rows
    return [
        replace(
            row, evidence=scanner.evidence_for(run.facts, row.check_id, row.worst.address or None)
        )
        if row.worst is not None and row.worst.location == run.location
        else row
        for row in rows
    ]


def check_rows(states: list[CheckState], waivers: Iterable[Waiver] = ()) -> list[CheckRow]:
    """Every check of the catalog in catalog order, worst first among its addresses, each
    with the waiver of `waivers` (those in force) that covers it."""
    waiver_of = {waiver.check_id: waiver for waiver in waivers}
    by_check: dict[str, list[CheckState]] = defaultdict(list)
    for state in states:
        by_check[state.check_id].append(state)
    rows = []
    ids = scanner.CHECK_IDS
    for check_id in [*ids, *sorted(by_check.keys() - set(ids))]:
        found = sorted(by_check.get(check_id, []), key=lambda s: -scanner.STATUS_RANK[s.status])
        worst = found[0] if found else None
        title = scanner.check_title(check_id)
        rows.append(CheckRow(check_id, title, worst, found, waiver_of.get(check_id)))
    return rows


@dataclass(frozen=True)
class AddressRow:
    """One address probed from one location: what runs there, and its state per per-address
    check."""

    address: str
    known: ServerAddress | None
    cells: list[tuple[str, CheckState | None]]
    location: str = DEFAULT_LOCATION


def address_rows(
    states: list[CheckState], known: list[ServerAddress], ids: list[str]
) -> list[AddressRow]:
    """Rows for every address with states, by location then address, with a cell for each of
    `ids`."""
    cells: dict[tuple[str, str], dict[str, CheckState]] = defaultdict(dict)
    for state in states:
        if state.address:
            cells[state.location, state.address][state.check_id] = state
    by_address = {(row.location, row.address): row for row in known}
    order = {name: n for n, name in enumerate(declared())}
    keys = sorted(cells, key=lambda key: (order.get(key[0], len(order)), key))
    return [
        AddressRow(key[1], by_address.get(key), [(i, cells[key].get(i)) for i in ids], key[0])
        for key in keys
    ]


@dataclass(frozen=True)
class Section:
    """A heading of the server page: one group of the catalog that applies to the server (a
    declared protocol's, or a family's shared by all), its checks, and for a protocol its two
    ports and what each address said on it (`doors`; None for an address the stored scan did
    not probe on it)."""

    group: CheckGroup
    rows: list[CheckRow]
    ports: tuple[int, int] | None = None
    doors: list[tuple[report.EndpointView, report.DoorFacts | None]] = field(default_factory=list)


def sections(
    server: Server, rows: list[CheckRow], endpoints: list[report.EndpointView]
) -> list[Section]:
    """The groups that apply to the server, in catalog order, each with its check rows."""
    declared = {protocol.name for protocol in server.declared_protocols}
    by_id = {row.check_id: row for row in rows}
    found = []
    for group in CHECK_GROUPS:
        if not group.applies_to(declared):
            continue
        checks = [by_id[spec.id] for spec in group.checks]
        protocol = scanner.PROTOCOL_BY_NAME.get(group.protocol or "")
        if protocol is None:
            found.append(Section(group, checks))
            continue
        ports = (
            getattr(server, protocol.cleartext_field),
            getattr(server, protocol.implicit_tls_field),
        )
        doors = [(endpoint, endpoint.door(protocol.name)) for endpoint in endpoints]
        found.append(Section(group, checks, ports, doors))
    return found


def address_groups(applying: list[Section]) -> list[tuple[str, list[scanner.CheckSpec]]]:
    """The per-address matrix's column groups: the address checks of the sections shown."""
    groups = []
    for section in applying:
        specs = [spec for spec in section.group.checks if spec.scope == "address"]
        if specs:
            groups.append((section.group.name, specs))
    return groups


def latest_facts_by_location(server: Server) -> dict[str, ScanRun]:
    """The newest scan with facts from each location of the server (one query)."""
    newest = (
        server.scan_runs.exclude(facts__isnull=True)
        .order_by()
        .values("location")
        .annotate(newest=Max("pk"))
        .values("newest")
    )
    return {run.location: run for run in ScanRun.objects.filter(pk__in=Subquery(newest))}


def shown_run(server: Server, runs: dict[str, ScanRun]) -> ScanRun | None:
    """Whose facts the sections show: the first of the server's locations (in declared order)
    that has some, else the newest of any location it was probed from before."""
    for name in server.probe_locations:
        if name in runs:
            return runs[name]
    return max(runs.values(), key=lambda run: run.started_at, default=None)


def server_context(server: Server, now: datetime) -> dict[str, Any]:
    """Everything the server page shows about `server` (fetched with policy and tags)."""
    states = list(server.check_states.all())
    runs = list(server.scan_runs.defer("facts")[:COMPARABLE_RUNS])
    by_location = latest_facts_by_location(server)
    latest = shown_run(server, by_location)
    facts = latest.facts if latest else None
    waivers = Waiver.objects.in_force(now).covering(server).select_related("approver", "tag")
    rows = with_evidence(check_rows(states, waivers.order_by("expires_at")), latest)
    endpoints = report.endpoints(facts)
    declared = server.declared_protocols
    applying = sections(server, rows, endpoints)
    columns = address_groups(applying)
    ids = [spec.id for _, specs in columns for spec in specs]
    return {
        "server": server,
        "check_rows": rows,
        "sections": applying,
        "not_declared": [p.label for p in scanner.CLIENT_PROTOCOLS if p not in declared],
        "retired_rows": [row for row in rows if row.check_id not in scanner.CHECKS],
        "address_groups": columns,
        "address_rows": address_rows(states, list(server.addresses.all()), ids),
        "latest_run": runs[0] if runs else None,
        "facts_run": latest,
        "endpoints": endpoints,
        "chains": report.chains(facts, now),
        "dns": (facts or {}).get("dns"),
        "versions": [scanner.PROTOCOL_LABEL[name] for name in scanner.PROTOCOLS],
        "certificates": _certificates_by_fingerprint(server),
        "runs": runs,
        "changes": list(server.changes.all()[:RECENT_CHANGES]),
        "alerts": _unresolved_alerts(server, now),
        "maintenance": server_panel(server, now),
        "locations": side_by_side(server.probe_locations, states, by_location),
        "now": now,
    }


def _unresolved_alerts(server: Server, now: datetime) -> list[tuple[Alert, bool]]:
    """The server's alerts not resolved yet, newest first, each with whether an
    acknowledgement holds (one query)."""
    alerts = server.alerts.open().select_related("acknowledged_by")
    return [(alert, alert.is_acknowledged(now)) for alert in alerts]


def _certificates_by_fingerprint(server: Server) -> dict[str, int]:
    """Certificate ids by fingerprint, to link a chain's leaf to its certificate page."""
    sightings = CertificateSighting.objects.filter(server=server)
    return dict(sightings.values_list("certificate__fingerprint_sha256", "certificate_id"))


@dataclass(frozen=True)
class ScanResult:
    """What a finished "scan now" changed, for the banner the server page shows after it:
    the status changes recorded by that run, and the checks still confirming a change (a
    regression is only recorded after a second look)."""

    run: ScanRun
    changes: list[Change]
    confirming: int


def scan_result(server: Server, run_id: int | None) -> ScanResult | None:
    """The result of scan `run_id` of `server`, or None when there is no such run (two
    queries)."""
    run = server.scan_runs.defer("facts").filter(pk=run_id).first() if run_id else None
    if run is None:
        return None
    changes = list(run.changes.order_by("check_id", "address"))
    confirming = server.check_states.exclude(candidate_status="").count()
    return ScanResult(run, changes, confirming)


def newest_run_after(server_id: int, after: int) -> ScanRun | None:
    """The first scan stored after run id `after` (ids grow with time), without its facts."""
    runs = ScanRun.objects.filter(server_id=server_id, pk__gt=after).defer("facts")
    return runs.order_by("pk").first()
