"""What the check modules share: the verdict type, what a per-address check may read, and the
helpers that merge the verdicts of several TLS entry points into one sentence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from scanner._facts import (
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    Status,
    StlsFacts,
    TlsFacts,
    TlsSupport,
    worst_status,
)
from scanner._services import CLIENT_PROTOCOLS
from scanner._target import Policy, Target

Verdict = tuple[Status, str]


@dataclass(frozen=True)
class Context:
    """What every per-address check may read besides the endpoint's own facts."""

    target: Target
    policy: Policy
    now: datetime


@dataclass(frozen=True)
class TargetFacts:
    """What a target-level check reads: the name's DNS facts and every address's facts."""

    dns: DnsFacts
    endpoints: tuple[EndpointFacts, ...]


def join_and(items: Iterable[str]) -> str:
    """Join labels for a sentence: 'a', 'a and b', 'a, b and c'."""
    words = list(items)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _entry_points(endpoint: EndpointFacts) -> list[tuple[str, ImplicitTlsFacts | StlsFacts]]:
    """The address's TLS entry points of every declared protocol, labelled by how we reached
    them: `995`, `110 after STLS`, `993`, `143 after STARTTLS`, `465`, `587 after STARTTLS`."""
    entries: list[tuple[str, ImplicitTlsFacts | StlsFacts]] = []
    for protocol in CLIENT_PROTOCOLS:
        cleartext, implicit = endpoint.doors(protocol)
        if implicit is not None:
            entries.append((str(implicit.port), implicit))
        if cleartext is not None and cleartext.upgrade is not None:
            label = f"{cleartext.port} after {protocol.upgrade_command}"
            entries.append((label, cleartext.upgrade))
    return entries


def tls_sessions(endpoint: EndpointFacts) -> list[tuple[str, TlsFacts]]:
    """The TLS sessions we saw on this address, labelled by how we reached them."""
    return [(label, facts.tls) for label, facts in _entry_points(endpoint) if facts.tls]


def tls_supports(endpoint: EndpointFacts) -> list[tuple[str, TlsSupport]]:
    """What each TLS entry point of this address accepts, labelled like tls_sessions."""
    return [(label, facts.support) for label, facts in _entry_points(endpoint) if facts.support]


def combine(parts: list[tuple[str, Verdict]]) -> Verdict:
    """Merge per-entry-point verdicts: worst status, texts of the worst ones, grouped by text."""
    status = worst_status([verdict[0] for _, verdict in parts])
    groups: dict[str, list[str]] = {}
    for label, (part_status, text) in parts:
        if part_status == status:
            groups.setdefault(text, []).append(label)
    return status, "; ".join(f"{text} on {join_and(labels)}" for text, labels in groups.items())


# Outcomes that leave open whether a TLS entry point works: we could not find out.
_UNDETERMINED = ("timeout", "unreachable", "protocol_error")


def undetermined_tls(endpoint: EndpointFacts) -> str | None:
    """Why a TLS entry point of this address could not be judged, or None.

    With no TLS session, the TLS and certificate checks have nothing to judge. That is "not
    applicable" (skip) when the entry points answered definitively (closed, or no TLS), but
    "could not determine" (error) when one of them timed out or broke off: otherwise a server
    that stops answering would flip its certificate checks from pass to skip and back.
    """
    for label, facts in _entry_points(endpoint):
        if facts.outcome in _UNDETERMINED:
            return f"could not determine: {label} did not complete ({facts.error or facts.outcome})"
    return None
