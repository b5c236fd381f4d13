"""The client protocols a mail server may serve, each with its two doors: the cleartext port
that upgrades to TLS, and the implicit-TLS port (RFC 8314). Defined once; the target, the
probes, the checks, the CLI and the dashboard all read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientProtocol:
    """One protocol: its name in inventories (`pop3`), how people call it (`POP3`), the name
    and label of its implicit-TLS door (`pop3s`, `POP3S`: its facts' key and its checks'
    family), its two ports by default and the Target fields that hold them, its upgrade
    command and the command that lists what it offers, and how its positive greeting and a
    granted upgrade begin (upper case), by which stored facts are read back."""

    name: str
    label: str
    implicit_tls_name: str
    implicit_tls_label: str
    cleartext_port: int
    implicit_tls_port: int
    cleartext_field: str
    implicit_tls_field: str
    upgrade_command: str
    capabilities_command: str
    greeting_starts: tuple[str, ...]
    granted_starts: tuple[str, ...]

    def is_greeting(self, line: str | None) -> bool:
        return line is not None and line.upper().startswith(self.greeting_starts)

    def is_granted(self, reply: str | None) -> bool:
        """Whether `reply` (to STLS/STARTTLS, without IMAP's tag) grants the upgrade."""
        return reply is not None and reply.upper().startswith(self.granted_starts)


POP3 = ClientProtocol(
    name="pop3",
    label="POP3",
    implicit_tls_name="pop3s",
    implicit_tls_label="POP3S",
    cleartext_port=110,
    implicit_tls_port=995,
    cleartext_field="pop3_port",
    implicit_tls_field="pop3s_port",
    upgrade_command="STLS",
    capabilities_command="CAPA",
    greeting_starts=("+OK",),
    granted_starts=("+OK",),
)
IMAP = ClientProtocol(
    name="imap",
    label="IMAP4",
    implicit_tls_name="imaps",
    implicit_tls_label="IMAPS",
    cleartext_port=143,
    implicit_tls_port=993,
    cleartext_field="imap_port",
    implicit_tls_field="imaps_port",
    upgrade_command="STARTTLS",
    capabilities_command="CAPABILITY",
    greeting_starts=("* OK", "* PREAUTH"),
    granted_starts=("OK",),
)
SUBMISSION = ClientProtocol(
    name="submission",
    label="SMTP submission",
    implicit_tls_name="submissions",
    implicit_tls_label="SMTP submission over TLS",
    cleartext_port=587,
    implicit_tls_port=465,
    cleartext_field="submission_port",
    implicit_tls_field="submissions_port",
    upgrade_command="STARTTLS",
    capabilities_command="EHLO",
    greeting_starts=("220",),
    granted_starts=("220",),
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
