"""A compliance report's content, the same for every format (PDF, CSV, XLSX, the API).

Every status comes from the as-of layer (compliance.history: `checks_as_of`, `statuses_as_of`),
the one that feeds the overview's "as of" view, so a report and the dashboard agree on any
date. Two readings:

- `check_rows` streams one row per server × location × address × check (a server with no
  check yet gets one row of its own), merging two cursors both ordered by server id: the CSV
  and XLSX write them as they come, so 10,000 servers never sit in memory together.
- `build_report` makes one pass over the same rows, keeping only the failing servers, then
  reads the trend, the expiring certificates and the exceptions: the PDF and the API's JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

import scanner
from popcompliance.compliance.certificates import seen_at_last_scan
from popcompliance.compliance.history import (
    CheckAsOf,
    checks_as_of,
    count_statuses,
    statuses_as_of,
)
from popcompliance.compliance.models import CertificateSighting, FleetSnapshot, ScanRun
from popcompliance.dashboard.catalog import SERVER_STATUS_ORDER
from popcompliance.inventory.models import Server, ServerStatus
from popcompliance.reports.method import Method, method
from popcompliance.reports.params import ReportParams, moment_of
from popcompliance.waivers.effect import EXCEPTED
from popcompliance.waivers.models import Waiver

TREND_DAYS = 90
EXPIRING_WITHIN = timedelta(days=60)
# A certificate counts as served at a past moment when it was first seen before it and last
# seen no longer than this before it: sightings are refreshed at each scan (hourly at most), and
# a server scanned daily still shows the certificate it served.
SERVED_SLACK = timedelta(days=1)
# The status the report counts as a server's failing check (a waived one shows EXCEPTED).
FAILING = "fail"


@dataclass(frozen=True)
class ServerInfo:
    pk: int
    name: str
    host: str
    site: str


@dataclass(frozen=True)
class CheckRow:
    """One check of one server as of the report's moment; `check` None for a server with no
    check recorded yet."""

    server: ServerInfo
    server_status: str
    check: CheckAsOf | None


@dataclass(frozen=True)
class ExceptionEntry:
    """An exception (waiver) in force at the report's moment."""

    applies_to: str
    check_id: str
    justification: str
    approver: str
    starts_at: datetime
    expires_at: datetime

    @property
    def title(self) -> str:
        return scanner.check_title(self.check_id)


def exceptions_section(when: datetime | None, servers: QuerySet[Server]) -> list[ExceptionEntry]:
    """The exceptions (waivers) in force at `when` (None: now) on the servers in scope, or on
    a tag of one of them, soonest expiry first (one query)."""
    scope = servers.order_by().values("pk")
    waivers = (
        Waiver.objects.in_force(when or timezone.now())
        .filter(Q(server__in=scope) | Q(tag__servers__in=scope))
        .distinct()
        .select_related("server", "tag", "approver")
        .order_by("expires_at", "pk")
    )
    return [
        ExceptionEntry(
            waiver.scope_label,
            waiver.check_id,
            waiver.justification,
            waiver.approver.get_username(),
            waiver.starts_at,
            waiver.expires_at,
        )
        for waiver in waivers
    ]


def check_rows(
    params: ReportParams, moment: datetime | None, statuses: dict[int, str] | None = None
) -> Iterator[CheckRow]:
    """Every check of every server in scope as of `moment`, by server id (constant memory
    but the server → status map, a few bytes per server, read unless `statuses` gives it).
    Servers created after the moment are left out."""
    servers = params.servers()
    if statuses is None:
        statuses = statuses_as_of(moment, servers)
    infos = servers.order_by("pk").values_list("pk", "name", "host", "site")
    checks = checks_as_of(moment, servers)
    pending = next(checks, None)
    for row in infos.iterator(chunk_size=2000):
        info = ServerInfo(*row)
        while pending is not None and pending.server_id < info.pk:
            pending = next(checks, None)
        status = statuses.get(info.pk)
        found = False
        while pending is not None and pending.server_id == info.pk:
            if status is not None:
                yield CheckRow(info, status, pending)
                found = True
            pending = next(checks, None)
        if status is not None and not found:
            yield CheckRow(info, status, None)


@dataclass(frozen=True)
class FailingCheck:
    check_id: str
    location: str
    address: str
    since: datetime | None
    evidence: str
    remediation: int  # its number in Report.remediations
    # The probe's conversation it rests on, "C: …"/"S: …"/"# …" lines, from the server's last
    # scan from that location by the report's moment (empty when that scan was pruned).
    transcript: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return scanner.check_title(self.check_id)

    @property
    def in_the_clear(self) -> bool:
        """Whether its conversation crossed the network before TLS."""
        return self.check_id in scanner.CLEARTEXT_PASSWORD_CHECK_IDS

    @property
    def transcript_text(self) -> str:
        return "\n".join(self.transcript)


@dataclass
class FailingServer:
    server: ServerInfo
    status: str
    checks: list[FailingCheck] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        return str(ServerStatus(self.status).label)


@dataclass(frozen=True)
class Remediation:
    number: int
    check_id: str
    text: str

    @property
    def title(self) -> str:
        return scanner.check_title(self.check_id)


@dataclass(frozen=True)
class ExpiringCertificate:
    name: str
    issuer: str
    not_after: datetime
    fingerprint: str
    servers: tuple[str, ...]
    days_left: int


@dataclass(frozen=True)
class CountLine:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class Report:
    """Everything a report says. `moment` is the instant described (now for today)."""

    params: ReportParams
    moment: datetime
    is_now: bool
    generated_at: datetime
    counts: dict[str, int]
    excepted: int
    failing: list[FailingServer]
    remediations: list[Remediation]
    trend: list[dict[str, object]]
    exceptions: list[ExceptionEntry]
    certificates: list[ExpiringCertificate]
    profiles: list[tuple[scanner.TlsProfile, int]]
    method: Method

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def count_lines(self) -> list[CountLine]:
        """The counts in the overview's order (worst first), with their labels."""
        return [CountLine(s.value, str(s.label), self.counts[s.value]) for s in SERVER_STATUS_ORDER]

    @property
    def failing_checks(self) -> int:
        return sum(len(server.checks) for server in self.failing)

    @property
    def not_failing(self) -> int:
        """Servers in scope failing no check: the PDF counts them rather than listing them."""
        return self.total - len(self.failing)

    @property
    def trend_weekly(self) -> list[dict[str, object]]:
        """Every seventh snapshot, counted back from the last, for a table that fits a page."""
        return self.trend[::-1][::7][::-1]

    @property
    def trend_polyline(self) -> str:
        """The share of compliant servers per day as SVG polyline points on a 300 × 100 box."""
        if len(self.trend) < 2:
            return ""
        step = 300 / (len(self.trend) - 1)
        points = []
        for index, day in enumerate(self.trend):
            total = int(day["total"]) or 1  # type: ignore[call-overload]
            share = int(day["compliant"]) / total  # type: ignore[call-overload]
            points.append(f"{index * step:.1f},{100 - share * 100:.1f}")
        return " ".join(points)


def build_report(params: ReportParams, now: datetime) -> Report:
    """The report for `params`, read at `now` (a handful of queries, plus the as-of
    layer's; memory grows with the failing servers only)."""
    moment = moment_of(params.day, now)
    servers = params.servers()
    statuses = statuses_as_of(moment, servers)
    failing, remediations, excepted = _failing(check_rows(params, moment, statuses))
    quote_transcripts(failing, moment or now)
    return Report(
        params=params,
        moment=moment or now,
        is_now=moment is None,
        generated_at=now,
        counts=count_statuses(statuses),
        excepted=excepted,
        failing=failing,
        remediations=remediations,
        trend=trend(params.day),
        exceptions=exceptions_section(moment, servers),
        certificates=expiring_certificates(moment, servers, now),
        profiles=profiles_in_use(servers),
        method=method(),
    )


def _failing(rows: Iterator[CheckRow]) -> tuple[list[FailingServer], list[Remediation], int]:
    """The servers with a failing check (by name), each remediation text numbered once, and
    how many servers have an excepted check."""
    failing: dict[int, FailingServer] = {}
    numbers: dict[tuple[str, str], Remediation] = {}
    excepted: set[int] = set()
    for row in rows:
        check = row.check
        if check is None:
            continue
        if check.status == EXCEPTED:
            excepted.add(row.server.pk)
        if check.status != FAILING:
            continue
        key = (check.check_id, check.remediation)
        if key not in numbers:
            numbers[key] = Remediation(len(numbers) + 1, check.check_id, check.remediation)
        entry = failing.setdefault(row.server.pk, FailingServer(row.server, row.server_status))
        entry.checks.append(
            FailingCheck(
                check.check_id,
                check.location,
                check.address,
                check.since,
                check.summary,
                numbers[key].number,
            )
        )
    ordered = sorted(failing.values(), key=lambda entry: entry.server.name)
    return ordered, list(numbers.values()), len(excepted)


# Lines quoted per failing check: the part of a conversation that shows the finding (the
# greeting, the capabilities, our cancelled login) fits; a whole CAPABILITY list need not.
TRANSCRIPT_LINES = 12
# Failing servers whose last scans are read at once: a scan's facts are 40-60 KB of JSON.
RUNS_PER_BATCH = 100
PREFIX = {"sent": "C: ", "received": "S: ", "note": "# "}


def quote_transcripts(failing: list[FailingServer], moment: datetime) -> None:
    """Give each failing check the conversation it rests on (scanner.evidence_for), from its
    server's last scan from the check's location by `moment`. Scans are kept
    POPC_SCAN_RUN_RETENTION_DAYS (the latest always): a report of an older day may quote none."""
    for start in range(0, len(failing), RUNS_PER_BATCH):
        batch = {entry.server.pk: entry for entry in failing[start : start + RUNS_PER_BATCH]}
        for server_id, location, facts in _last_runs(list(batch), moment):
            entry = batch[server_id]
            entry.checks = [
                replace(check, transcript=_transcript(facts, check))
                if check.location == location and facts
                else check
                for check in entry.checks
            ]


def _transcript(facts: dict[str, Any], check: FailingCheck) -> list[str]:
    """The conversation quoted for `check`; none when its evidence is only our own notes (a
    TLS handshake's outcome, which the summary already states): at 10,000 servers quoting
    those tripled the PDF's pages and doubled its time (bench/reports.py)."""
    lines = scanner.evidence_for(facts, check.check_id, check.address or None)
    if all(line["direction"] == "note" for line in lines):
        return []
    return [_quoted(line) for line in lines[:TRANSCRIPT_LINES]]


def _quoted(line: dict[str, str]) -> str:
    return PREFIX.get(line["direction"], "") + line["text"]


def _last_runs(server_ids: list[int], moment: datetime) -> QuerySet[ScanRun, tuple[Any, ...]]:
    """Each server's last scan from each location by `moment`, with its facts."""
    newest = (F("started_at").desc(), F("id").desc())
    return (
        ScanRun.objects.filter(server_id__in=server_ids, started_at__lte=moment)
        .order_by()
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("server_id"), F("location")], order_by=newest)
        )
        .filter(rank=1)
        .values_list("server_id", "location", "facts")
    )


def trend(day: date) -> list[dict[str, object]]:
    """The fleet's daily snapshots of the TREND_DAYS days up to `day` (the whole fleet: the
    snapshots are not kept per scope)."""
    fields = ("day", "total", "compliant", "non_compliant", "unknown")
    since = day - timedelta(days=TREND_DAYS)
    rows = FleetSnapshot.objects.filter(day__gt=since, day__lte=day).order_by("day")
    return list(rows.values(*fields))


def expiring_certificates(
    moment: datetime | None, servers: QuerySet[Server], now: datetime
) -> list[ExpiringCertificate]:
    """The certificates served in scope at `moment` (None: at each server's latest scan) that
    expire within EXPIRING_WITHIN of it, expired ones first, with the servers serving them."""
    at = moment or now
    sightings = CertificateSighting.objects.filter(
        server__in=servers.order_by().values("pk"), certificate__not_after__lte=at + EXPIRING_WITHIN
    )
    if moment is None:
        sightings = sightings.filter(seen_at_last_scan())
    else:
        sightings = sightings.filter(first_seen_at__lte=at, last_seen_at__gte=at - SERVED_SLACK)
    rows = sightings.order_by("certificate__not_after", "certificate_id", "server__name")
    columns = ("certificate_id", "certificate__common_name", "certificate__subject")
    columns += ("certificate__issuer", "certificate__not_after")
    columns += ("certificate__fingerprint_sha256", "server__name")
    found: dict[int, tuple[tuple[object, ...], list[str]]] = {}
    for pk, *details, server_name in rows.values_list(*columns):
        servers_of = found.setdefault(pk, (tuple(details), []))[1]
        if server_name not in servers_of:
            servers_of.append(server_name)
    return [_certificate(details, names, at) for details, names in found.values()]


def _certificate(
    details: tuple[object, ...], names: list[str], at: datetime
) -> ExpiringCertificate:
    common_name, subject, issuer, not_after, fingerprint = details
    assert isinstance(not_after, datetime)
    days_left = (not_after - at).days
    name = str(common_name or subject)
    return ExpiringCertificate(
        name, str(issuer), not_after, str(fingerprint), tuple(names), days_left
    )


def profiles_in_use(servers: QuerySet[Server]) -> list[tuple[scanner.TlsProfile, int]]:
    """The TLS profiles that judged the servers in scope (their policies'), with how many."""
    rows = servers.order_by().values_list("policy__tls_profile").annotate(n=Count("pk"))
    counted = Counter(dict(rows))
    return [
        (profile, counted[profile.name]) for profile in scanner.PROFILES if counted[profile.name]
    ]
