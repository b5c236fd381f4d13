"""Which conversations each check rests on, and the one accessor that reads them back.

A scan's JSON report keeps every probe connection's conversation under `transcripts` (by id;
scanner._transcript records them), and each check names the ids it rests on in `evidence`.
Both come from the rules here, so they cannot disagree: a protocol's checks rest on that
protocol's connections of one purpose (`pop3.plaintext_login` on POP3's login probe,
`imap.starttls` on IMAP's upgrade, `submissions.available` on 465's implicit TLS,
`pop3.tls_login` on the monitoring login), `auth.*` on the NTLM exchanges, `tls.*` and `cert.*`
on the TLS handshakes (their handshake lines only), `dns.*` on none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanner._services import CLIENT_PROTOCOLS, PROTOCOL_BY_NAME, ClientProtocol
from scanner._transcript import HANDSHAKE, NOTE, RECEIVED, SENT

Json = Mapping[str, Any]

_PURPOSE_BY_NAME = {
    "available": "implicit",
    "plaintext_login": "login",
    "plaintext_auth": "login",
    "stls": "upgrade",
    "starttls": "upgrade",
    "tls_login": "monitor",
}
_TLS_ENTRIES = frozenset({"implicit", "upgrade"})
_DIRECTIONS = {SENT: "sent", RECEIVED: "received", NOTE: "note"}
_PURPOSE_WORDS = {
    "login": "the login probe, before TLS",
    "implicit": "implicit TLS",
    "ntlm": "AUTH NTLM, before TLS",
    "monitor": "the monitoring account's login, inside TLS",
}


@dataclass(frozen=True)
class _Rule:
    """The transcripts a check rests on: of these doors (None: any), of these purposes, and
    whether only their TLS handshake lines are evidence."""

    doors: frozenset[str] | None
    purposes: frozenset[str]
    handshakes_only: bool = False


def _rule(check_id: str) -> _Rule | None:
    family, _, name = check_id.partition(".")
    protocol = _protocol_of_door(family)
    if protocol is not None:
        purpose = _PURPOSE_BY_NAME.get(name)
        doors = frozenset({protocol.name, protocol.implicit_tls_name})
        return _Rule(doors, frozenset({purpose})) if purpose else None
    if family == "auth":
        return _Rule(None, frozenset({"ntlm"}))
    if family in ("tls", "cert"):
        return _Rule(None, _TLS_ENTRIES, handshakes_only=True)
    return None


def _protocol_of_door(door: str) -> ClientProtocol | None:
    found = (p for p in CLIENT_PROTOCOLS if door in (p.name, p.implicit_tls_name))
    return next(found, None)


def evidence_ids(check_id: str, address: str | None, transcripts: Json) -> list[str]:
    """The ids of the transcripts (JSON objects by id) check `check_id` rests on at `address`
    (every address when None), in id order."""
    rule = _rule(check_id)
    if rule is None:
        return []
    return [
        transcript_id
        for transcript_id, transcript in sorted(transcripts.items())
        if _matches(rule, address, transcript)
    ]


def _matches(rule: _Rule, address: str | None, transcript: Json) -> bool:
    if address and transcript.get("address") != address:
        return False
    if rule.doors is not None and transcript.get("door") not in rule.doors:
        return False
    if transcript.get("purpose") not in rule.purposes:
        return False
    return not rule.handshakes_only or any(map(_is_handshake, transcript.get("lines") or ()))


def _is_handshake(line: str) -> bool:
    return line.startswith(f"{NOTE}: {HANDSHAKE}")


def evidence_for(facts: Json | None, check_id: str, address: str | None) -> list[dict[str, str]]:
    """What check `check_id` at `address` rests on, from a stored scan report: each line
    `{"direction": "sent" | "received" | "note", "text": ...}`, every connection introduced
    by a note naming it. Empty for a report older than transcripts, or a check with none."""
    transcripts = (facts or {}).get("transcripts") or {}
    rule = _rule(check_id)
    lines: list[dict[str, str]] = []
    for transcript_id in evidence_ids(check_id, address, transcripts):
        transcript = transcripts[transcript_id]
        lines.append({"direction": "note", "text": _heading(transcript)})
        for line in transcript.get("lines") or ():
            if rule is not None and rule.handshakes_only and not _is_handshake(line):
                continue
            lines.append(_line(line))
    return lines


def _line(stored: str) -> dict[str, str]:
    prefix, _, text = stored.partition(": ")
    return {"direction": _DIRECTIONS.get(prefix, "note"), "text": text}


def _heading(transcript: Json) -> str:
    """`127.0.0.2 port 110 (POP3): the login probe`."""
    door, purpose = transcript.get("door", ""), transcript.get("purpose", "")
    protocol = PROTOCOL_BY_NAME.get(door)
    if protocol is not None:
        label = protocol.label
        upgrade = f"the {protocol.upgrade_command} upgrade"
    else:
        implicit = _protocol_of_door(door)
        label = implicit.implicit_tls_label if implicit else door
        upgrade = "the upgrade"
    words = upgrade if purpose == "upgrade" else _PURPOSE_WORDS.get(purpose, purpose)
    return f"{transcript.get('address')} port {transcript.get('port')} ({label}): {words}"
