"""The DNS checks of a target: dns.resolves (A/AAAA) and dns.srv (RFC 6186/8314 SRV records)."""

from __future__ import annotations

from collections.abc import Iterable

from scanner._dns import srv_service
from scanner._evaluate_common import Context, TargetFacts, Verdict
from scanner._facts import SrvRecord
from scanner._services import CLIENT_PROTOCOLS, ClientProtocol
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
    """RFC 6186 and RFC 8314, for each declared protocol: the implicit-TLS record
    (`_pop3s._tcp`, `_imaps._tcp`, `_submissions._tcp`) points at the service, and the POP3 and
    IMAP4 cleartext records (`_pop3._tcp`, `_imap._tcp`) are absent or '.'. `_submission._tcp`
    may point at 587: submission there requires STARTTLS before AUTH when configured well."""
    dns, target = facts.dns, context.target
    domain = dns.srv_domain
    if domain is None:
        return "skip", "no domain to look up SRV records in"
    declared = [p for p in CLIENT_PROTOCOLS if target.declares(p.name)]
    records = {
        door: getattr(dns, f"srv_{door}")
        for protocol in declared
        for door in (protocol.implicit_tls_name, protocol.name)
    }
    if dns.srv_error is not None or any(found is None for found in records.values()):
        return "error", f"SRV lookup in {domain} failed: {dns.srv_error or 'no answer'}"
    problems = [
        problem
        for protocol in declared
        for problem in (
            _implicit_problem(protocol, records[protocol.implicit_tls_name], domain, target),
            _cleartext_problem(protocol, records[protocol.name], domain),
        )
        if problem
    ]
    if problems:
        return "warn", "; ".join(problems)
    pointers = [
        f"{srv_service(p.implicit_tls_name)}.{domain} points to "
        f"{_srv(records[p.implicit_tls_name])}"
        for p in declared
    ]
    return "pass", f"{'; '.join(pointers)}, no cleartext SRV"


def _implicit_problem(
    protocol: ClientProtocol, records: tuple[SrvRecord, ...], domain: str, target: Target
) -> str | None:
    owner = f"{srv_service(protocol.implicit_tls_name)}.{domain}"
    want = _srv_name(target.service_name or target.host)
    _, port = target.ports(protocol)
    if not any(_srv_name(r.target) for r in records):
        return f"{owner} is missing, so clients cannot discover {protocol.implicit_tls_label}"
    if any(_srv_name(r.target) == want and r.port == port for r in records):
        return None
    return f"{owner} points to {_srv(records)}, not {want}:{port}"


def _cleartext_problem(
    protocol: ClientProtocol, records: tuple[SrvRecord, ...], domain: str
) -> str | None:
    """A `_pop3._tcp` or `_imap._tcp` record other than '.' advertises the cleartext port."""
    cleartext = [r for r in records if _srv_name(r.target)]
    if not cleartext or protocol.name == "submission":
        return None
    owner = f"{srv_service(protocol.name)}.{domain}"
    return f"{owner} advertises cleartext {protocol.label} at {_srv(cleartext)}"


def _srv_name(name: str) -> str:
    """Compare SRV targets case- and trailing-dot-insensitively; '.' becomes ''."""
    return name.strip().rstrip(".").lower()


def _srv(records: Iterable[SrvRecord]) -> str:
    return ", ".join(f"{_srv_name(r.target) or '.'}:{r.port}" for r in records)
