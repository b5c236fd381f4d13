"""Verdicts: every check of the catalog (scanner._catalog) applied to the facts of one target.

`evaluate` is pure: facts and a `Policy` in, `CheckResult`s out. The only I/O is the trust store
that `scanner._trust.verify_chain` loads once and caches. Per-address checks are judged per
address first; the target's result for such a check is the worst over its addresses, naming
that address.

The evaluators live by family: scanner._evaluate_doors (each protocol's implicit TLS,
upgrade and, for IMAP4 and submission, plaintext login), _evaluate_pop3 (pop3.plaintext_login),
_evaluate_login (pop3.tls_login), _evaluate_ntlm (auth.*), _evaluate_tls (tls.*),
_evaluate_certs (cert.*) and _evaluate_dns (dns.*); what they share is in _evaluate_common.
"""

from __future__ import annotations

from datetime import datetime

from scanner._catalog import CATALOG, AddressCheck, CheckSpec, TargetCheck
from scanner._evaluate_common import Context, TargetFacts
from scanner._facts import PASSING, STATUS_RANK, CheckResult, DnsFacts, EndpointFacts, Status
from scanner._services import PROTOCOL_BY_NAME
from scanner._target import Policy, Target


def evaluate(
    target: Target,
    dns: DnsFacts,
    endpoints: tuple[EndpointFacts, ...],
    policy: Policy,
    now: datetime,
) -> tuple[tuple[CheckResult, ...], tuple[CheckResult, ...]]:
    """Judge one target's facts against `policy` at time `now`.

    Returns `(checks, address_checks)`: `checks` has one result per catalog id in catalog order
    (worst over addresses for per-address ids); `address_checks` has one result per address and
    per-address id, address-major, each with `address` set.
    """
    context = Context(target, policy, now)
    address_checks = tuple(
        _result(spec, *_judged(spec, endpoint, context), endpoint.address)
        for endpoint in endpoints
        for spec in CATALOG
        if isinstance(spec, AddressCheck)
    )
    facts = TargetFacts(dns, endpoints)
    checks = tuple(
        _result(spec, *spec.evaluate(facts, context))
        if isinstance(spec, TargetCheck)
        else _worst_over_addresses(spec, address_checks)
        for spec in CATALOG
    )
    return checks, address_checks


def _judged(spec: AddressCheck, endpoint: EndpointFacts, context: Context) -> tuple[Status, str]:
    """The check's verdict, or skip when it judges a protocol the target does not declare
    (nothing was probed for it: a POP3-only server is not failed for a closed 993)."""
    if spec.protocol is not None and not context.target.declares(spec.protocol):
        label = PROTOCOL_BY_NAME[spec.protocol].label
        return "skip", f"{label} is not declared for this server, so it was not probed"
    return spec.evaluate(endpoint, context)


def _result(
    spec: CheckSpec, status: Status, summary: str, address: str | None = None
) -> CheckResult:
    """A CheckResult with remediation attached only where something needs fixing."""
    fix = "" if status in PASSING else spec.remediation
    return CheckResult(spec.id, status, summary, fix, address)


def _worst_over_addresses(spec: CheckSpec, results: tuple[CheckResult, ...]) -> CheckResult:
    """The worst per-address result; with several addresses the summary names the worst one.

    Ties go to the first address in probe order, and the summary counts the others that share
    the status, so "fails on one of three" and "fails everywhere" read differently.
    """
    mine = [result for result in results if result.id == spec.id]
    if not mine:
        # No address was probed (the name did not resolve): we could not ask, which is not
        # "not applicable"; dns.resolves carries the reason.
        return _result(spec, "error", "no address was probed, so this could not be checked")
    worst = max(mine, key=lambda result: STATUS_RANK[result.status])
    summary = worst.summary
    if len(mine) > 1:
        others = sum(1 for result in mine if result.status == worst.status) - 1
        who = worst.address or ""
        if others:
            who += f" and {others} other address{'es' if others > 1 else ''}"
        summary = f"{who}: {summary}"
    return _result(spec, worst.status, summary, worst.address)
