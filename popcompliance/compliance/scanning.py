"""Run the scanner for inventory servers: their targets, their policies, our settings."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

import scanner
from popcompliance.compliance.models import ScanRun
from popcompliance.inventory.credentials import UndecryptablePassword
from popcompliance.inventory.models import Policy, Server, scanner_guard
from popcompliance.locations import DEFAULT_LOCATION

LOGIN_CHECK_ID = "pop3.tls_login"
UNDECRYPTABLE_SUMMARY = (
    "The stored monitoring password cannot be decrypted with the current "
    "POPC_CREDENTIALS_KEY, so no login was tried."
)
UNDECRYPTABLE_REMEDIATION = (
    "Set the monitoring password again on the server's edit page (or through the API). If the "
    "key it was stored with is known, list it in POPC_CREDENTIALS_KEY after the current one "
    "and run `manage.py rotate_credentials_key` instead."
)


def scan_settings() -> scanner.Settings:
    return dataclasses.replace(
        scanner_guard(),
        timeout=float(settings.POPC_SCAN_TIMEOUT),
        resolver=settings.POPC_DNS_RESOLVER,
    )


@functools.cache
def _extra_trust_anchors(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise RuntimeError(f"POPC_CA_FILE={path}: cannot read it ({exc})") from exc


def scanner_policy(policy: Policy) -> scanner.Policy:
    """The policy as the scanner takes it, with POPC_CA_FILE's anchors added to its own."""
    value = policy.as_scanner_policy()
    if not settings.POPC_CA_FILE:
        return value
    anchors = [value.ca_bundle_pem, _extra_trust_anchors(settings.POPC_CA_FILE)]
    return dataclasses.replace(value, ca_bundle_pem="\n".join(filter(None, anchors)))


class ScanFailed(Exception):
    """The scanner stopped on an error nobody foresaw while scanning one server; its message is
    the report's `failure`. Raised where a crash must be recorded as one, not as checks."""


def crash_description(error: Exception) -> str:
    """What the scan run of a crashed scan says: the error's type and message (a failed scan's
    are in its report's own words)."""
    return str(error) if isinstance(error, ScanFailed) else f"{type(error).__name__}: {error}"


def scan_servers(
    servers: Sequence[Server],
    *,
    progress: Callable[[scanner.ScanReport], None] | None = None,
    earlier_support: Mapping[int, tuple[scanner.EarlierSupport, ...]] | None = None,
) -> dict[int, scanner.ScanReport]:
    """Scan servers concurrently (one event loop, grouped by policy); reports by server id.
    Touches the network, not the database (servers must come with their policy loaded).
    `earlier_support` (by server id, see earlier_tls_support) lets a scheduled scan reuse
    the TLS enumeration of an earlier one."""
    groups: dict[int, list[Server]] = defaultdict(list)
    for server in servers:
        groups[server.policy_id].append(server)
    built = {server.pk: target_of(server) for server in servers}
    for server_id, earlier in (earlier_support or {}).items():
        target, readable = built[server_id]
        built[server_id] = dataclasses.replace(target, earlier_support=earlier), readable
    targets = {server_id: target for server_id, (target, _) in built.items()}
    undecryptable = [server_id for server_id, (_, readable) in built.items() if not readable]

    async def scan_groups() -> list[list[scanner.ScanReport]]:
        return await asyncio.gather(
            *(
                scanner.scan_async(
                    [targets[server.pk] for server in group],
                    scan_settings(),
                    scanner_policy(group[0].policy),
                    progress=progress,
                )
                for group in groups.values()
            )
        )

    reports: dict[int, scanner.ScanReport] = {}
    for group, group_reports in zip(groups.values(), asyncio.run(scan_groups()), strict=True):
        reports.update(
            {server.pk: report for server, report in zip(group, group_reports, strict=True)}
        )
    for server_id in undecryptable:
        reports[server_id] = explain_undecryptable_password(reports[server_id])
    return reports


def earlier_tls_support(
    server: Server, now: datetime, location: str = DEFAULT_LOCATION
) -> tuple[scanner.EarlierSupport, ...]:
    """The TLS enumerations of the server's last scan from `location` with facts that its
    policy lets a scheduled scan reuse: complete (no error) and younger than
    `tls_enumeration_hours` (another location may reach another TLS front end). One query.
    The scanner still enumerates again where the server now negotiates differently."""
    hours = server.policy.tls_enumeration_hours
    if not hours:
        return ()
    runs = ScanRun.objects.filter(server=server, location=location).exclude(facts__isnull=True)
    # Not through server.scan_runs: that manager sets each run's server, and reading the
    # deferred server_id to do so cost a second query.
    run = runs.only("facts").first()
    oldest = now - timedelta(hours=hours)
    reusable = []
    for address, port, after_stls, data in _supports_in(run.facts if run else None):
        try:
            support = scanner.support_from_dict(data)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # written by an older version, or damaged: enumerate afresh
        fresh = support.measured_at is not None and support.measured_at >= oldest
        if fresh and support.error is None:
            reusable.append(scanner.EarlierSupport(address, port, after_stls, support))
    return tuple(reusable)


def _supports_in(facts: dict[str, Any] | None) -> Iterator[tuple[str, int, bool, dict[str, Any]]]:
    """(address, port, after STLS/STARTTLS, support JSON) for each TLS entry point of every
    protocol of a stored report."""
    for endpoint in (facts or {}).get("endpoints") or []:
        for protocol in scanner.CLIENT_PROTOCOLS:
            implicit = endpoint.get(protocol.implicit_tls_name) or {}
            cleartext = endpoint.get(protocol.name) or {}
            upgrade = cleartext.get("stls") or cleartext.get("starttls") or {}
            entries = (
                (implicit.get("port"), False, implicit.get("support")),
                (cleartext.get("port"), True, upgrade.get("support")),
            )
            for port, after_stls, data in entries:
                if port and data:
                    yield endpoint.get("address", ""), port, after_stls, data


def target_of(server: Server) -> tuple[scanner.Target, bool]:
    """The server's target, and whether its monitoring password (if any) could be decrypted.
    One no key decrypts must not stop the scan of the batch: the server is scanned without
    credentials."""
    try:
        return server.as_target(), True
    except UndecryptablePassword:
        return server.as_target(with_credentials=False), False


def explain_undecryptable_password(report: scanner.ScanReport) -> scanner.ScanReport:
    """The report with the login check, which the scanner skipped for want of credentials,
    saying why it had none: as an error, since whether login works stays unknown."""
    checks = tuple(map(_explain_login_skip, report.checks))
    return dataclasses.replace(
        report,
        checks=checks,
        address_checks=tuple(map(_explain_login_skip, report.address_checks)),
        compliant=scanner.compliance(checks),
    )


def _explain_login_skip(check: scanner.CheckResult) -> scanner.CheckResult:
    if check.id != LOGIN_CHECK_ID or check.status != "skip":
        return check
    return dataclasses.replace(
        check, status="error", summary=UNDECRYPTABLE_SUMMARY, remediation=UNDECRYPTABLE_REMEDIATION
    )
