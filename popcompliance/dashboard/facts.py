"""Read a stored scan report (ScanRun.facts, the JSON of scanner._report) into what the server
page shows, and into flat key facts for comparing two scans.

Pure functions over dicts: no database, no Django. Every lookup tolerates a missing key,
because stored reports outlive the schema they were written with (new fields are only ever
added, see docs/json.md, but old runs lack them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scanner import PROTOCOL_LABEL, PROTOCOLS, login_type_label, whole_days_left

Json = dict[str, Any]


@dataclass(frozen=True)
class TlsEntry:
    """One TLS entry point of an address: implicit TLS on the POP3S port, or STLS. `version`
    and `cipher` are what a full handshake negotiated (None when none completed); the rest is
    what the entry point accepts (scanner's `support`; older reports have versions only)."""

    label: str
    port: int | None
    version: str | None
    cipher: str | None
    accepted: list[tuple[str, bool | None]]
    suites: list[tuple[str, list[str]]]
    support: Json
    leaf_fingerprint: str | None

    @property
    def enumerated_at(self) -> datetime | None:
        """When the suites were listed: an earlier scan's time when that list was reused."""
        text = self.support.get("measured_at")
        return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class EndpointView:
    """What one address said, as the server page lists it."""

    address: str
    product: str | None
    login_type: str | None
    duration_ms: int
    pop3: Json
    pop3s: Json
    stls: Json | None
    tls: list[TlsEntry]

    @property
    def login_type_label(self) -> str:
        return login_type_label(self.login_type, self.product)

    @property
    def banner(self) -> str | None:
        return self.pop3.get("greeting") or self.pop3s.get("greeting")

    @property
    def capa_before(self) -> list[str] | None:
        return self.pop3.get("capabilities")

    @property
    def capa_after(self) -> list[str] | None:
        return (self.stls or {}).get("capabilities")


def _tls_entries(endpoint: Json) -> list[tuple[str, int | None, Json, Json]]:
    """(label, port, session, support) for each TLS entry point the address answered on."""
    pop3, pop3s = endpoint.get("pop3") or {}, endpoint.get("pop3s") or {}
    stls = pop3.get("stls") or {}
    entries = [
        (f"port {pop3s.get('port')} (implicit TLS)", pop3s.get("port"), pop3s),
        (f"port {pop3.get('port')} after STLS", pop3.get("port"), stls),
    ]
    return [
        (label, port, facts.get("tls") or {}, facts.get("support") or {})
        for label, port, facts in entries
        if facts.get("tls") or facts.get("support")
    ]


def _tls_entry(label: str, port: int | None, tls: Json, support: Json) -> TlsEntry:
    chain = tls.get("chain") or []
    versions = support.get("accepted_versions") or tls.get("accepted_versions") or {}
    suites = support.get("cipher_suites") or {}
    return TlsEntry(
        label=label,
        port=port,
        version=tls.get("version"),
        cipher=tls.get("cipher"),
        accepted=[(PROTOCOL_LABEL[name], versions[name]) for name in PROTOCOLS if name in versions],
        suites=[(PROTOCOL_LABEL[name], suites[name]) for name in PROTOCOLS if suites.get(name)],
        support=support,
        leaf_fingerprint=chain[0].get("fingerprint_sha256") if chain else None,
    )


def endpoints(facts: Json | None) -> list[EndpointView]:
    """One view per address probed, in the report's order."""
    views = []
    for endpoint in (facts or {}).get("endpoints") or []:
        pop3 = endpoint.get("pop3") or {}
        views.append(
            EndpointView(
                address=endpoint.get("address", "?"),
                product=endpoint.get("product"),
                login_type=endpoint.get("login_type"),
                duration_ms=endpoint.get("duration_ms") or 0,
                pop3=pop3,
                pop3s=endpoint.get("pop3s") or {},
                stls=pop3.get("stls"),
                tls=[_tls_entry(*entry) for entry in _tls_entries(endpoint)],
            )
        )
    return views


@dataclass
class ChainView:
    """A certificate chain as served, leaf first, with every place it was served."""

    chain: list[Json]
    served_at: list[str] = field(default_factory=list)

    @property
    def leaf(self) -> Json:
        return self.chain[0]


def chains(facts: Json | None, now: datetime) -> list[ChainView]:
    """The distinct chains of a report (by leaf fingerprint), each certificate with its
    validity parsed and `days_left` counted from `now` (the report's own count is from the
    scan time)."""
    found: dict[str, ChainView] = {}
    for endpoint in (facts or {}).get("endpoints") or []:
        for label, _, tls, _ in _tls_entries(endpoint):
            chain = tls.get("chain") or []
            if not chain:
                continue
            key = chain[0].get("fingerprint_sha256", "")
            if key not in found:
                found[key] = ChainView([_certificate(c, now) for c in chain])
            found[key].served_at.append(f"{endpoint.get('address')} {label}")
    return list(found.values())


def _certificate(certificate: Json, now: datetime) -> Json:
    shown = dict(certificate)
    for name in ("not_before", "not_after"):
        shown[name] = parse_time(certificate.get(name))
    if shown["not_after"] is not None:
        shown["days_left"] = whole_days_left(shown["not_after"], now)
    return shown


def parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def check_statuses(facts: Json | None) -> dict[str, Json]:
    """The report's verdicts by check id (worst over addresses)."""
    return {check["id"]: check for check in (facts or {}).get("checks") or [] if "id" in check}


def key_facts(facts: Json | None) -> dict[str, str]:
    """The facts worth comparing between two scans, flattened to `label: text`."""
    facts = facts or {}
    found = {"Addresses": ", ".join(facts.get("addresses") or []) or "(none)"}
    dns = facts.get("dns") or {}
    found["DNS"] = dns.get("outcome") or "?"
    found["SRV _pop3s._tcp"] = _srv(dns.get("srv_pop3s"))
    found["SRV _pop3._tcp"] = _srv(dns.get("srv_pop3"))
    for view in endpoints(facts):
        found.update(_endpoint_facts(view))
    return found


def _endpoint_facts(view: EndpointView) -> dict[str, str]:
    at = view.address
    found = {
        f"{at} product": view.product or "?",
        f"{at} LoginType": view.login_type_label,
        f"{at} banner": view.banner or "(none)",
        f"{at} POP3 port": _outcome(view.pop3),
        f"{at} plaintext login": str(view.pop3.get("plaintext_login", "?")),
        f"{at} CAPA before STLS": _list(view.capa_before),
        f"{at} STLS": _outcome(view.stls or {}),
        f"{at} CAPA after STLS": _list(view.capa_after),
        f"{at} POP3S port": _outcome(view.pop3s),
    }
    for entry in view.tls:
        found[f"{at} {entry.label} TLS"] = f"{entry.version or '(none)'} {entry.cipher or ''}"
        accepted = [version for version, ok in entry.accepted if ok]
        found[f"{at} {entry.label} accepts"] = ", ".join(accepted) or "(none)"
        for version, names in entry.suites:
            found[f"{at} {entry.label} {version} suites"] = ", ".join(names)
        found[f"{at} {entry.label} certificate"] = (entry.leaf_fingerprint or "(none)")[:16]
    return found


def _outcome(connection: Json) -> str:
    if not connection:
        return "not probed"
    outcome, error = connection.get("outcome", "?"), connection.get("error")
    return f"{outcome} ({error})" if error else outcome


def _list(values: list[str] | None) -> str:
    return "(not read)" if values is None else ", ".join(values) or "(empty)"


def _srv(records: list[Json] | None) -> str:
    if records is None:
        return "(not looked up)"
    return "; ".join(f"{r.get('port')} {r.get('target')}" for r in records) or "(none)"
