"""Read a stored scan report (ScanRun.facts, the JSON of scanner._report) into what the server
page shows, and into flat key facts for comparing two scans.

Pure functions over dicts: no database, no Django. Every lookup tolerates a missing key,
because stored reports outlive the schema they were written with (new fields are only ever
added, see docs/json.md, but old runs lack them).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scanner import (
    CLIENT_PROTOCOLS,
    PROTOCOL_BY_NAME,
    PROTOCOL_LABEL,
    PROTOCOLS,
    ClientProtocol,
    NtlmChallenge,
    login_type_label,
    revocation_from_dict,
    revocation_lines,
    whole_days_left,
)

Json = dict[str, Any]


@dataclass(frozen=True)
class TlsEntry:
    """One TLS entry point of an address: a protocol's implicit-TLS port, or its cleartext port
    after STLS/STARTTLS (`protocol` is the protocol's heading). `version` and `cipher` are what
    a full handshake negotiated (None when none completed); the rest is what the entry point
    accepts (scanner's `support`; older reports have versions only)."""

    protocol: str
    label: str
    port: int | None
    version: str | None
    cipher: str | None
    accepted: list[tuple[str, bool | None]]
    suites: list[tuple[str, list[str]]]
    support: Json
    chain: list[Json]

    @property
    def leaf_fingerprint(self) -> str | None:
        return self.chain[0].get("fingerprint_sha256") if self.chain else None

    @property
    def enumerated_at(self) -> datetime | None:
        """When the suites were listed: an earlier scan's time when that list was reused."""
        text = self.support.get("measured_at")
        return datetime.fromisoformat(text) if text else None

    @property
    def versions(self) -> list[str]:
        """Whether each version of PROTOCOLS is accepted, in order, as a word: "accepted",
        "refused", "untested", or "" when the report does not say (an older one)."""
        found = {label: accepted for label, accepted in self.accepted}
        words = {True: "accepted", False: "refused", None: "untested"}
        return [
            words[found[label]] if label in found else ""
            for label in (PROTOCOL_LABEL[name] for name in PROTOCOLS)
        ]


# A cancelled SASL exchange is recorded under "*", the line that cancels it (RFC 4954, 3501).
_CANCEL = "*"


@dataclass(frozen=True)
class DoorFacts:
    """What one address said on one client protocol: its cleartext port (`cleartext`; the
    upgrade to TLS in `upgrade`) and its implicit-TLS port (`implicit`), as stored, with the
    TLS entry points that answered. `login_type` is Exchange's LoginType inferred for it
    (POP3's and IMAP4's)."""

    protocol: ClientProtocol
    cleartext: Json
    implicit: Json
    login_type: str | None

    @property
    def upgrade(self) -> Json | None:
        """STLS (POP3's facts call it `stls`) or STARTTLS."""
        return self.cleartext.get("stls") or self.cleartext.get("starttls")

    @functools.cached_property
    def tls(self) -> list[TlsEntry]:
        """The TLS entry points that answered: implicit TLS first, then the upgrade."""
        cleartext, implicit = self.cleartext, self.implicit
        command = self.protocol.upgrade_command
        entries = [
            (f"port {implicit.get('port')} (implicit TLS)", implicit.get("port"), implicit),
            (f"port {cleartext.get('port')} after {command}", cleartext.get("port"), self.upgrade),
        ]
        return [
            _tls_entry(self.protocol.label, label, port, facts)
            for label, port, facts in entries
            if facts and (facts.get("tls") or facts.get("support"))
        ]

    @property
    def login_probe(self) -> list[tuple[str, str]]:
        """What the login probe sent before TLS and what came back, as (sent, reply): POP3's
        USER and AUTH mechanisms, IMAP4's AUTHENTICATE or LOGIN, SMTP's AUTH, then a
        cancellation. Never a password: the probe sends none before TLS."""
        sent = [("USER", self.cleartext["user_reply"])] if self.cleartext.get("user_reply") else []
        replies = self.cleartext.get("auth_replies") or {}
        prefix = "AUTH " if self.protocol.name == "pop3" else ""
        for key in sorted(replies, key=lambda key: (key == _CANCEL, key)):
            words = "* (cancel)" if key == _CANCEL else f"{prefix}{key}"
            sent.append((words, replies[key]))
        return sent

    @property
    def goodbye(self) -> str | None:
        return self.cleartext.get("goodbye") or self.cleartext.get("quit_reply")

    @property
    def judged_login(self) -> bool:
        """Whether the report says if a password would be taken before TLS."""
        verdict = self.cleartext.get("plaintext_login", "unknown")
        return self.cleartext.get("outcome") == "ok" or verdict != "unknown"


@dataclass(frozen=True)
class NtlmView:
    """`AUTH NTLM` before TLS on one protocol of an address, and the names its challenge gave
    away, labelled as the scanner labels them."""

    protocol: str
    port: int | None
    outcome: str
    error: str | None
    disclosed: dict[str, str]


@dataclass(frozen=True)
class EndpointView:
    """What one address said, as the server page lists it: per client protocol probed (in
    CLIENT_PROTOCOLS order), and NTLM's disclosures."""

    address: str
    product: str | None
    login_type: str | None
    duration_ms: int
    doors: list[DoorFacts]
    ntlm: list[NtlmView]

    @property
    def login_type_label(self) -> str:
        return login_type_label(self.login_type, self.product)

    @property
    def tls(self) -> list[TlsEntry]:
        """Every TLS entry point that answered, protocol by protocol."""
        return [entry for door in self.doors for entry in door.tls]

    def door(self, protocol: str) -> DoorFacts | None:
        return next((door for door in self.doors if door.protocol.name == protocol), None)


def _tls_entry(protocol: str, label: str, port: int | None, facts: Json) -> TlsEntry:
    tls, support = facts.get("tls") or {}, facts.get("support") or {}
    versions = support.get("accepted_versions") or tls.get("accepted_versions") or {}
    suites = support.get("cipher_suites") or {}
    return TlsEntry(
        protocol=protocol,
        label=label,
        port=port,
        version=tls.get("version"),
        cipher=tls.get("cipher"),
        accepted=[(PROTOCOL_LABEL[name], versions[name]) for name in PROTOCOLS if name in versions],
        suites=[(PROTOCOL_LABEL[name], suites[name]) for name in PROTOCOLS if suites.get(name)],
        support=support,
        chain=tls.get("chain") or [],
    )


def _doors(endpoint: Json) -> list[DoorFacts]:
    """The protocols the address was probed on: those whose facts the report holds (a report
    older than IMAP4 and submission has POP3's alone)."""
    login_types = {"pop3": endpoint.get("login_type"), "imap": endpoint.get("imap_login_type")}
    doors = []
    for protocol in CLIENT_PROTOCOLS:
        cleartext = endpoint.get(protocol.name) or {}
        implicit = endpoint.get(protocol.implicit_tls_name) or {}
        if cleartext or implicit:
            login_type = login_types.get(protocol.name)
            doors.append(DoorFacts(protocol, cleartext, implicit, login_type))
    return doors


# The NTLM challenge's fields that are names (its clock is a time, not a disclosure).
_NTLM_NAMES = tuple(f.name for f in dataclasses.fields(NtlmChallenge) if f.name != "server_time")


def _ntlm(endpoint: Json) -> list[NtlmView]:
    views = []
    for ntlm in endpoint.get("ntlm") or []:
        protocol = PROTOCOL_BY_NAME.get(ntlm.get("protocol", ""))
        challenge = ntlm.get("challenge") or {}
        names = {name: challenge.get(name) for name in _NTLM_NAMES}
        disclosed = NtlmChallenge(**names).disclosed if challenge else {}
        label = protocol.label if protocol else str(ntlm.get("protocol"))
        outcome = ntlm.get("outcome", "?")
        views.append(NtlmView(label, ntlm.get("port"), outcome, ntlm.get("error"), disclosed))
    return views


def endpoints(facts: Json | None) -> list[EndpointView]:
    """One view per address probed, in the report's order."""
    return [
        EndpointView(
            address=endpoint.get("address", "?"),
            product=endpoint.get("product"),
            login_type=endpoint.get("login_type"),
            duration_ms=endpoint.get("duration_ms") or 0,
            doors=_doors(endpoint),
            ntlm=_ntlm(endpoint),
        )
        for endpoint in (facts or {}).get("endpoints") or []
    ]


@dataclass
class ChainView:
    """A certificate chain as served, leaf first, with every place it was served."""

    chain: list[Json]
    served_at: list[str] = field(default_factory=list)
    # What was learnt of the leaf's revocation, as (label, text) lines.
    revocation: list[tuple[str, str]] = field(default_factory=list)

    @property
    def leaf(self) -> Json:
        return self.chain[0]


def chains(facts: Json | None, now: datetime) -> list[ChainView]:
    """The distinct chains of a report (by leaf fingerprint), each certificate with its
    validity parsed and `days_left` counted from `now` (the report's own count is from the
    scan time)."""
    found: dict[str, ChainView] = {}
    for endpoint in (facts or {}).get("endpoints") or []:
        for entry in (entry for door in _doors(endpoint) for entry in door.tls):
            if not entry.chain:
                continue
            key = entry.leaf_fingerprint or ""
            if key not in found:
                found[key] = ChainView([_certificate(c, now) for c in entry.chain])
            where = f"{endpoint.get('address')} {entry.protocol} {entry.label}"
            found[key].served_at.append(where)
        for revocation in endpoint.get("revocation") or []:
            view = found.get(revocation.get("fingerprint_sha256", ""))
            if view is not None and not view.revocation:
                view.revocation = _revocation(revocation)
    return list(found.values())


def _revocation(data: Json) -> list[tuple[str, str]]:
    try:
        return revocation_lines(revocation_from_dict(data))
    except (KeyError, TypeError, ValueError):
        return [("Revocation", "stored in a form this version cannot read")]


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
    found = {f"{at} product": view.product or "?", f"{at} LoginType": view.login_type_label}
    for door in view.doors:
        found.update(_door_facts(at, door))
    for entry in view.tls:
        found[f"{at} {entry.label} TLS"] = f"{entry.version or '(none)'} {entry.cipher or ''}"
        accepted = [version for version, ok in entry.accepted if ok]
        found[f"{at} {entry.label} accepts"] = ", ".join(accepted) or "(none)"
        for version, names in entry.suites:
            found[f"{at} {entry.label} {version} suites"] = ", ".join(names)
        found[f"{at} {entry.label} certificate"] = (entry.leaf_fingerprint or "(none)")[:16]
    for ntlm in view.ntlm:
        names = ", ".join(f"{what} {name}" for what, name in ntlm.disclosed.items())
        outcome = f"{ntlm.outcome} ({ntlm.error})" if ntlm.error else ntlm.outcome
        found[f"{at} NTLM on {ntlm.protocol}"] = names or outcome
    return found


def _door_facts(address: str, door: DoorFacts) -> dict[str, str]:
    """A protocol's facts worth comparing. Not its greeting: SMTP servers put the time in it,
    and the product, compared above, is what a changed greeting would tell."""
    at = f"{address} {door.protocol.label}"
    command = door.protocol.upgrade_command
    upgrade = door.upgrade or {}
    found = {
        f"{at} port": _outcome(door.cleartext),
        f"{at} plaintext login": str(door.cleartext.get("plaintext_login", "?")),
        f"{at} capabilities before {command}": _list(door.cleartext.get("capabilities")),
        f"{at} {command}": _outcome(upgrade),
        f"{at} capabilities after {command}": _list(upgrade.get("capabilities")),
        f"{address} {door.protocol.implicit_tls_label} port": _outcome(door.implicit),
    }
    if door.protocol.name != "pop3" and door.login_type:
        found[f"{at} LoginType"] = door.login_type
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
