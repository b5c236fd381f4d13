"""Run the scanner for inventory servers: their targets, their policies, our settings."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings

import scanner
from popcompliance.inventory.models import Policy, Server


def scan_settings() -> scanner.Settings:
    return scanner.Settings(
        timeout=float(settings.POPC_SCAN_TIMEOUT),
        resolver=settings.POPC_DNS_RESOLVER,
        allow_networks=tuple(settings.POPC_SCAN_ALLOW_NETWORKS),
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


def scan_servers(
    servers: Sequence[Server],
    *,
    progress: Callable[[scanner.ScanReport], None] | None = None,
) -> dict[int, scanner.ScanReport]:
    """Scan servers concurrently (one event loop, grouped by policy); reports by server id.
    Touches the network, not the database (servers must come with their policy loaded)."""
    groups: dict[int, list[Server]] = defaultdict(list)
    for server in servers:
        groups[server.policy_id].append(server)

    async def scan_groups() -> list[list[scanner.ScanReport]]:
        return await asyncio.gather(
            *(
                scanner.scan_async(
                    [server.as_target() for server in group],
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
    return reports
