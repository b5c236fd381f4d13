"""Scanning: resolve each target, probe every address of it, and judge the facts.

Probes are I/O-bound, so everything overlaps on one event loop: `settings.concurrency` targets
at once, and within a target all its addresses at once, each capped at
`settings.connections_per_address` open connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from scanner._dns import lookup_addresses, resolve_service
from scanner._errors import DnsError
from scanner._evaluate import evaluate
from scanner._facts import (
    DnsFacts,
    EndpointFacts,
    Pop3Facts,
    Pop3sFacts,
    ScanReport,
    StlsFacts,
    compliance,
)
from scanner._hints import exchange_login_type, product_hint
from scanner._login import probe_tls_login
from scanner._pop3 import probe_cleartext, probe_stls, with_stls_support
from scanner._pop3s import probe_implicit_tls, with_implicit_tls_support
from scanner._session import AddressSession, LoginGate
from scanner._target import Policy, Settings, Target

Progress = Callable[[ScanReport], None]


def scan(
    targets: Sequence[Target],
    settings: Settings | None = None,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
) -> list[ScanReport]:
    """Scan targets and return their reports in input order. Touches the network."""
    return asyncio.run(scan_async(targets, settings, policy, progress=progress))


async def scan_async(
    targets: Sequence[Target],
    settings: Settings | None = None,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
) -> list[ScanReport]:
    """Scan targets concurrently; `progress` is called with each report as it completes."""
    settings = settings or Settings()
    policy = policy or Policy()
    limit = asyncio.Semaphore(settings.concurrency)

    async def one(target: Target) -> ScanReport:
        async with limit:
            report = await scan_target(target, settings, policy)
        if progress is not None:
            progress(report)
        return report

    return list(await asyncio.gather(*(one(target) for target in targets)))


async def scan_target(target: Target, settings: Settings, policy: Policy) -> ScanReport:
    """Resolve, probe every address, evaluate. DNS and connection trouble become facts."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    dns = await resolve_service(target, settings)
    addresses, address_error = await _addresses_to_probe(target, dns, settings)
    if address_error:
        dns = replace(dns, error=dns.error or address_error)
    gate = LoginGate()
    endpoints = tuple(
        await asyncio.gather(
            *(_probe_guarded(address, target, settings, policy, gate) for address in addresses)
        )
    )
    checks, address_checks = evaluate(target, dns, endpoints, policy, started_at)
    return ScanReport(
        target=target,
        dns=dns,
        endpoints=endpoints,
        checks=checks,
        address_checks=address_checks,
        compliant=compliance(checks),
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
    )


async def _addresses_to_probe(
    target: Target, dns: DnsFacts, settings: Settings
) -> tuple[tuple[str, ...], str | None]:
    """The host itself when it is an IP; the service name's addresses when the host is that
    name (already resolved); otherwise the host's own addresses."""
    if target.host_is_ip:
        return (target.host,), None
    if target.host == target.service_name:
        return dns.addresses, None
    try:
        return await lookup_addresses(target.host, settings), None
    except DnsError as exc:
        return (), str(exc)


async def _probe_guarded(
    address: str, target: Target, settings: Settings, policy: Policy, gate: LoginGate
) -> EndpointFacts:
    """Probe the address unless the scanner guard refuses it: then nothing connects, and
    every port reads as unreachable with the guard's reason (its checks become errors)."""
    reason = settings.refusal(address)
    if reason is None:
        return await probe_address(address, target, settings, policy, gate)
    return EndpointFacts(
        address=address,
        pop3=Pop3Facts(
            target.pop3_port, "unreachable", reason, stls=StlsFacts("unreachable", reason)
        ),
        pop3s=Pop3sFacts(target.pop3s_port, "unreachable", reason),
    )


async def probe_address(
    address: str,
    target: Target,
    settings: Settings,
    policy: Policy,
    login_gate: LoginGate,
) -> EndpointFacts:
    """Every probe of one address: the cleartext login probe, STLS and implicit TLS side by
    side; then, over the TLS entry point that worked, the login with the target's credentials
    (if any, judged by `policy`'s trust store before the password goes out, and through the
    `login_gate` the target's addresses share) beside the enumeration of what each TLS entry
    point accepts (scanner._enumerate)."""
    clock = time.monotonic()
    session = AddressSession(address, target, settings, login_gate)
    pop3, stls, pop3s = await asyncio.gather(
        probe_cleartext(session), probe_stls(session), probe_implicit_tls(session)
    )
    (stls, pop3s), tls_login = await asyncio.gather(
        _with_tls_support(session, stls, pop3s), probe_tls_login(session, policy, pop3s, stls)
    )
    pop3 = replace(pop3, stls=stls)
    product = product_hint(pop3.greeting, pop3s.greeting, quit_reply=pop3.quit_reply)
    login_type = exchange_login_type(pop3) if product and "Exchange" in product else None
    return EndpointFacts(
        address=address,
        pop3=pop3,
        pop3s=pop3s,
        product=product,
        login_type=login_type,
        duration_ms=round((time.monotonic() - clock) * 1000),
        tls_login=tls_login,
    )


async def _with_tls_support(
    session: AddressSession, stls: StlsFacts, pop3s: Pop3sFacts
) -> tuple[StlsFacts, Pop3sFacts]:
    """Both TLS entry points' facts with what they accept, when the settings ask."""
    if not session.settings.enumerate_tls:
        return stls, pop3s
    stls, pop3s = await asyncio.gather(
        with_stls_support(session, stls), with_implicit_tls_support(session, pop3s)
    )
    return stls, pop3s
