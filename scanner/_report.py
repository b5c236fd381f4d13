"""Turn ScanReports into what people and programs read: the JSON object
(schema in docs/json.md) and a plain-text operator report.

The JSON is a generic walk over the fact dataclasses, so a field added to a fact shows up in
the output without touching this module; only the top level and a few derived values
(`ports`, `addresses`, a certificate's `days_left`) are written by hand.
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime
from typing import Any

from scanner._certs import whole_days_left
from scanner._errors import escape_controls, quote_reply
from scanner._evidence import evidence_ids
from scanner._facts import (
    CertificateFacts,
    CheckResult,
    CleartextFacts,
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    NtlmFacts,
    Pop3Facts,
    RevocationFacts,
    RevocationLookup,
    ScanReport,
    SrvRecord,
    StlsFacts,
    TlsFacts,
    TlsLoginFacts,
    TlsSupport,
)
from scanner._services import CLIENT_PROTOCOLS, PROTOCOL_BY_NAME, ClientProtocol
from scanner._suites import PROTOCOL_LABEL, PROTOCOLS
from scanner._target import Credentials, Target

JsonObject = dict[str, Any]


def report_to_dict(report: ScanReport) -> JsonObject:
    """The JSON object for one target. Keys come in a fixed order, so equal reports serialise
    to equal text; `days_left` is counted from `started_at`, so it says what the scan saw."""
    target = report.target
    convert = _Converter(report.started_at)
    transcripts = _transcripts(report, convert)
    return {
        "target": target.host,
        "service_name": target.service_name,
        "protocols": list(target.protocols),
        "ports": _ports(target),
        "compliant": report.compliant,
        "started_at": iso_utc(report.started_at),
        "duration_ms": report.duration_ms,
        "failure": report.failure,
        "addresses": list(report.addresses),
        "checks": _with_evidence(convert(report.checks), transcripts),
        "address_checks": convert(report.address_checks),
        "dns": convert(report.dns),
        "endpoints": convert(report.endpoints),
        "transcripts": transcripts,
    }


def _transcripts(report: ScanReport, convert: _Converter) -> JsonObject:
    """Every probe connection's conversation, by id (unique in the report), in id order."""
    found = [transcript for endpoint in report.endpoints for transcript in endpoint.transcripts]
    return {
        transcript.id: {key: value for key, value in convert(transcript).items() if key != "id"}
        for transcript in sorted(found, key=lambda transcript: transcript.id)
    }


def _with_evidence(checks: list[JsonObject], transcripts: JsonObject) -> list[JsonObject]:
    """Each check with `evidence`: the ids of the transcripts it rests on. Not the per-address
    results behind them: their ids would double what evidence costs in stored facts, and
    evidence_for reads any address's evidence by the same rules."""
    for check in checks:
        check["evidence"] = evidence_ids(check["id"], check["address"], transcripts)
    return checks


def _ports(target: Target) -> dict[str, int]:
    """Every port of the target by door name (pop3, pop3s, imap, imaps, …), declared or not."""
    ports: dict[str, int] = {}
    for protocol in CLIENT_PROTOCOLS:
        ports[protocol.name], ports[protocol.implicit_tls_name] = target.ports(protocol)
    return ports


def support_from_dict(data: JsonObject) -> TlsSupport:
    """A TlsSupport back from its JSON (what report_to_dict wrote), to be reused by a later
    scan. Raises ValueError (or KeyError, TypeError, AttributeError) for JSON that is not one."""
    measured_at = data.get("measured_at")
    return TlsSupport(
        accepted_versions=dict(data["accepted_versions"]),
        cipher_suites={version: tuple(names) for version, names in data["cipher_suites"].items()},
        server_order=data.get("server_order"),
        groups=tuple(data.get("groups") or ()),
        dh_bits=data.get("dh_bits"),
        compression=data.get("compression"),
        secure_renegotiation=data.get("secure_renegotiation"),
        error=data.get("error"),
        hellos=data.get("hellos") or 0,
        duration_ms=data.get("duration_ms") or 0,
        measured_at=datetime.fromisoformat(measured_at) if measured_at else None,
        negotiated=data.get("negotiated"),
        answers_long_hellos=bool(data.get("answers_long_hellos")),
    )


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second. Naive values are taken as UTC, which is what
    the facts promise to hold."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Converter:
    """Walks fact values into JSON-ready ones; remembers the scan time for `days_left`."""

    def __init__(self, scanned_at: datetime) -> None:
        self.scanned_at = scanned_at

    def __call__(self, value: object) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, datetime):
            return iso_utc(value)
        if isinstance(value, tuple | list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            # Sorted, so the output does not depend on the order a probe filled the dict in.
            return {str(key): self(value[key]) for key in sorted(value)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._dataclass(value)
        raise TypeError(f"cannot convert {type(value).__name__} to JSON")

    def _dataclass(self, value: Any) -> JsonObject:
        result = {f.name: self(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, EndpointFacts):
            # The report lists them once, at its top level, by id.
            del result["transcripts"]
        if isinstance(value, CertificateFacts):
            result["days_left"] = whole_days_left(value.not_after, self.scanned_at)
        if isinstance(value, ImplicitTlsFacts | StlsFacts) and value.tls and value.support:
            # Where readers of earlier versions find them: the session's own TLS object.
            for key in ("accepted_versions", "cipher_suites"):
                result["tls"][key] = result["support"][key]
        return result


# --- Text report -------------------------------------------------------------------------

_ANSI = {"pass": "32", "warn": "33", "fail": "31", "error": "35", "skip": "2"}
_COMPLIANT_WORD = {True: ("YES", "pass"), False: ("NO", "fail"), None: ("UNKNOWN", "error")}
# Values start in this column whatever the nesting, so the eye can run down one edge.
_VALUE_COLUMN = 32
# Remediation is wrapped to this width: long one-line advice is unreadable in a terminal.
_WIDTH = 100
_REPLY_LIMIT = 300


def render_text(reports: list[ScanReport], *, colour: bool) -> str:
    """The readable report: per target a header, the checks (status always as a word, coloured
    only when `colour`), remediation for what fails or warns, then the facts per address."""
    return "\n\n".join(_render_report(report, colour) for report in reports) + "\n"


def _paint(word: str, status: str, colour: bool) -> str:
    return f"\x1b[{_ANSI[status]}m{word}\x1b[0m" if colour else word


def _safe(text: str) -> str:
    """Escape control characters. Banners, replies, certificate names and summaries come from
    the server; escaping them means a hostile server cannot move the cursor or recolour the
    report on the operator's terminal."""
    return escape_controls(text)


def _reply(text: str | None) -> str | None:
    """A server reply, trimmed so one chatty server cannot flood the report."""
    return None if text is None else quote_reply(text, _REPLY_LIMIT)


class _Lines:
    """Collects indented lines; every line is made safe unless it was built from safe parts
    to carry colour."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, depth: int, text: str, *, painted: bool = False) -> None:
        self.lines.append("  " * depth + (text if painted else _safe(text)))

    def field(self, depth: int, label: str, value: object, *, painted: bool = False) -> None:
        """`Label: value`, aligned; a None value means the fact is absent and is left out."""
        if value is None:
            return
        label = f"{'  ' * depth}{_safe(label)}:".ljust(_VALUE_COLUMN - 1)
        self.add(0, f"{label} {value if painted else _safe(str(value))}", painted=True)


def _render_report(report: ScanReport, colour: bool) -> str:
    out = _Lines()
    _render_header(out, report, colour)
    _render_checks(out, report.checks, colour)
    for endpoint in report.endpoints:
        _render_endpoint(out, report, endpoint, colour)
    _render_dns(out, report.dns)
    out.add(0, "")
    out.field(0, "Duration", f"{report.duration_ms} ms")
    return "\n".join(out.lines)


def _render_header(out: _Lines, report: ScanReport, colour: bool) -> None:
    target = report.target
    out.add(0, f"=== {target.host} ===")
    out.field(0, "Service name", target.service_name or "(none: IP address without --name)")
    ports = [
        f"{protocol.label} {cleartext} and {implicit}"
        for protocol in CLIENT_PROTOCOLS
        if target.declares(protocol.name)
        for cleartext, implicit in [target.ports(protocol)]
    ]
    out.field(0, "Ports", "; ".join(ports))
    out.field(0, "Addresses", ", ".join(report.addresses) or "(none)")
    word, status = _COMPLIANT_WORD[report.compliant]
    out.field(0, "Compliant", _paint(word, status, colour), painted=True)
    out.field(0, "Scan failed", report.failure)
    out.field(0, "Started", iso_utc(report.started_at))


def _render_checks(out: _Lines, checks: tuple[CheckResult, ...], colour: bool) -> None:
    out.add(0, "")
    out.add(0, "Checks:")
    id_width = max((len(check.id) for check in checks), default=0)
    indent = " " * (len("ERROR ") + id_width + 2)
    width = max(40, _WIDTH - len(indent) - len("  Fix: "))
    for check in checks:
        # Pad outside the colour codes so the columns line up either way.
        pad = " " * (len("ERROR ") - len(check.status))
        word = _paint(check.status.upper(), check.status, colour) + pad
        text = _safe(f"{check.id:<{id_width}}  {check.summary}")
        out.add(1, word + text, painted=True)
        # Remediation changes a configuration we saw. For `error` we saw nothing to change, and
        # repeating every check's advice after one timeout buries the real message.
        if check.status not in ("fail", "warn"):
            continue
        for number, line in enumerate(_wrap(check.remediation, width)):
            out.add(1, indent + ("Fix: " if number == 0 else "     ") + line)


def _wrap(text: str, width: int) -> list[str]:
    """Wrap each line of `text`, never inside a word or at a hyphen, so shell commands and
    parameter names such as `-LoginType` stay whole and can be copied."""
    wrap = textwrap.TextWrapper(width, break_long_words=False, break_on_hyphens=False)
    return [part for line in text.splitlines() for part in wrap.wrap(line) or [""]]


def _render_endpoint(
    out: _Lines, report: ScanReport, endpoint: EndpointFacts, colour: bool
) -> None:
    out.add(0, "")
    out.add(0, f"Address {endpoint.address} ({endpoint.duration_ms} ms):")
    if len(report.endpoints) > 1:
        problems = [
            f"{_paint(c.status.upper(), c.status, colour)} {_safe(c.id)}"
            for c in report.address_checks
            if c.address == endpoint.address and c.status not in ("pass", "skip")
        ]
        out.field(1, "Problems here", ", ".join(problems) or "none", painted=True)
    out.field(1, "Product", endpoint.product)
    out.field(1, "LoginType (inferred)", endpoint.login_type)
    out.field(1, "IMAP4 LoginType (inferred)", endpoint.imap_login_type)
    certificates = _Certificates(report.started_at)
    if endpoint.pop3 is not None:
        _render_pop3(out, endpoint.pop3, certificates)
    for protocol in CLIENT_PROTOCOLS:
        cleartext, implicit = endpoint.doors(protocol)
        if isinstance(cleartext, CleartextFacts):
            _render_cleartext(out, protocol, cleartext, certificates)
        if implicit is not None:
            _render_implicit_tls(out, protocol, implicit, certificates)
    _render_tls_login(out, endpoint.tls_login, report.target.credentials)
    for ntlm in endpoint.ntlm:
        _render_ntlm(out, ntlm)
    for revocation in endpoint.revocation:
        _render_revocation(out, revocation)


def _outcome(outcome: str, error: str | None) -> str:
    return outcome if error is None else f"{outcome} ({_reply(error)})"


def _capabilities(capabilities: tuple[str, ...] | None) -> str | None:
    if capabilities is None:
        return None
    return ", ".join(str(_reply(c)) for c in capabilities) or "(empty)"


def _render_pop3(out: _Lines, pop3: Pop3Facts, certificates: _Certificates) -> None:
    out.field(1, f"POP3 port {pop3.port}", _outcome(pop3.outcome, pop3.error))
    out.field(2, "Greeting", _reply(pop3.greeting))
    out.field(2, "CAPA before STLS", _capabilities(pop3.capabilities))
    out.field(2, "USER reply", _reply(pop3.user_reply))
    for mechanism, reply in sorted(pop3.auth_replies.items()):
        out.field(2, f"AUTH {mechanism} reply", _reply(reply))
    if pop3.outcome == "ok" or pop3.plaintext_login != "unknown":
        login = f"{pop3.plaintext_login} (certainty: {pop3.certainty})"
        out.field(2, "Plaintext login", login)
    out.field(2, "Evidence", _reply(pop3.evidence))
    out.field(2, "QUIT reply", _reply(pop3.quit_reply))
    if pop3.stls is not None:
        out.field(2, "STLS", _outcome(pop3.stls.outcome, pop3.stls.error))
        out.field(3, "STLS reply", _reply(pop3.stls.reply))
        if pop3.stls.tls is not None:
            _render_tls(out, 3, pop3.stls.tls, certificates)
        _render_support(out, 3, pop3.stls.support)
        out.field(3, "CAPA after STLS", _capabilities(pop3.stls.capabilities))


def _render_cleartext(
    out: _Lines, protocol: ClientProtocol, facts: CleartextFacts, certificates: _Certificates
) -> None:
    command = protocol.upgrade_command
    out.field(1, f"{protocol.label} port {facts.port}", _outcome(facts.outcome, facts.error))
    out.field(2, "Greeting", _reply(facts.greeting))
    out.field(2, f"Capabilities before {command}", _capabilities(facts.capabilities))
    for sent, reply in sorted(facts.auth_replies.items()):
        out.field(2, f"{sent} reply", _reply(reply))
    if facts.outcome == "ok" or facts.plaintext_login != "unknown":
        out.field(2, "Plaintext login", f"{facts.plaintext_login} (certainty: {facts.certainty})")
    out.field(2, "Evidence", _reply(facts.evidence))
    out.field(2, "Goodbye", _reply(facts.goodbye))
    upgrade = facts.starttls
    if upgrade is not None:
        out.field(2, command, _outcome(upgrade.outcome, upgrade.error))
        out.field(3, f"{command} reply", _reply(upgrade.reply))
        if upgrade.tls is not None:
            _render_tls(out, 3, upgrade.tls, certificates)
        _render_support(out, 3, upgrade.support)
        out.field(3, f"Capabilities after {command}", _capabilities(upgrade.capabilities))


def _render_implicit_tls(
    out: _Lines, protocol: ClientProtocol, facts: ImplicitTlsFacts, certificates: _Certificates
) -> None:
    out.field(
        1, f"{protocol.implicit_tls_label} port {facts.port}", _outcome(facts.outcome, facts.error)
    )
    out.field(2, "Cleartext reply", _reply(facts.plaintext_reply))
    if facts.tls is not None:
        _render_tls(out, 2, facts.tls, certificates)
    _render_support(out, 2, facts.support)
    out.field(2, "Greeting", _reply(facts.greeting))


def _render_ntlm(out: _Lines, ntlm: NtlmFacts) -> None:
    label = PROTOCOL_BY_NAME[ntlm.protocol].label
    out.field(1, f"NTLM challenge on {label} port {ntlm.port}", _outcome(ntlm.outcome, ntlm.error))
    if ntlm.challenge is not None:
        for what, value in ntlm.challenge.disclosed.items():
            out.field(2, what, _reply(value))


def _render_revocation(out: _Lines, revocation: RevocationFacts) -> None:
    """What the CA said of one leaf (named by the start of its fingerprint), source by source."""
    leaf = revocation.fingerprint_sha256.replace(":", "").lower()[:16]
    out.add(1, f"Revocation of sha256 {leaf}…:")
    for label, text in revocation_lines(revocation):
        out.field(2, label, text)


def revocation_lines(revocation: RevocationFacts) -> list[tuple[str, str]]:
    """What was learnt of one leaf's revocation as (label, text) lines, source by source: for
    the text report and the dashboard's server page."""
    lines = [("Not asked", revocation.error)] if revocation.error else []
    if not (revocation.ocsp_urls or revocation.crl_urls):
        lines.append(("Published", "no OCSP responder, no CRL distribution point"))
    for lookup in revocation.lookups:
        lines.append((f"{_LOOKUP_WORDS[lookup.method]} {lookup.url}", _lookup_text(lookup)))
    lines += [(f"Stapling on {port}", fact) for port, fact in sorted(revocation.stapled.items())]
    return lines


def revocation_from_dict(data: JsonObject) -> RevocationFacts:
    """RevocationFacts back from its JSON (what report_to_dict wrote). Raises KeyError,
    TypeError or ValueError for JSON that is not one."""
    times = ("this_update", "next_update", "revoked_at")
    lookups = tuple(
        RevocationLookup(**(lookup | {t: _time(lookup.get(t)) for t in times}))
        for lookup in data.get("lookups") or ()
    )
    return RevocationFacts(
        data["fingerprint_sha256"],
        ocsp_urls=tuple(data.get("ocsp_urls") or ()),
        crl_urls=tuple(data.get("crl_urls") or ()),
        issuer=data.get("issuer"),
        lookups=lookups,
        stapled=dict(data.get("stapled") or {}),
        error=data.get("error"),
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_LOOKUP_WORDS = {"ocsp": "OCSP", "crl": "CRL", "stapled": "Stapled on"}


def _lookup_text(lookup: RevocationLookup) -> str:
    if lookup.status == "error":
        return f"no usable answer ({_reply(lookup.error)})"
    text: str = lookup.status
    if lookup.revoked_at is not None:
        text += f" on {iso_utc(lookup.revoked_at)}" + (
            f" ({lookup.reason})" if lookup.reason else ""
        )
    if lookup.next_update is not None:
        text += f", next update {iso_utc(lookup.next_update)}"
    return text + (", kept from an earlier lookup" if lookup.cached else "")


_ENTRY_WORDS = {"pop3s": "POP3S", "stls": "STLS"}


def _render_tls_login(
    out: _Lines, login: TlsLoginFacts | None, credentials: Credentials | None
) -> None:
    """The monitoring login: as whom, where, how, and what the server said (never the
    password). Shown only when credentials were given."""
    if credentials is None:
        return
    if login is None:
        out.field(1, "Login over TLS", "not attempted (no TLS entry point worked)")
        return
    how = ", ".join(filter(None, (_ENTRY_WORDS[login.entry], login.mechanism)))
    if login.withheld is not None:
        result = f"password not sent ({login.withheld})"
    elif login.accepted is None:
        result = _outcome(login.outcome, login.error)
    else:
        result = "accepted" if login.accepted else "rejected"
    out.field(1, f"Login over TLS as {credentials.username}", f"{result} via {how}")
    out.field(2, "Login reply", _reply(login.reply))


def _render_tls(out: _Lines, depth: int, tls: TlsFacts, certificates: _Certificates) -> None:
    out.field(depth, "TLS", f"{tls.version}, {tls.cipher}")
    if tls.leaf is not None:
        certificates.render(out, depth, tls.chain)


def _render_support(out: _Lines, depth: int, support: TlsSupport | None) -> None:
    """What the entry point accepts: versions, then each version's suites in the server's
    order, then the parameters."""
    if support is None:
        return
    versions = support.accepted_versions
    accepted = ", ".join(
        f"{PROTOCOL_LABEL[name]} {_YES_NO[versions[name]]}"
        for name in PROTOCOLS
        if name in versions
    )
    out.field(depth, "Accepted versions", accepted or None)
    for name, suites in support.cipher_suites.items():
        out.field(depth + 1, f"{PROTOCOL_LABEL[name]} suites", ", ".join(suites))
    order = {True: "the server's", False: "the client's", None: "unknown"}[support.server_order]
    out.field(depth + 1, "Suite order", order)
    out.field(depth + 1, "Groups", ", ".join(support.groups) or None)
    out.field(depth + 1, "DH prime", f"{support.dh_bits} bits" if support.dh_bits else None)
    out.field(depth + 1, "Compression", _YES_NO[support.compression])
    out.field(depth + 1, "Secure renegotiation", _YES_NO[support.secure_renegotiation])
    out.field(depth + 1, "Enumeration problem", support.error)


_YES_NO = {True: "yes", False: "no", None: "untested"}


class _Certificates:
    """Renders certificates for one address. A certificate already shown there (STLS and
    port 995 usually serve the same one) is named by fingerprint instead of repeated."""

    def __init__(self, scanned_at: datetime) -> None:
        self.scanned_at = scanned_at
        self.shown: set[str] = set()

    def render(self, out: _Lines, depth: int, chain: tuple[CertificateFacts, ...]) -> None:
        leaf = chain[0]
        if leaf.fingerprint_sha256 in self.shown:
            out.field(depth, "Certificate", f"same as above ({leaf.subject})")
            return
        self.shown.add(leaf.fingerprint_sha256)
        _render_certificate(out, depth, chain, self.scanned_at)


def _render_certificate(
    out: _Lines, depth: int, chain: tuple[CertificateFacts, ...], scanned_at: datetime
) -> None:
    leaf = chain[0]
    names = [f"DNS:{name}" for name in leaf.dns_names] + [f"IP:{ip}" for ip in leaf.ip_addresses]
    validity = f"{iso_utc(leaf.not_before)} to {iso_utc(leaf.not_after)}"
    out.field(depth, "Certificate subject", leaf.subject)
    out.field(depth + 1, "Issuer", leaf.issuer)
    out.field(depth + 1, "SANs", ", ".join(names) or "(none)")
    left = whole_days_left(leaf.not_after, scanned_at)
    out.field(depth + 1, "Valid", f"{validity} ({left} days left)")
    out.field(depth + 1, "Key", f"{leaf.key_type} {leaf.key_bits} bits")
    out.field(depth + 1, "Signature hash", leaf.signature_hash or "unknown")
    out.field(depth + 1, "SHA-256 fingerprint", leaf.fingerprint_sha256)
    out.field(depth + 1, "Serial", leaf.serial)
    out.field(depth + 1, "Self-signed", "yes" if leaf.self_signed else None)
    out.field(depth + 1, "Chain as served", " <- ".join(c.subject for c in chain))


def _render_dns(out: _Lines, dns: DnsFacts) -> None:
    out.add(0, "")
    if dns.outcome == "not_applicable":
        out.field(0, "DNS", "not applicable (IP address without a service name)")
        return
    out.field(0, f"DNS {dns.name}", _outcome(dns.outcome, dns.error))
    out.field(1, "Addresses", ", ".join(dns.addresses) or "(none)")
    if dns.srv_domain is not None:
        out.field(1, "SRV domain (RFC 6186)", dns.srv_domain)
        for door in SRV_DOORS:
            records = getattr(dns, f"srv_{door}")
            if records is not None or dns.srv_error is not None:
                out.field(2, f"_{door}._tcp", _srv_text(records, dns.srv_error))


# Every door's SRV record, in the order the protocols are listed.
SRV_DOORS = tuple(
    door for protocol in CLIENT_PROTOCOLS for door in (protocol.implicit_tls_name, protocol.name)
)


def _srv_text(records: tuple[SrvRecord, ...] | None, error: str | None) -> str:
    if records is None:
        return f"lookup failed ({error or 'unknown error'})"
    shown = [f"{r.priority} {r.weight} {r.port} {r.target}" for r in records]
    return "; ".join(shown) or "(none)"
