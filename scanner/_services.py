"""The client protocols a mail server may serve, each with its two doors: the cleartext port
that upgrades to TLS, and the implicit-TLS port (RFC 8314). Defined once; the target, the
probes, the checks, the CLI and the dashboard all read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientProtocol:
    """One protocol: its name in inventories (`pop3`), how people call it (`POP3`), the name
    and label of its implicit-TLS door (`pop3s`, `POP3S`: its facts' key and its checks'
    family), its two ports by default and the Target fields that hold them, and its upgrade
    command."""

    name: str
    label: str
    implicit_tls_name: str
    implicit_tls_label: str
    cleartext_port: int
    implicit_tls_port: int
    cleartext_field: str
    implicit_tls_field: str
    upgrade_command: str


POP3 = ClientProtocol("pop3", "POP3", "pop3s", "POP3S", 110, 995, "pop3_port", "pop3s_port", "STLS")
IMAP = ClientProtocol(
    "imap", "IMAP4", "imaps", "IMAPS", 143, 993, "imap_port", "imaps_port", "STARTTLS"
)
SUBMISSION = ClientProtocol(
    "submission",
    "SMTP submission",
    "submissions",
    "SMTP submission over TLS",
    587,
    465,
    "submission_port",
    "submissions_port",
    "STARTTLS",
)
CLIENT_PROTOCOLS: tuple[ClientProtocol, ...] = (POP3, IMAP, SUBMISSION)
PROTOCOL_BY_NAME: dict[str, ClientProtocol] = {p.name: p for p in CLIENT_PROTOCOLS}
DEFAULT_PROTOCOLS: tuple[str, ...] = ("pop3",)


def parse_protocols(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Protocol names from `pop3,imap` / `pop3;imap` or a sequence, in the canonical order,
    without repeats; ValueError naming what is not a protocol, or when none is given."""
    words = text.replace(";", ",").split(",") if isinstance(text, str) else list(text)
    names = {word.strip().lower() for word in words if word.strip()}
    unknown = sorted(names - set(PROTOCOL_BY_NAME))
    if unknown:
        known = ", ".join(PROTOCOL_BY_NAME)
        raise ValueError(f"unknown protocol {', '.join(unknown)} (known: {known})")
    if not names:
        raise ValueError("at least one protocol is needed (pop3, imap, submission)")
    return tuple(p.name for p in CLIENT_PROTOCOLS if p.name in names)
