"""The certificate checks: cert.trusted, cert.name, cert.validity and cert.strength judge each
address's served chains; cert.consistent compares the leaves across all addresses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from scanner._certs import days_left, name_matches, whole_days_left
from scanner._evaluate_common import (
    Context,
    TargetFacts,
    Verdict,
    combine,
    join_and,
    tls_sessions,
    undetermined_tls,
)
from scanner._facts import STATUS_RANK, CertificateFacts, EndpointFacts
from scanner._profiles import TlsProfile
from scanner._target import Policy
from scanner._trust import verify_chain

Chain = tuple[CertificateFacts, ...]

_WEAK_HASHES = {"sha1", "md5", "md4", "md2"}


def check_trusted(endpoint: EndpointFacts, context: Context) -> Verdict:
    """The served chain validates to the policy's trust store (dates are cert.validity's job)."""
    policy = context.policy

    def judge(chain: Chain) -> Verdict:
        try:
            verdict = verify_chain(
                chain, use_system_trust=policy.use_system_trust, ca_bundle_pem=policy.ca_bundle_pem
            )
        except ValueError as error:
            # A policy CA bundle with no certificate in it, or a chain we could not reload: a
            # fault on our side, so "could not determine" rather than a verdict on the server.
            return "error", f"could not check trust for {describe(chain[0])}: {error}"
        if verdict.trusted:
            return "pass", verdict.reason
        problem = (verdict.problem or "untrusted").replace("_", " ")
        return "fail", f"the certificate is not trusted ({problem}): {verdict.reason}"

    return per_chain(endpoint, judge)


def check_name(endpoint: EndpointFacts, context: Context) -> Verdict:
    """The leaf covers the name users connect to.

    With no service name (an IP target without --name), users connect to the address itself,
    so the certificate must cover that IP (an IP SAN); the summary says so.
    """
    name = context.target.service_name or endpoint.address
    via = "" if context.target.service_name else " (no service name: checked the IP address)"

    def judge(chain: Chain) -> Verdict:
        leaf = chain[0]
        if name_matches(leaf, name):
            return "pass", f"the certificate covers {name}{via}"
        return "fail", f"the certificate ({_names(leaf)}) does not cover {name}{via}"

    return per_chain(endpoint, judge)


def check_validity(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Validity with margin, for the leaf and the intermediates it is served with.

    Intermediates count because clients reject a chain with an expired intermediate just as
    with an expired leaf; self-signed roots do not, since clients use their own copy.
    """

    def judge(chain: Chain) -> Verdict:
        served = [chain[0], *(c for c in chain[1:] if not c.self_signed)]
        verdicts = [_validity_verdict(cert, context.policy, context.now) for cert in served]
        return max(verdicts, key=lambda verdict: STATUS_RANK[verdict[0]])

    return per_chain(endpoint, judge)


def check_strength(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Key size and signature hash of the leaf and served intermediates.

    A self-signed certificate's own signature is exempt only when it is a root served after
    the leaf (clients never check it); a self-signed leaf, like Exchange's default SHA-1
    certificate, is judged like any other.
    """

    profile = context.policy.profile

    def judge(chain: Chain) -> Verdict:
        problems = [
            problem
            for index, cert in enumerate(chain)
            for problem in _weaknesses(cert, profile, is_leaf=index == 0)
        ]
        if problems:
            return "fail", "; ".join(problems)
        unread = [cert for cert in chain if cert.key_bits == 0]
        if unread:
            # A key type we cannot size (an explicit-curve EC key, a new algorithm) is not
            # known to be strong: say so rather than pass it.
            return "error", f"could not read the size of the {unread[0].key_type} key of " + (
                describe(unread[0])
            )
        leaf = chain[0]
        return "pass", f"{leaf.key_type} {leaf.key_bits}-bit key, {leaf.signature_hash} signature"

    return per_chain(endpoint, judge)


def check_consistent(facts: TargetFacts, context: Context) -> Verdict:
    """Every address and every TLS entry point serve the same leaf certificate."""
    endpoints = facts.endpoints
    served: dict[str, tuple[CertificateFacts, list[str]]] = {}
    for endpoint in endpoints:
        for label, chain in _served_chains(endpoint):
            entry = served.setdefault(chain[0].fingerprint_sha256, (chain[0], []))
            entry[1].append(f"{endpoint.address} {label}")
    count = sum(len(where) for _, where in served.values())
    if count < 2:
        reasons = [r for r in map(undetermined_tls, endpoints) if r]
        if reasons:
            return "error", f"could not compare the certificates: {reasons[0]}"
        return "skip", "fewer than two TLS entry points served a certificate, nothing to compare"
    if len(served) == 1:
        ((only, _),) = served.values()
        return "pass", f"all {count} TLS entry points serve {_fingerprint(only)}"
    groups = [
        f"{join_and(where)} serve{'s' if len(where) == 1 else ''} {_fingerprint(leaf)}"
        for leaf, where in served.values()
    ]
    return "warn", f"{len(served)} different certificates: " + "; ".join(groups)


def _served_chains(endpoint: EndpointFacts) -> list[tuple[str, Chain]]:
    return [(label, tls.chain) for label, tls in tls_sessions(endpoint) if tls.chain]


def per_chain(endpoint: EndpointFacts, judge: Callable[[Chain], Verdict]) -> Verdict:
    """Judge every served chain of this address; skip when no certificate was served."""
    chains = _served_chains(endpoint)
    if not chains:
        reason = undetermined_tls(endpoint)
        return (
            ("error", reason) if reason else ("skip", "no certificate was served (no TLS session)")
        )
    return combine([(label, judge(chain)) for label, chain in chains])


def describe(cert: CertificateFacts) -> str:
    return f"CN={cert.common_name}" if cert.common_name else cert.subject or "no subject"


def _names(cert: CertificateFacts) -> str:
    """The names a certificate carries, shortened for a one-line summary."""
    names = list(cert.dns_names) + list(cert.ip_addresses)
    if not names:
        return f"no SAN, {describe(cert)}"
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return "SAN " + ", ".join(names[:3]) + more


def _validity_verdict(cert: CertificateFacts, policy: Policy, now: datetime) -> Verdict:
    who = describe(cert)
    if now < cert.not_before:
        return "fail", f"{who} is not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC"
    left = days_left(cert, now)
    until = f"{cert.not_after:%Y-%m-%d}"
    whole = whole_days_left(cert.not_after, now)
    if left <= 0:
        return "fail", f"{who} expired on {until}"
    if left <= policy.critical_days:
        return "fail", f"{who} expires on {until}, {_in_days(whole)} (critical)"
    if left <= policy.warn_days:
        return "warn", f"{who} expires on {until}, {_in_days(whole)}"
    return "pass", f"{who} is valid until {until} ({whole} days left)"


def _in_days(whole: int) -> str:
    return "today" if whole == 0 else "in 1 day" if whole == 1 else f"in {whole} days"


def _weaknesses(cert: CertificateFacts, profile: TlsProfile, *, is_leaf: bool) -> list[str]:
    """The key and signature problems of one certificate; key sizes by the policy's profile."""
    who = describe(cert)
    problems = []
    key = cert.key_type.lower()
    minimum = {"rsa": profile.min_rsa_bits, "ec": profile.min_ec_bits}.get(key)
    if key == "dsa":
        problems.append(f"{who} has a DSA key, which no TLS profile accepts")
    elif minimum is not None and cert.key_bits < minimum:
        problems.append(
            f"{who} has a weak {cert.key_type} {cert.key_bits}-bit key "
            f"({profile.title} requires {minimum} bits)"
        )
    weak_hash = (cert.signature_hash or "").lower() in _WEAK_HASHES
    if weak_hash and (is_leaf or not cert.self_signed):
        problems.append(f"{who} is signed with {cert.signature_hash}")
    return problems


def _fingerprint(cert: CertificateFacts) -> str:
    prefix = cert.fingerprint_sha256.replace(":", "").lower()[:16]
    return f"{describe(cert)} (sha256 {prefix}…)"
