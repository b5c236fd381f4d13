"""Verdicts: the check catalog (DESIGN.md §2) applied to the facts of one target.

`evaluate` is pure: facts and a `Policy` in, `CheckResult`s out. The only I/O is the trust store
that `verify_chain` loads once and caches. Per-address checks are judged per address first; the
target's result for such a check is the worst over its addresses, naming that address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from scanner._certs import days_left, name_matches, verify_chain
from scanner._errors import quote_reply
from scanner._facts import (
    STATUS_RANK,
    CertificateFacts,
    CheckResult,
    DnsFacts,
    EndpointFacts,
    Pop3Facts,
    SrvRecord,
    Status,
    TlsFacts,
    worst_status,
)
from scanner._remediation import remediation_for
from scanner._target import TLS_VERSIONS, Policy, Target

Verdict = tuple[Status, str]

ADDRESS_CHECK_IDS: tuple[str, ...] = (
    "pop3s.available",
    "pop3.plaintext_login",
    "pop3.stls",
    "tls.protocols",
    "cert.trusted",
    "cert.name",
    "cert.validity",
    "cert.strength",
)
TARGET_CHECK_IDS: tuple[str, ...] = ("cert.consistent", "dns.resolves", "dns.srv")
CHECK_IDS: tuple[str, ...] = ADDRESS_CHECK_IDS + TARGET_CHECK_IDS

# Outcomes that say nothing about the server's configuration, only that we could not ask.
_UNDETERMINED = {"timeout": "timed out", "unreachable": "was unreachable"}
_VERSION_LABEL = {
    "SSLv3": "SSLv3",
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}
_MODERN_TLS = TLS_VERSIONS.index("TLSv1.2")
_WEAK_HASHES = {"sha1", "md5", "md4", "md2"}


@dataclass(frozen=True)
class _Context:
    """What every per-address check may read besides the endpoint's own facts."""

    target: Target
    policy: Policy
    now: datetime


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
    context = _Context(target, policy, now)
    address_checks = tuple(
        _address_result(check_id, endpoint, context)
        for endpoint in endpoints
        for check_id in ADDRESS_CHECK_IDS
    )
    checks = tuple(_worst_over_addresses(i, address_checks) for i in ADDRESS_CHECK_IDS)
    checks += (
        _result("cert.consistent", *_check_consistent(endpoints)),
        _result("dns.resolves", *_check_resolves(dns)),
        _result("dns.srv", *_check_srv(dns, target)),
    )
    return checks, address_checks


def _result(check_id: str, status: Status, summary: str, address: str | None = None) -> CheckResult:
    """A CheckResult with remediation attached only where something needs fixing."""
    fix = "" if status in ("pass", "skip") else remediation_for(check_id)
    return CheckResult(check_id, status, summary, fix, address)


def _address_result(check_id: str, endpoint: EndpointFacts, context: _Context) -> CheckResult:
    status, summary = _ADDRESS_CHECKS[check_id](endpoint, context)
    return _result(check_id, status, summary, endpoint.address)


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


# --- helpers -----------------------------------------------------------------------------------


def _quoted(reply: str | None) -> str:
    return f"'{quote_reply(reply)}'"


def _and(items: Iterable[str]) -> str:
    """Join labels for a sentence: 'a', 'a and b', 'a, b and c'."""
    words = list(items)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _tls_sessions(endpoint: EndpointFacts) -> list[tuple[str, TlsFacts]]:
    """The TLS sessions we saw on this address, labelled by how we reached them."""
    sessions = []
    if endpoint.pop3s.tls is not None:
        sessions.append((str(endpoint.pop3s.port), endpoint.pop3s.tls))
    stls = endpoint.pop3.stls
    if stls is not None and stls.tls is not None:
        sessions.append((f"{endpoint.pop3.port} after STLS", stls.tls))
    return sessions


def _combine(parts: list[tuple[str, Verdict]]) -> Verdict:
    """Merge per-entry-point verdicts: worst status, texts of the worst ones, grouped by text."""
    status = worst_status([verdict[0] for _, verdict in parts])
    groups: dict[str, list[str]] = {}
    for label, (part_status, text) in parts:
        if part_status == status:
            groups.setdefault(text, []).append(label)
    return status, "; ".join(f"{text} on {_and(labels)}" for text, labels in groups.items())


def _undetermined(port: int, outcome: str, error: str | None) -> Verdict:
    detail = f" ({error})" if error else ""
    return "error", f"could not determine: port {port} {_UNDETERMINED[outcome]}{detail}"


# --- pop3s.available ---------------------------------------------------------------------------


def _check_pop3s_available(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """Implicit TLS on the POP3S port: TCP, the handshake, and a +OK greeting inside TLS."""
    facts = endpoint.pop3s
    port = facts.port
    if facts.outcome in _UNDETERMINED:
        return _undetermined(port, facts.outcome, facts.error)
    if facts.outcome == "closed":
        return "fail", f"port {port} is closed, so there is no POP3 over implicit TLS"
    if facts.plaintext_reply is not None:
        return "fail", _plaintext_instead_of_tls(port, facts.plaintext_reply)
    if facts.outcome == "tls_error":
        return "fail", f"the TLS handshake on port {port} failed ({facts.error or 'no reason'})"
    greeting = facts.greeting or ""
    if facts.outcome == "ok" and greeting.startswith("+OK"):
        version = _VERSION_LABEL.get(facts.tls.version, "TLS") if facts.tls else "TLS"
        return "pass", f"POP3 over {version} on port {port} works (greeting {_quoted(greeting)})"
    said = f"; the server said {_quoted(greeting)}" if greeting else ""
    return "fail", f"no +OK greeting after the TLS handshake on port {port}{said}"


def _plaintext_instead_of_tls(port: int, reply: str) -> str:
    """Exchange answers 995 in plaintext when no certificate is bound to POP; say so."""
    text = f"port {port} answered {_quoted(reply)} in plaintext instead of a TLS handshake"
    if reply.startswith("-ERR Connection is closed"):
        text += (
            "; this is Exchange with no certificate bound to POP "
            "(X509CertificateName matches no installed certificate)"
        )
    return text


# --- pop3.plaintext_login ----------------------------------------------------------------------


def _check_plaintext_login(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """Would the cleartext port take a password before TLS?

    A verdict the probe reached (accepted/refused) stands even if the connection later timed
    out. When `policy.allow_cleartext_port` is False, a port 110 that answered at all fails
    even if it refuses passwords: the policy wants implicit TLS only (RFC 8314), and a
    listening cleartext port is what it forbids. Accepted logins are reported first because
    they are the graver finding.
    """
    facts = endpoint.pop3
    if facts.outcome == "closed":
        return "skip", f"port {facts.port} is closed, so no password can be sent there in cleartext"
    if facts.plaintext_login == "accepted":
        return "fail", _accepted_summary(facts, endpoint.login_type)
    if not context.policy.allow_cleartext_port and _answered(facts):
        return "fail", (
            f"port {facts.port} answers POP3 in cleartext; policy allows implicit TLS only"
        )
    if facts.plaintext_login == "refused":
        shown = facts.evidence or facts.user_reply
        why = f" ({_quoted(shown)})" if shown else ""
        return "pass", f"port {facts.port} refuses passwords before TLS{why}"
    if facts.outcome in _UNDETERMINED:
        return _undetermined(facts.port, facts.outcome, facts.error)
    reason = facts.error or "the replies did not show whether a login would be accepted"
    return "error", f"could not determine whether port {facts.port} takes passwords: {reason}"


def _answered(facts: Pop3Facts) -> bool:
    """Did anything answer on the cleartext port (a greeting, or POP3 we could read)?"""
    return facts.greeting is not None or facts.outcome in ("ok", "protocol_error")


def _accepted_summary(facts: Pop3Facts, login_type: str | None) -> str:
    """Quote the evidence and say how sure we are, so operators can weigh the finding."""
    port = facts.port
    if facts.certainty == "confirmed":
        if facts.user_reply and facts.user_reply.startswith("+OK"):
            lead = (
                f"the server accepts USER before TLS on port {port} ({_quoted(facts.user_reply)})"
            )
        else:
            lead = (
                f"the server accepts a login before TLS on port {port} ({_quoted(facts.evidence)})"
            )
        text = f"{lead}, so passwords can cross the network in the clear"
    else:
        evidence = f" ({_quoted(facts.evidence)})" if facts.evidence else ""
        text = (
            f"the server likely accepts a password before TLS on port {port}{evidence}, so "
            "passwords could "
            "cross the network in the clear (advertised, not confirmed)"
        )
    if login_type == "PlainTextLogin":
        text += "; Exchange LoginType is PlainTextLogin"
    return text


# --- pop3.stls ---------------------------------------------------------------------------------


def _check_stls(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """STLS on the cleartext port: offered in CAPA, accepted, and the handshake completes."""
    facts = endpoint.pop3
    port = facts.port
    if facts.outcome == "closed":
        return "skip", f"port {port} is closed, so there is no STLS to check"
    stls = facts.stls
    offered = _offers_stls(facts.capabilities)
    if stls is not None and stls.outcome == "ok" and stls.tls is not None:
        version = _VERSION_LABEL.get(stls.tls.version, stls.tls.version)
        return "pass", f"STLS on port {port} upgrades to {version}"
    if stls is not None and stls.outcome == "tls_error":
        return "fail", f"STLS on port {port} was accepted but the TLS handshake failed " + (
            f"({stls.error or 'no reason'})"
        )
    if stls is not None and (stls.reply or "").startswith("-ERR"):
        unlisted = "" if offered else " (and CAPA does not list it)"
        return "fail", f"port {port} refuses STLS{unlisted}: {_quoted(stls.reply)}"
    if offered is False:
        return "fail", f"port {port} does not offer STLS in CAPA, so clients cannot upgrade to TLS"
    return _stls_undetermined(facts)


def _stls_undetermined(facts: Pop3Facts) -> Verdict:
    """Neither success nor a clear refusal: we could not find out."""
    stls = facts.stls
    outcome = stls.outcome if stls is not None else facts.outcome
    error = stls.error if stls is not None else facts.error
    if outcome in _UNDETERMINED:
        return _undetermined(facts.port, outcome, error)
    reason = error or "the STLS upgrade was not completed"
    return "error", f"could not determine whether STLS works on port {facts.port}: {reason}"


def _offers_stls(capabilities: tuple[str, ...] | None) -> bool | None:
    """True/False when CAPA was read, None when we never saw it."""
    if capabilities is None:
        return None
    return any(line.split()[:1] == ["STLS"] for line in (c.upper() for c in capabilities))


# --- tls.protocols -----------------------------------------------------------------------------


def _check_tls_protocols(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """Only versions at or above the policy minimum, and some TLS 1.2+, on every TLS endpoint.

    Versions the probe could not test (None) are mentioned, not failed; an entry point with
    nothing tested only makes the check an error when no entry point was tested at all.
    """
    sessions = _tls_sessions(endpoint)
    if not sessions:
        return "skip", "no TLS session was established (implicit TLS or STLS) to check"
    parts = [(label, _protocol_verdict(tls, context.policy)) for label, tls in sessions]
    failed = [part for part in parts if part[1][0] == "fail"]
    if failed:
        status, text = _combine(failed)
        return status, f"{text} (policy minimum {_VERSION_LABEL[context.policy.min_tls_version]})"
    tested = [part for part in parts if part[1][0] == "pass"]
    if not tested:
        return _combine(parts)
    status, text = _combine(tested)
    untested = [label for label, verdict in parts if verdict[0] == "error"]
    if untested:
        text += f"; versions on {_and(untested)} could not be tested"
    return status, text


def _protocol_verdict(tls: TlsFacts, policy: Policy) -> Verdict:
    """One entry point's accepted versions (the negotiated one counts as accepted)."""
    accepted = {v for v, ok in tls.accepted_versions.items() if ok} | {_normal(tls.version)}
    ranked = sorted(TLS_VERSIONS.index(v) for v in accepted if v in TLS_VERSIONS)
    below = [TLS_VERSIONS[i] for i in ranked if i < TLS_VERSIONS.index(policy.min_tls_version)]
    if below:
        return "fail", f"{_labels(below)} accepted"
    if not ranked or ranked[-1] < _MODERN_TLS:
        return "fail", "no TLS 1.2 or later accepted"
    names = _labels(TLS_VERSIONS[i] for i in ranked)
    if not any(ok is not None for ok in tls.accepted_versions.values()):
        return "error", f"could not test which versions are accepted (negotiated {names})"
    untested = [v for v, ok in tls.accepted_versions.items() if ok is None]
    note = f" ({_labels(untested)} could not be tested)" if untested else ""
    return "pass", f"only {names} accepted{note}"


def _normal(version: str) -> str:
    """ssl reports TLS 1.0 as 'TLSv1'; accept 'TLSv1.0' too."""
    return "TLSv1" if version == "TLSv1.0" else version


def _labels(versions: Iterable[str]) -> str:
    return ", ".join(_VERSION_LABEL.get(v, v) for v in versions)


# --- certificates ------------------------------------------------------------------------------


def _served_chains(endpoint: EndpointFacts) -> list[tuple[str, tuple[CertificateFacts, ...]]]:
    return [(label, tls.chain) for label, tls in _tls_sessions(endpoint) if tls.chain]


def _per_chain(
    endpoint: EndpointFacts, judge: Callable[[tuple[CertificateFacts, ...]], Verdict]
) -> Verdict:
    """Judge every served chain of this address; skip when no certificate was served."""
    chains = _served_chains(endpoint)
    if not chains:
        return "skip", "no certificate was served (no TLS session)"
    return _combine([(label, judge(chain)) for label, chain in chains])


def _describe(cert: CertificateFacts) -> str:
    return f"CN={cert.common_name}" if cert.common_name else cert.subject or "no subject"


def _check_trusted(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """The served chain validates to the policy's trust store (dates are cert.validity's job)."""
    policy = context.policy

    def judge(chain: tuple[CertificateFacts, ...]) -> Verdict:
        try:
            verdict = verify_chain(
                chain, use_system_trust=policy.use_system_trust, ca_bundle_pem=policy.ca_bundle_pem
            )
        except ValueError as error:
            # A policy CA bundle with no certificate in it, or a chain we could not reload: a
            # fault on our side, so "could not determine" rather than a verdict on the server.
            return "error", f"could not check trust for {_describe(chain[0])}: {error}"
        if verdict.trusted:
            return "pass", verdict.reason
        problem = (verdict.problem or "untrusted").replace("_", " ")
        return "fail", f"the certificate is not trusted ({problem}): {verdict.reason}"

    return _per_chain(endpoint, judge)


def _check_name(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """The leaf covers the name users connect to.

    With no service name (an IP target without --name), users connect to the address itself,
    so the certificate must cover that IP (an IP SAN); the summary says so.
    """
    name = context.target.service_name or endpoint.address
    via = "" if context.target.service_name else " (no service name: checked the IP address)"

    def judge(chain: tuple[CertificateFacts, ...]) -> Verdict:
        leaf = chain[0]
        if name_matches(leaf, name):
            return "pass", f"the certificate covers {name}{via}"
        return "fail", f"the certificate ({_names(leaf)}) does not cover {name}{via}"

    return _per_chain(endpoint, judge)


def _names(cert: CertificateFacts) -> str:
    """The names a certificate carries, shortened for a one-line summary."""
    names = list(cert.dns_names) + list(cert.ip_addresses)
    if not names:
        return f"no SAN, {_describe(cert)}"
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return "SAN " + ", ".join(names[:3]) + more


def _check_validity(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """Validity with margin, for the leaf and the intermediates it is served with.

    Intermediates count because clients reject a chain with an expired intermediate just as
    with an expired leaf; self-signed roots do not, since clients use their own copy.
    """

    def judge(chain: tuple[CertificateFacts, ...]) -> Verdict:
        served = [chain[0], *(c for c in chain[1:] if not c.self_signed)]
        verdicts = [_validity_verdict(cert, context.policy, context.now) for cert in served]
        return max(verdicts, key=lambda verdict: STATUS_RANK[verdict[0]])

    return _per_chain(endpoint, judge)


def _validity_verdict(cert: CertificateFacts, policy: Policy, now: datetime) -> Verdict:
    who = _describe(cert)
    if now < cert.not_before:
        return "fail", f"{who} is not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC"
    left = days_left(cert, now)
    until = f"{cert.not_after:%Y-%m-%d}"
    if left <= 0:
        return "fail", f"{who} expired on {until}"
    if left <= policy.critical_days:
        return "fail", f"{who} expires on {until}, in {left:.1f} days (critical)"
    if left <= policy.warn_days:
        return "warn", f"{who} expires on {until}, in {left:.0f} days"
    return "pass", f"{who} is valid until {until} ({left:.0f} days left)"


def _check_strength(endpoint: EndpointFacts, context: _Context) -> Verdict:
    """Key size and signature hash of the leaf and served intermediates.

    A self-signed certificate's own signature is exempt only when it is a root served after
    the leaf (clients never check it); a self-signed leaf, like Exchange's default SHA-1
    certificate, is judged like any other.
    """

    def judge(chain: tuple[CertificateFacts, ...]) -> Verdict:
        problems = [p for i, c in enumerate(chain) for p in _weaknesses(c, is_leaf=i == 0)]
        if problems:
            return "fail", "; ".join(problems)
        leaf = chain[0]
        return "pass", f"{leaf.key_type} {leaf.key_bits}-bit key, {leaf.signature_hash} signature"

    return _per_chain(endpoint, judge)


def _weaknesses(cert: CertificateFacts, *, is_leaf: bool) -> list[str]:
    who = _describe(cert)
    problems = []
    key = cert.key_type.lower()
    minimum = {"rsa": 2048, "ec": 256, "ecdsa": 256}.get(key)
    if key in ("dsa",) or (minimum is not None and cert.key_bits < minimum):
        problems.append(f"{who} has a weak {cert.key_type} {cert.key_bits}-bit key")
    weak_hash = (cert.signature_hash or "").lower() in _WEAK_HASHES
    if weak_hash and (is_leaf or not cert.self_signed):
        problems.append(f"{who} is signed with {cert.signature_hash}")
    return problems


_ADDRESS_CHECKS: dict[str, Callable[[EndpointFacts, _Context], Verdict]] = {
    "pop3s.available": _check_pop3s_available,
    "pop3.plaintext_login": _check_plaintext_login,
    "pop3.stls": _check_stls,
    "tls.protocols": _check_tls_protocols,
    "cert.trusted": _check_trusted,
    "cert.name": _check_name,
    "cert.validity": _check_validity,
    "cert.strength": _check_strength,
}


# --- target-level checks -----------------------------------------------------------------------


def _check_consistent(endpoints: tuple[EndpointFacts, ...]) -> Verdict:
    """Every address and both TLS entry points serve the same leaf certificate."""
    served: dict[str, tuple[CertificateFacts, list[str]]] = {}
    count = 0
    for endpoint in endpoints:
        for label, chain in _served_chains(endpoint):
            count += 1
            entry = served.setdefault(chain[0].fingerprint_sha256, (chain[0], []))
            entry[1].append(f"{endpoint.address} {label}")
    if count < 2:
        return "skip", "fewer than two TLS entry points served a certificate, nothing to compare"
    if len(served) == 1:
        ((leaf, _),) = served.values()
        return "pass", f"all {count} TLS entry points serve {_fingerprint(leaf)}"
    groups = [
        f"{_and(where)} serve{'s' if len(where) == 1 else ''} {_fingerprint(leaf)}"
        for leaf, where in served.values()
    ]
    return "warn", f"{len(served)} different certificates: " + "; ".join(groups)


def _fingerprint(cert: CertificateFacts) -> str:
    prefix = cert.fingerprint_sha256.replace(":", "").lower()[:16]
    return f"{_describe(cert)} (sha256 {prefix}…)"


def _check_resolves(dns: DnsFacts) -> Verdict:
    """The service name has A/AAAA records."""
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


def _check_srv(dns: DnsFacts, target: Target) -> Verdict:
    """RFC 6186: `_pop3s._tcp` points at the service, `_pop3._tcp` is absent or '.'."""
    domain = dns.srv_domain
    if domain is None:
        return "skip", "no domain to look up SRV records in"
    if dns.srv_error is not None or dns.srv_pop3s is None or dns.srv_pop3 is None:
        return "error", f"SRV lookup in {domain} failed: {dns.srv_error or 'no answer'}"
    problems = [*_pop3s_srv_problem(dns.srv_pop3s, domain, target)]
    cleartext = [r for r in dns.srv_pop3 if _srv_name(r.target)]
    if cleartext:
        problems.append(f"_pop3._tcp.{domain} advertises cleartext POP3 at {_srv(cleartext)}")
    if problems:
        return "warn", "; ".join(problems)
    return "pass", f"_pop3s._tcp.{domain} points to {_srv(dns.srv_pop3s)}, no cleartext SRV"


def _pop3s_srv_problem(records: tuple[SrvRecord, ...], domain: str, target: Target) -> list[str]:
    want = _srv_name(target.service_name or target.host)
    if not [r for r in records if _srv_name(r.target)]:
        return [f"_pop3s._tcp.{domain} is missing, so clients cannot discover POP3S"]
    if any(_srv_name(r.target) == want and r.port == target.pop3s_port for r in records):
        return []
    return [f"_pop3s._tcp.{domain} points to {_srv(records)}, not {want}:{target.pop3s_port}"]


def _srv_name(name: str) -> str:
    """Compare SRV targets case- and trailing-dot-insensitively; '.' becomes ''."""
    return name.strip().rstrip(".").lower()


def _srv(records: Iterable[SrvRecord]) -> str:
    return ", ".join(f"{_srv_name(r.target) or '.'}:{r.port}" for r in records)
