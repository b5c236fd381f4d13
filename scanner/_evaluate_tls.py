"""The TLS checks of one address, judged by the policy's TLS profile over every TLS entry point
we reached: tls.protocols (which versions are accepted) and tls.ciphers (which suites)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from scanner._evaluate_common import (
    Context,
    Verdict,
    combine,
    join_and,
    tls_sessions,
    tls_supports,
    undetermined_tls,
)
from scanner._facts import EndpointFacts, TlsSupport
from scanner._profiles import TlsProfile
from scanner._suites import BY_NAME as SUITES_BY_NAME
from scanner._suites import PROTOCOL_LABEL, PROTOCOLS, WEAKNESSES, weaknesses_of

# Enough suites to show what is wrong; the facts list every one.
_SHOWN_SUITES = 3
_Judge = Callable[[TlsSupport, TlsProfile], Verdict]
SuitesByVersion = dict[str, list[str]]


def check_tls_protocols(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Only the versions the profile allows, and at least one of them, on every TLS entry
    point. A version we could not test is said, and keeps a clean result from passing."""
    return _judged_by_profile(endpoint, context, _protocol_verdict)


def check_tls_ciphers(endpoint: EndpointFacts, context: Context) -> Verdict:
    """No suite the profile forbids (and a DH prime of its minimum size at least), and, for a
    pass, none it does not recommend, on every TLS entry point."""
    return _judged_by_profile(endpoint, context, _cipher_verdict)


def _judged_by_profile(endpoint: EndpointFacts, context: Context, judge: _Judge) -> Verdict:
    """`judge` on every TLS entry point, merged, and the profile named."""
    profile = context.policy.profile
    parts = _per_entry_point(endpoint, lambda support: judge(support, profile))
    if isinstance(parts, tuple):
        return parts
    status, text = combine(parts)
    return status, f"{text} (profile {profile.title})"


def _per_entry_point(
    endpoint: EndpointFacts, judge: Callable[[TlsSupport], Verdict]
) -> list[tuple[str, Verdict]] | Verdict:
    """Each entry point's verdict, or the one verdict that says there was nothing to judge."""
    supports = tls_supports(endpoint)
    if not supports:
        reason = undetermined_tls(endpoint)
        if reason:
            return "error", reason
        if tls_sessions(endpoint):
            return "error", "what the TLS entry points accept was not tested"
        return "skip", "no TLS entry point (implicit TLS or STLS/STARTTLS) to check"
    return [(label, judge(support)) for label, support in supports]


def _protocol_verdict(support: TlsSupport, profile: TlsProfile) -> Verdict:
    versions, seen = support.accepted_versions, support.cipher_suites
    # A version whose listing broke off still accepted the suites it showed.
    accepted = [name for name in PROTOCOLS if versions.get(name) or seen.get(name)]
    untested = [
        name for name in PROTOCOLS if versions.get(name, False) is None and not seen.get(name)
    ]
    outside = [name for name in accepted if name not in profile.versions]
    if outside:
        return "fail", f"{_labels(outside)} accepted"
    if not untested and not any(name in profile.versions for name in accepted):
        return "fail", f"none of {_labels(profile.versions)} accepted"
    if untested:
        why = f": {support.error}" if support.error else ""
        return "error", f"could not test {_labels(untested)}{why}"
    return "pass", f"only {_labels(accepted)} accepted"


def _cipher_verdict(support: TlsSupport, profile: TlsProfile) -> Verdict:
    forbidden, discouraged = _grade_suites(support, profile)
    dh_bits = support.dh_bits
    weak_dh = dh_bits is not None and dh_bits < profile.min_dh_bits
    weak_groups = [group for group in support.groups if _group_too_small(group, profile)]
    if forbidden or weak_dh or weak_groups or support.compression:
        found = [f"{weakness} ({_suite_list(suites)})" for weakness, suites in forbidden.items()]
        if weak_dh:
            found.append(f"a {dh_bits}-bit DH prime (at least {profile.min_dh_bits} required)")
        if weak_groups:
            found.append(f"groups under the profile's minimum ({', '.join(weak_groups)})")
        if support.compression:
            found.append("TLS compression (CRIME)")
        return "fail", f"accepts {join_and(found)}, which the profile forbids"
    untested = [name for name, ok in support.accepted_versions.items() if ok is None]
    if untested:
        why = f": {support.error}" if support.error else ""
        return "error", f"could not list the suites of {_labels(untested)}{why}"
    if dh_bits is None and _accepts_dhe(support):
        why = f": {support.error}" if support.error else ""
        return "error", f"DHE suites are accepted but the size of their prime was not read{why}"
    if discouraged or support.secure_renegotiation is False:
        found = [f"{reason} ({_suite_list(suites)})" for reason, suites in discouraged.items()]
        if support.secure_renegotiation is False:
            found.append("renegotiation without RFC 5746's protection")
        return "warn", f"accepts {join_and(found)}, which the profile does not recommend"
    count = sum(len(names) for names in support.cipher_suites.values())
    if not count:
        return "fail", "accepts no cipher suite at all"
    return "pass", f"only suites the profile recommends are accepted ({count} in all)"


def _grade_suites(
    support: TlsSupport, profile: TlsProfile
) -> tuple[dict[str, SuitesByVersion], dict[str, SuitesByVersion]]:
    """The accepted suites by the weakness the profile forbids or discourages in them, each
    weakness in WEAKNESSES order with its suites and the versions accepting them."""
    forbidden: dict[str, SuitesByVersion] = {}
    discouraged: dict[str, SuitesByVersion] = {}
    unlisted = "suites outside its list"
    for protocol, names in support.cipher_suites.items():
        for name in names:
            weaknesses = weaknesses_of(name)
            for weakness in sorted(weaknesses & profile.forbidden, key=WEAKNESSES.index):
                forbidden.setdefault(weakness, {}).setdefault(name, []).append(protocol)
            reasons = sorted(weaknesses & profile.discouraged, key=WEAKNESSES.index)
            if not reasons and profile.recommended is not None and name not in profile.recommended:
                reasons = [unlisted]
            if not weaknesses & profile.forbidden:
                for reason in reasons:
                    discouraged.setdefault(reason, {}).setdefault(name, []).append(protocol)
    return forbidden, discouraged


def _group_too_small(group: str, profile: TlsProfile) -> bool:
    """A key exchange group under the profile's size: an elliptic curve under its EC minimum
    (x25519 counts as 256 bits, as everyone rates it), a finite field under its DH one."""
    digits = re.findall(r"\d+", group)
    if group == "x25519" or not digits:
        return False
    bits = int(digits[0])
    minimum = profile.min_dh_bits if group.startswith("ffdhe") else profile.min_ec_bits
    return bits < minimum


def _accepts_dhe(support: TlsSupport) -> bool:
    """Any accepted suite whose key exchange is ephemeral finite-field Diffie-Hellman."""
    return any(
        name in SUITES_BY_NAME and SUITES_BY_NAME[name].sends_dh_prime
        for names in support.cipher_suites.values()
        for name in names
    )


def _suite_list(suites: SuitesByVersion) -> str:
    """'TLS_RSA_WITH_RC4_128_SHA on TLS 1.0 and TLS 1.2, … and 2 more'."""
    shown = [f"{name} on {_labels(versions)}" for name, versions in suites.items()]
    more = len(shown) - _SHOWN_SUITES
    text = ", ".join(shown[:_SHOWN_SUITES])
    return f"{text} and {more} more" if more > 0 else text


def _labels(versions: Iterable[str]) -> str:
    return join_and([PROTOCOL_LABEL.get(version, version) for version in versions])
