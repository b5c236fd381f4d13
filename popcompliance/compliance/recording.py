"""Turn one scan report into stored state: the one path workers and `manage.py scan` share.

A report is a scan from one location (popcompliance.locations): it settles that location's
check states, changes and addresses, and that location's schedule; the server's status is
judged over every location's states, so it is the worst over them.

`record_report` runs in one transaction with the server row locked, so two deliveries of the
same task (acks_late) or a manual scan racing a scheduled one are serialised, and the second
finds the state the first left: it writes no duplicate Change.

The confirmation rules:
- a regression (pass→warn, pass→fail, warn→fail) is held until a second consecutive scan sees
  it; the caller re-probes after a short delay when `needs_confirmation` is set;
- `error` ("could not determine") settles only after the policy's N consecutive runs;
- anything else (a recovery, error→fail, a changed summary) settles at once;
- a check seen for the first time settles at once, with a Change only when it is not a pass.

Changes recorded while a maintenance window covers the server are marked `during_maintenance`
(one more query, only for a scan that changed something): alerts hold their emails for them.

The server's status counts the waivers in force (popcompliance.waivers; one more query, only
for a server with a check that fails or warns): a server whose only failures and warnings are
waived is excepted. The states themselves keep the scanner's verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

import scanner
from popcompliance.compliance.certificates import due_refresh, remember_certificates
from popcompliance.compliance.dispatch import earliest_schedule
from popcompliance.compliance.models import (
    Change,
    CheckState,
    ScanPurpose,
    ScanRun,
    ServerAddress,
    is_regression,
    retire_states,
)
from popcompliance.inventory.models import Server, ServerLocation, ServerStatus
from popcompliance.locations import DEFAULT_LOCATION
from popcompliance.maintenance.windows import in_maintenance
from popcompliance.waivers.effect import EXCEPTED, WAIVABLE, shown_status, waived_checks

logger = logging.getLogger(__name__)

# A regression settles on its second consecutive sighting: the scan that saw it and the
# confirming re-probe.
REGRESSION_SIGHTINGS = 2


@dataclass
class Recorded:
    """What storing a report did."""

    scan_run: ScanRun
    changes: list[Change] = field(default_factory=list)
    needs_confirmation: bool = False


@dataclass(frozen=True)
class Observation:
    address: str
    check: scanner.CheckResult
    location: str = DEFAULT_LOCATION


def record_crash(server: Server, location: str, purpose: str, worker: str, failure: str) -> None:
    """Keep a visible trace of a scan that crashed (a bug or a bad row): a scan run with the
    `failure` as its error, and no check judged. A crashed scheduled scan counts as the round's
    scan: the next one from this location comes one interval on, as after a recorded one, so
    it cannot starve the dispatcher nor be retried at every lease's end."""
    logger.error("scan of %s from %s crashed: %s", server, location, failure)
    now = timezone.now()
    try:
        with transaction.atomic():
            ScanRun.objects.create(
                server=server,
                location=location,
                purpose=purpose,
                started_at=now,
                finished_at=now,
                error=failure[:2000],
                worker=worker,
            )
            # The schedule as it is now: an edit during the scan may have asked for one sooner.
            schedule = server.schedules.select_for_update().filter(location=location).first()
            if schedule is not None:
                schedule.server = server
                schedule.save(
                    update_fields=schedule.finish_scan(purpose == ScanPurpose.SCHEDULED, now)
                )
            queued = server.schedules.filter(scan_queued_at__isnull=False).exists()
            Server.objects.filter(pk=server.pk).update(
                next_scan_at=earliest_schedule(), **({} if queued else {"scan_queued_at": None})
            )
    except DatabaseError:
        logger.exception("could not record the crash of %s", server)


def record_report(
    server_id: int,
    report: scanner.ScanReport,
    *,
    purpose: str,
    worker: str = "",
    now: datetime | None = None,
    location: str = DEFAULT_LOCATION,
) -> Recorded:
    """Store a scan of one server from `location` and settle what it shows. Touches only the
    database, in as many queries whatever the number of checks."""
    now = now or timezone.now()
    with transaction.atomic():
        server = (
            Server.objects.select_for_update(of=("self",))
            .select_related("policy")
            .get(pk=server_id)
        )
        run = ScanRun.objects.create(
            server=server,
            location=location,
            purpose=purpose,
            started_at=report.started_at,
            finished_at=now,
            duration_ms=report.duration_ms,
            compliant=report.compliant,
            facts=scanner.report_to_dict(report),
            worker=worker,
        )
        recorded = Recorded(run)
        every_state = list(server.check_states.all())
        states = {(s.address, s.check_id): s for s in every_state if s.location == location}
        elsewhere = [s for s in every_state if s.location != location]
        seen = observations(report, known_addresses(states), location)
        altered = [
            state
            for observation in seen
            if (state := _observe(server, states, observation, recorded, now)) is not None
        ]
        # One INSERT for the new states and one UPDATE for the altered ones, however many
        # checks the scan ran: the queries of a scan do not grow with the catalog.
        CheckState.objects.bulk_create([s for s in states.values() if s.pk is None])
        if altered:
            CheckState.objects.bulk_update(altered, STORED_FIELDS)
        if report.endpoints:
            _forget_vanished(states, seen, now)
        remember_addresses(server, location, report.endpoints, now)
        remember_certificates(server, report.endpoints, now)
        status = _status_with_waivers(server, [*states.values(), *elsewhere], now)
        _save_server(server, location, status, purpose, now)
        if recorded.changes and in_maintenance(server, now):
            for change in recorded.changes:
                change.during_maintenance = True
        Change.objects.bulk_create(recorded.changes)
    return recorded


def known_addresses(states: dict[tuple[str, str], CheckState]) -> list[str]:
    return sorted({address for address, _ in states if address})


def observations(
    report: scanner.ScanReport, known: list[str], location: str = DEFAULT_LOCATION
) -> list[Observation]:
    """Every (address, check) the report speaks about.

    When no address could be probed (the name did not resolve), the per-address verdicts are
    `error` for the whole name; they are charged to every address we knew, so the error rule
    counts runs there instead of inventing a new, address-less state.
    """
    target_checks = [c for c in report.checks if c.id in scanner.TARGET_CHECK_IDS]
    found = [Observation("", check, location) for check in target_checks]
    if report.endpoints:
        found += [Observation(c.address or "", c, location) for c in report.address_checks]
        return found
    address_checks = [c for c in report.checks if c.id in scanner.ADDRESS_CHECK_IDS]
    for address in known or [""]:
        found += [Observation(address, check, location) for check in address_checks]
    return found


def _observe(
    server: Server,
    states: dict[tuple[str, str], CheckState],
    observation: Observation,
    recorded: Recorded,
    now: datetime,
) -> CheckState | None:
    """Apply one observation to its state (a new one is added to `states`); returns a stored
    state this altered, for the caller to write with the others."""
    check = observation.check
    key = (observation.address, check.id)
    state = states.get(key)
    if state is None:
        states[key] = _first_sighting(server, observation, now)
        if check.status not in scanner.PASSING:
            recorded.changes.append(_change(server, "", observation, recorded.scan_run, now))
        return None
    previous, before = state.status, _stored_fields(state)
    outcome = judge(state, check.status, server.policy.error_runs_before_unknown, now)
    if outcome in ("same", "settled"):
        state.summary, state.remediation = check.summary, check.remediation
    if outcome == "settled":
        recorded.changes.append(_change(server, previous, observation, recorded.scan_run, now))
    if outcome == "held" and state.candidate_status != "error" and state.candidate_count == 1:
        recorded.needs_confirmation = True
    # An unchanged rescan writes nothing: storage and write load grow with changes only.
    return state if _stored_fields(state) != before else None


# What an observation may alter in a stored state (`since` and `candidate_since` move only
# with `status` and `candidate_status`).
STORED_FIELDS = (
    "status",
    "summary",
    "remediation",
    "since",
    "candidate_status",
    "candidate_count",
    "candidate_since",
)


def _stored_fields(state: CheckState) -> tuple[object, ...]:
    return tuple(getattr(state, name) for name in STORED_FIELDS)


def judge(state: CheckState, status: str, error_runs: int, now: datetime) -> str:
    """Apply one observation to a settled state: "same", "held" or "settled". Pure apart
    from mutating `state`."""
    if status == state.status:
        state.clear_candidate()
        return "same"
    if status == "error":
        state.hold(status, now)
        return _settle_when(state, state.candidate_count >= error_runs, now)
    if is_regression(state.status, status):
        state.hold(status, now)
        return _settle_when(state, state.candidate_count >= REGRESSION_SIGHTINGS, now)
    state.settle(status, now)
    return "settled"


def _settle_when(state: CheckState, confirmed: bool, now: datetime) -> str:
    if not confirmed:
        return "held"
    state.settle(state.candidate_status, now)
    return "settled"


def _first_sighting(server: Server, observation: Observation, now: datetime) -> CheckState:
    """A new state, saved with the others in one bulk insert."""
    check = observation.check
    return CheckState(
        server=server,
        location=observation.location,
        address=observation.address,
        check_id=check.id,
        status=check.status,
        summary=check.summary,
        remediation=check.remediation,
        since=now,
    )


def _change(
    server: Server, previous: str, observation: Observation, run: ScanRun, now: datetime
) -> Change:
    check = observation.check
    return Change(
        server=server,
        location=observation.location,
        address=observation.address,
        check_id=check.id,
        previous_status=previous,
        status=check.status,
        summary=check.summary,
        remediation=check.remediation,
        created_at=now,
        scan_run=run,
    )


def _forget_vanished(
    states: dict[tuple[str, str], CheckState], seen: list[Observation], now: datetime
) -> None:
    """Retire the states of addresses the name no longer resolves to. Only called when the
    scan found addresses (so `seen` does not depend on the known ones): a DNS failure must
    not wipe what we know."""
    current = {(o.address, o.check.id) for o in seen}
    vanished = [key for key in states if key not in current]
    if vanished:
        ids = [states.pop(key).pk for key in vanished]
        retire_states(CheckState.objects.filter(pk__in=ids), "address", now)


def remember_addresses(
    server: Server, location: str, endpoints: Iterable[scanner.EndpointFacts], now: datetime
) -> None:
    """Upsert the addresses probed from `location` (the name may resolve differently inside
    and outside), with the product and LoginType seen there."""
    endpoints = list(endpoints)
    if not endpoints:
        return
    existing = {a.address: a for a in server.addresses.filter(location=location)}
    for endpoint in endpoints:
        row = existing.pop(endpoint.address, None) or ServerAddress(
            server=server,
            location=location,
            address=endpoint.address,
            first_seen_at=now,
            last_seen_at=now,
        )
        seen = (endpoint.product or "", endpoint.login_type or "")
        unchanged = row.pk and (row.product, row.login_type) == seen
        if unchanged and not due_refresh(row.last_seen_at, now):
            continue
        row.product, row.login_type = seen
        row.last_seen_at = now
        row.save()
    ServerAddress.objects.filter(pk__in=[a.pk for a in existing.values()]).delete()


SERVER_STATUS_OF = {
    True: ServerStatus.COMPLIANT,
    False: ServerStatus.NON_COMPLIANT,
    None: ServerStatus.UNKNOWN,
}


def settled_status(states: Iterable[CheckState], waived: Collection[str] = ()) -> str:
    """The server's status from its settled check states, judged as the scanner judges a
    report (scanner.compliance_of); unknown while nothing is settled. The checks in `waived`
    (a waiver holds for them, popcompliance.waivers) show as excepted when they fail or warn:
    a server whose only failures and warnings are excepted is excepted."""
    states = list(states)
    shown = [shown_status(state.status, state.check_id in waived) for state in states]
    if not shown:
        return ServerStatus.UNKNOWN
    judged = SERVER_STATUS_OF[scanner.compliance_of(s for s in shown if s != EXCEPTED)]
    if judged == ServerStatus.COMPLIANT and EXCEPTED in shown:
        return ServerStatus.EXCEPTED
    return judged


def _status_with_waivers(server: Server, states: list[CheckState], now: datetime) -> str:
    """settled_status, asking for the server's waivers (one query) only when something fails
    or warns: nothing else is waived."""
    if not any(state.status in WAIVABLE for state in states):
        return settled_status(states)
    return settled_status(states, waived_checks(server, now))


def _save_server(server: Server, location: str, status: str, purpose: str, now: datetime) -> None:
    """Settle the server's status, and finish the scan of this location: its schedule moves
    on (ServerLocation.finish_scan), the server's next time and "scan queued" follow all its
    locations'."""
    schedules = {row.location: row for row in server.schedules.all()}
    schedule = schedules.get(location)
    if schedule is None:
        # A server inserted in bulk and scanned before the dispatcher gave it its schedules.
        schedule = ServerLocation.objects.create(
            server=server, location=location, next_scan_at=server.next_scan_at
        )
        schedules[location] = schedule
    schedule.server = server
    schedule.last_scan_at = now
    moved = schedule.finish_scan(purpose == ScanPurpose.SCHEDULED, now)
    schedule.save(update_fields=[*moved, "last_scan_at"])
    server.settle_status(status, now)
    server.last_scan_at = now
    server.next_scan_at = min(row.next_scan_at for row in schedules.values())
    if not any(row.scan_queued_at for row in schedules.values()):
        server.scan_queued_at = None
    fields = ["status", "status_changed_at", "last_scan_at", "updated_at"]
    server.save(update_fields=[*fields, "next_scan_at", "scan_queued_at"])
