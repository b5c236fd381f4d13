"""cert.revocation: is a served leaf revoked, per its CA's OCSP responder, its CRL, or the
OCSP response the server staples?

A revoked answer fails, whoever gave it. Our own trouble never fails: a responder we could
not reach, an answer we could not believe, an issuer we could not find all warn and say so.
A self-signed leaf is skipped, since no CA could revoke it (cert.trusted already fails it).
The summary holds no dates of answers nor cache state, so an unchanged rescan gives the same
text and the dashboard writes nothing; those are in the facts.
"""

from __future__ import annotations

from scanner._evaluate_certs import Chain, describe, per_chain
from scanner._evaluate_common import Context, Verdict, join_and
from scanner._facts import EndpointFacts, RevocationFacts, RevocationLookup

NO_INFORMATION = (
    "the CA publishes no revocation information (no OCSP responder, no CRL distribution point)"
)


def check_revocation(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Judge each leaf this address served by what was learnt of its revocation."""
    learnt = {facts.fingerprint_sha256: facts for facts in endpoint.revocation}

    def judge(chain: Chain) -> Verdict:
        leaf = chain[0]
        if leaf.self_signed:
            return "skip", f"{describe(leaf)} is self-signed: no CA can revoke it"
        facts = learnt.get(leaf.fingerprint_sha256)
        if facts is None:
            return "error", f"the revocation of {describe(leaf)} was not looked up"
        return judge_revocation(facts)

    return per_chain(endpoint, judge)


def judge_revocation(facts: RevocationFacts) -> Verdict:
    """The verdict on one leaf's revocation facts."""
    lookups = facts.lookups
    revoked = [lookup for lookup in lookups if lookup.status == "revoked"]
    if revoked:
        return "fail", _revoked(revoked)
    good = [lookup for lookup in lookups if lookup.status == "good"]
    if not good and facts.error:
        return "warn", f"could not check revocation: {facts.error}"
    if not good and not (facts.ocsp_urls or facts.crl_urls):
        return "warn", NO_INFORMATION
    unknown = [lookup for lookup in lookups if lookup.status == "unknown"]
    if unknown:
        return "warn", "; ".join(
            f"{_label(lookup)} does not know the certificate" for lookup in unknown
        )
    failed = [lookup for lookup in lookups if lookup.status == "error"]
    if not good:
        problems = "; ".join(f"{_label(lookup)}: {lookup.error}" for lookup in failed)
        return "warn", f"could not learn the revocation status: {problems}"
    summary = "not revoked per " + join_and(map(_label, good))
    if failed:
        summary += f" ({join_and(map(_label, failed))} gave no usable answer)"
    return "pass", summary


def _label(lookup: RevocationLookup) -> str:
    if lookup.method == "stapled":
        return "the OCSP response it stapled"
    return f"{'OCSP' if lookup.method == 'ocsp' else 'the CRL'} ({lookup.url})"


def _revoked(lookups: list[RevocationLookup]) -> str:
    """`revoked on 2026-12-04 (keyCompromise) per OCSP (…) and the CRL (…)`: the sources
    that agree on date and reason share one clause."""
    sayings: dict[str, list[str]] = {}
    for lookup in lookups:
        when = f" on {lookup.revoked_at:%Y-%m-%d}" if lookup.revoked_at else ""
        reason = f" ({lookup.reason})" if lookup.reason else ""
        sayings.setdefault(f"revoked{when}{reason}", []).append(_label(lookup))
    return "; ".join(f"{said} per {join_and(labels)}" for said, labels in sayings.items())
