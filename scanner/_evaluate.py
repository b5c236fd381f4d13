"""Verdicts: the check catalog (docs/checks.md) applied to the facts of one target.

`evaluate` is pure: facts and a `Policy` in, `CheckResult`s out. The only I/O is the trust store
that `scanner._trust.verify_chain` loads once and caches. Per-address checks are judged per
address first; the target's result for such a check is the worst over its addresses, naming
that address.

The checks live by family, named after their ids: scanner._evaluate_pop3 (pop3s.*, pop3.*),
_evaluate_login (pop3.tls_login), _evaluate_tls (tls.*), _evaluate_certs (cert.*) and
_evaluate_dns (dns.*); what they share is in _evaluate_common.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from scanner._evaluate_certs import (
    check_consistent,
    check_name,
    check_strength,
    check_trusted,
    check_validity,
)
from scanner._evaluate_common import Context, Verdict
from scanner._evaluate_dns import check_resolves, check_srv
from scanner._evaluate_login import check_tls_login
from scanner._evaluate_pop3 import check_plaintext_login, check_pop3s_available, check_stls
from scanner._evaluate_tls import check_tls_ciphers, check_tls_protocols
from scanner._facts import STATUS_RANK, CheckResult, DnsFacts, EndpointFacts, Status
from scanner._remediation import remediation_for
from scanner._target import Policy, Target

# Catalog order: the per-address checks, then the target-level ones.
_ADDRESS_CHECKS: dict[str, Callable[[EndpointFacts, Context], Verdict]] = {
    "pop3s.available": check_pop3s_available,
    "pop3.plaintext_login": check_plaintext_login,
    "pop3.stls": check_stls,
    "pop3.tls_login": check_tls_login,
    "tls.protocols": check_tls_protocols,
    "tls.ciphers": check_tls_ciphers,
    "cert.trusted": check_trusted,
    "cert.name": check_name,
    "cert.validity": check_validity,
    "cert.strength": check_strength,
}
ADDRESS_CHECK_IDS: tuple[str, ...] = tuple(_ADDRESS_CHECKS)
TARGET_CHECK_IDS: tuple[str, ...] = ("cert.consistent", "dns.resolves", "dns.srv")
CHECK_IDS: tuple[str, ...] = ADDRESS_CHECK_IDS + TARGET_CHECK_IDS
# The checks that fail when a server would take a password in the clear: the dashboard's
# "Accepts passwords in the clear" view. IMAP and submission add theirs here as they arrive.
CLEARTEXT_PASSWORD_CHECK_IDS: tuple[str, ...] = ("pop3.plaintext_login",)


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
        _result(check_id, *check(endpoint, context), endpoint.address)
        for endpoint in endpoints
        for check_id, check in _ADDRESS_CHECKS.items()
    )
    checks = tuple(_worst_over_addresses(i, address_checks) for i in ADDRESS_CHECK_IDS)
    checks += (
        _result("cert.consistent", *check_consistent(endpoints)),
        _result("dns.resolves", *check_resolves(dns)),
        _result("dns.srv", *check_srv(dns, target)),
    )
    return checks, address_checks


def _result(check_id: str, status: Status, summary: str, address: str | None = None) -> CheckResult:
    """A CheckResult with remediation attached only where something needs fixing."""
    fix = "" if status in ("pass", "skip") else remediation_for(check_id)
    return CheckResult(check_id, status, summary, fix, address)


def _worst_over_addresses(check_id: str, results: tuple[CheckResult, ...]) -> CheckResult:
    """The worst per-address result; with several addresses the summary names the worst one.

    Ties go to the first address in probe order, and the summary counts the others that share
    the status, so "fails on one of three" and "fails everywhere" read differently.
    """
    mine = [result for result in results if result.id == check_id]
    if not mine:
        # No address was probed (the name did not resolve): we could not ask, which is not
        # "not applicable"; dns.resolves carries the reason.
        return _result(check_id, "error", "no address was probed, so this could not be checked")
    worst = max(mine, key=lambda result: STATUS_RANK[result.status])
    summary = worst.summary
    if len(mine) > 1:
        others = sum(1 for result in mine if result.status == worst.status) - 1
        who = worst.address or ""
        if others:
            who += f" and {others} other address{'es' if others > 1 else ''}"
        summary = f"{who}: {summary}"
    return _result(check_id, worst.status, summary, worst.address)
