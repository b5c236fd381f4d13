"""Scanning: resolve each target, probe every address of it, and judge the facts.

Probes are I/O-bound, so everything overlaps on one event loop: `settings.concurrency` targets
at once, and within a target all its addresses and their declared protocols at once, each
protocol of an address capped at `settings.connections_per_address` open connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from scanner._catalog import CATALOG
from scanner._disclosure import probe_ntlm
from scanner._dns import lookup_addresses, resolve_service
from scanner._errors import DnsError
from scanner._evaluate import evaluate
from scanner._facts import (
    CheckResult,
    CleartextFacts,
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    NtlmFacts,
    Pop3Facts,
    ScanReport,
    StlsFacts,
    TlsLoginFacts,
    compliance,
)
from scanner._hints import exchange_imap_login_type, exchange_login_type, product_hint
from scanner._imap import IMAP_DIALECT
from scanner._implicit_tls import probe_implicit_tls, with_implicit_tls_support
from scanner._login import probe_tls_login
from scanner._pop3 import POP3_DIALECT
from scanner._revocation import with_revocation
from scanner._session import (
    AddressSession,
    Dialect,
    LoginGate,
    probe_upgrade,
    with_upgrade_support,
)
from scanner._submission import SUBMISSION_DIALECT
from scanner._target import Policy, Settings, Target

Progress = Callable[[ScanReport], None]
T = TypeVar("T")

LOG = logging.getLogger(__name__)


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
            try:
                report = await scan_target(target, settings, policy)
            except Exception as exc:
                LOG.exception("the scan of %s failed", target.host)
                report = failed_scan(target, exc)
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
    try:
        endpoints = await with_revocation(endpoints, target, settings, policy)
    except Exception:
        # An answer nobody foresaw (the server and its CA's URLs are the scanned party's) must
        # cost cert.revocation ("not looked up": error), not the scan of every target with it.
        LOG.exception("revocation lookup of %s failed", target.host)
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


def failed_scan(target: Target, error: Exception) -> ScanReport:
    """The report of a target whose scan stopped on `error`: nothing was judged, so every check
    is `error` and names it."""
    failure = f"{type(error).__name__}: {error}"[:500]
    summary = f"the scan stopped on an unexpected error ({failure}), so nothing was judged"
    checks = tuple(CheckResult(spec.id, "error", summary) for spec in CATALOG)
    return ScanReport(
        target=target,
        dns=DnsFacts(name=target.service_name or target.host, outcome="error", error=summary),
        endpoints=(),
        checks=checks,
        address_checks=(),
        compliant=compliance(checks),
        started_at=datetime.now(UTC),
        duration_ms=0,
        failure=failure,
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
    every declared port reads as unreachable with the guard's reason (its checks become
    errors)."""
    reason = settings.refusal(address)
    if reason is None:
        return await probe_address(address, target, settings, policy, gate)
    doors: dict[str, object] = {"pop3": None, "pop3s": None}
    for dialect in DIALECTS:
        protocol = dialect.protocol
        if target.declares(protocol.name):
            cleartext, implicit = target.ports(protocol)
            upgrade = StlsFacts("unreachable", reason)
            if protocol.name == "pop3":
                doors["pop3"] = Pop3Facts(cleartext, "unreachable", reason, stls=upgrade)
            else:
                doors[protocol.name] = CleartextFacts(
                    cleartext, "unreachable", reason, starttls=upgrade
                )
            doors[protocol.implicit_tls_name] = ImplicitTlsFacts(implicit, "unreachable", reason)
    return EndpointFacts(address=address, **doors)  # type: ignore[arg-type]


DIALECTS: tuple[Dialect, ...] = (POP3_DIALECT, IMAP_DIALECT, SUBMISSION_DIALECT)


async def probe_address(
    address: str,
    target: Target,
    settings: Settings,
    policy: Policy,
    login_gate: LoginGate,
) -> EndpointFacts:
    """Every probe of one address, for each protocol the target declares, all side by side:
    the cleartext login probe, the STLS/STARTTLS upgrade and implicit TLS; then what each TLS
    entry point accepts (scanner._enumerate) and, where the cleartext port lists NTLM, its
    challenge (scanner._disclosure). For POP3 also the login with the target's credentials
    (if any, judged by `policy`'s trust store before the password goes out, and through the
    `login_gate` the target's addresses share)."""
    clock = time.monotonic()
    session = AddressSession(address, target, settings, login_gate)
    declared = [d for d in DIALECTS if target.declares(d.protocol.name)]
    results = await asyncio.gather(*(_probe_protocol(session, policy, d) for d in declared))
    doors: dict[str, object] = {"pop3": None, "pop3s": None}
    ntlm: list[NtlmFacts] = []
    tls_login: TlsLoginFacts | None = None
    for dialect, (cleartext, implicit, disclosure, login) in zip(declared, results, strict=True):
        doors[dialect.protocol.name] = cleartext
        doors[dialect.protocol.implicit_tls_name] = implicit
        ntlm.extend(disclosure)
        tls_login = tls_login or login
    endpoint = EndpointFacts(
        address=address,
        tls_login=tls_login,
        ntlm=tuple(ntlm),
        duration_ms=round((time.monotonic() - clock) * 1000),
        transcripts=tuple(sorted(session.transcripts, key=lambda t: t.id)),
        **doors,  # type: ignore[arg-type]
    )
    return _with_hints(endpoint)


def _with_hints(endpoint: EndpointFacts) -> EndpointFacts:
    """The endpoint with the product its greetings and goodbyes name, and Exchange's
    LoginTypes."""
    pop3, imap, submission = endpoint.pop3, endpoint.imap, endpoint.submission
    greetings = [
        pop3.greeting if pop3 else None,
        endpoint.pop3s.greeting if endpoint.pop3s else None,
        imap.greeting if imap else None,
        endpoint.imaps.greeting if endpoint.imaps else None,
        submission.greeting if submission else None,
    ]
    goodbyes = " ".join(
        text for text in (pop3.quit_reply if pop3 else None, imap.goodbye if imap else None) if text
    )
    product = product_hint(*greetings, quit_reply=goodbyes)
    exchange = bool(product and "Exchange" in product)
    return replace(
        endpoint,
        product=product,
        login_type=exchange_login_type(pop3) if exchange and pop3 else None,
        imap_login_type=exchange_imap_login_type(imap) if exchange and imap else None,
    )


ProtocolResult = tuple[
    Pop3Facts | CleartextFacts, ImplicitTlsFacts, tuple[NtlmFacts, ...], TlsLoginFacts | None
]


async def _probe_protocol(
    session: AddressSession, policy: Policy, dialect: Dialect
) -> ProtocolResult:
    """One protocol's doors: the cleartext probe, the upgrade and implicit TLS at once; then
    both TLS entry points' enumeration beside the NTLM challenge and (POP3) the login."""
    cleartext, upgrade, implicit = await asyncio.gather(
        dialect.probe_cleartext(session),
        probe_upgrade(session, dialect),
        probe_implicit_tls(session, dialect),
    )
    enumerate_tls = session.settings.enumerate_tls
    upgrade, implicit, disclosure, login = await asyncio.gather(
        with_upgrade_support(session, upgrade, dialect) if enumerate_tls else _same(upgrade),
        with_implicit_tls_support(session, implicit) if enumerate_tls else _same(implicit),
        _disclosure(session, dialect, cleartext.capabilities),
        probe_tls_login(session, policy, implicit, upgrade)
        if dialect is POP3_DIALECT
        else _same(None),
    )
    if isinstance(cleartext, Pop3Facts):
        cleartext = replace(cleartext, stls=upgrade)
    else:
        cleartext = replace(cleartext, starttls=upgrade)
    return cleartext, implicit, disclosure, login


async def _same(value: T) -> T:
    return value


async def _disclosure(
    session: AddressSession, dialect: Dialect, capabilities: tuple[str, ...] | None
) -> tuple[NtlmFacts, ...]:
    """The NTLM challenge of the cleartext port, where it lists NTLM before TLS."""
    if not dialect.lists_ntlm(capabilities):
        return ()
    return (await probe_ntlm(session, dialect),)
