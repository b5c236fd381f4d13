"""The TLS check of one address: tls.protocols, over every TLS entry point we reached."""

from __future__ import annotations

from collections.abc import Iterable

from scanner._evaluate_common import (
    VERSION_LABEL,
    Context,
    Verdict,
    combine,
    join_and,
    tls_sessions,
    undetermined_tls,
)
from scanner._facts import EndpointFacts, Status, TlsFacts
from scanner._target import TLS_VERSIONS, Policy

_MODERN_TLS = TLS_VERSIONS.index("TLSv1.2")


def check_tls_protocols(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Only versions at or above the policy minimum, and some TLS 1.2+, on every TLS endpoint.

    Versions the probe could not test (None) are mentioned, not failed; an entry point with
    nothing tested only makes the check an error when no entry point was tested at all.
    """
    sessions = tls_sessions(endpoint)
    if not sessions:
        reason = undetermined_tls(endpoint)
        if reason:
            return "error", reason
        return "skip", "no TLS session was established (implicit TLS or STLS) to check"
    parts = [(label, _protocol_verdict(tls, context.policy)) for label, tls in sessions]
    failed = _having("fail", parts)
    if failed:
        status, text = combine(failed)
        return status, f"{text} (policy minimum {VERSION_LABEL[context.policy.min_tls_version]})"
    tested = _having("pass", parts)
    if not tested:
        return combine(parts)
    status, text = combine(tested)
    untested = [label for label, _ in _having("error", parts)]
    if untested:
        text += f"; versions on {join_and(untested)} could not be tested"
    return status, text


def _having(status: Status, parts: list[tuple[str, Verdict]]) -> list[tuple[str, Verdict]]:
    return [part for part in parts if part[1][0] == status]


def _protocol_verdict(tls: TlsFacts, policy: Policy) -> Verdict:
    """One entry point's accepted versions (the negotiated one counts as accepted)."""
    accepted = {v for v, ok in tls.accepted_versions.items() if ok} | {_normal(tls.version)}
    ranked = sorted(TLS_VERSIONS.index(v) for v in accepted if v in TLS_VERSIONS)
    minimum = TLS_VERSIONS.index(policy.min_tls_version)
    below = [TLS_VERSIONS[i] for i in ranked if i < minimum]
    if below:
        return "fail", f"{_labels(below)} accepted"
    if not ranked or ranked[-1] < _MODERN_TLS:
        return "fail", "no TLS 1.2 or later accepted"
    names = _labels(TLS_VERSIONS[i] for i in ranked)
    if all(ok is None for ok in tls.accepted_versions.values()):
        return "error", f"could not test which versions are accepted (negotiated {names})"
    untested = [v for v, ok in tls.accepted_versions.items() if ok is None]
    note = f" ({_labels(untested)} could not be tested)" if untested else ""
    return "pass", f"only {names} accepted{note}"


def _normal(version: str) -> str:
    """ssl reports TLS 1.0 as 'TLSv1'; accept 'TLSv1.0' too."""
    return "TLSv1" if version == "TLSv1.0" else version


def _labels(versions: Iterable[str]) -> str:
    return ", ".join(VERSION_LABEL.get(v, v) for v in versions)
