"""The DNS checks of a target: dns.resolves (A/AAAA) and dns.srv (RFC 6186 SRV records)."""

from __future__ import annotations

from collections.abc import Iterable

from scanner._evaluate_common import Context, TargetFacts, Verdict
from scanner._facts import SrvRecord
from scanner._target import Target


def check_resolves(facts: TargetFacts, context: Context) -> Verdict:
    """The service name has A/AAAA records."""
    dns = facts.dns
    name = dns.name or "the name"
    detail = f" ({dns.error})" if dns.error else ""
    if dns.outcome == "ok":
        return "pass", f"{name} resolves to {', '.join(dns.addresses)}"
    if dns.outcome == "not_applicable":
        return "skip", "the target is an IP address with no name to resolve"
    if dns.outcome == "nxdomain":
        return "fail", f"{name} does not exist in DNS (NXDOMAIN){detail}"
    if dns.outcome == "no_address":
        return "fail", f"{name} exists but has no A or AAAA record{detail}"
    return "error", f"could not resolve {name}: {dns.outcome}{detail}"


def check_srv(facts: TargetFacts, context: Context) -> Verdict:
    """RFC 6186: `_pop3s._tcp` points at the service, `_pop3._tcp` is absent or '.'."""
    dns, target = facts.dns, context.target
    domain = dns.srv_domain
    if domain is None:
        return "skip", "no domain to look up SRV records in"
    if dns.srv_error is not None or dns.srv_pop3s is None or dns.srv_pop3 is None:
        return "error", f"SRV lookup in {domain} failed: {dns.srv_error or 'no answer'}"
    found = (
        _pop3s_problem(dns.srv_pop3s, domain, target),
        _pop3_problem(dns.srv_pop3, domain),
    )
    problems = [problem for problem in found if problem]
    if problems:
        return "warn", "; ".join(problems)
    return "pass", f"_pop3s._tcp.{domain} points to {_srv(dns.srv_pop3s)}, no cleartext SRV"


def _pop3s_problem(records: tuple[SrvRecord, ...], domain: str, target: Target) -> str | None:
    want = _srv_name(target.service_name or target.host)
    if not any(_srv_name(r.target) for r in records):
        return f"_pop3s._tcp.{domain} is missing, so clients cannot discover POP3S"
    if any(_srv_name(r.target) == want and r.port == target.pop3s_port for r in records):
        return None
    return f"_pop3s._tcp.{domain} points to {_srv(records)}, not {want}:{target.pop3s_port}"


def _pop3_problem(records: tuple[SrvRecord, ...], domain: str) -> str | None:
    """A `_pop3._tcp` record other than '.' advertises cleartext POP3."""
    cleartext = [r for r in records if _srv_name(r.target)]
    if not cleartext:
        return None
    return f"_pop3._tcp.{domain} advertises cleartext POP3 at {_srv(cleartext)}"


def _srv_name(name: str) -> str:
    """Compare SRV targets case- and trailing-dot-insensitively; '.' becomes ''."""
    return name.strip().rstrip(".").lower()


def _srv(records: Iterable[SrvRecord]) -> str:
    return ", ".join(f"{_srv_name(r.target) or '.'}:{r.port}" for r in records)
