"""The report's "Method" section, written once here and read by every format (the PDF's
template, the XLSX's Method sheet): what is probed, from where, and how a password is never
sent in the clear. It summarises what the scanner's modules guarantee (scanner._pop3,
scanner._login, scanner._wire), in words for an auditor.
"""

from __future__ import annotations

from dataclasses import dataclass

import scanner
from popcompliance import locations

PASSWORD_SAFETY = (
    "No password is ever sent before TLS. To learn whether a server would accept one in the "
    "clear, the probe offers a random user name that cannot exist (POP3 USER), or starts a "
    "SASL PLAIN or LOGIN exchange and cancels it at the first challenge: the server's answer "
    "shows whether it would take a password, and no password is sent.",
    "The monitoring account, where one is configured, logs in only inside TLS and only after "
    "the certificate served on that very connection chains to the policy's trust store and "
    "covers the service name. The scanner refuses to write credentials on a connection whose "
    "TLS handshake has not completed. It tries at most once per address and scan, so a wrong "
    "password cannot lock the account out.",
    "Every read from a server is bounded in bytes and time, so a hostile server can neither "
    "hang a scan nor grow its memory.",
)
PROBED = (
    "Each server is probed from outside, as a mail client would reach it, on the protocols it "
    "declares: POP3 (110 and 995), IMAP4 (143 and 993) and SMTP submission (587 and 465). "
    "Every address its name resolves to is probed; a check's result is the worst over the "
    "addresses and probe locations.",
    "TLS versions and cipher suites are listed by protocol-level handshakes and judged by the "
    "TLS profile of the server's policy; certificates are checked for trust, name, validity, "
    "strength and consistency.",
    "Statuses are those recorded when the servers were scanned. A change of status is kept "
    "as one history row when it is confirmed; this report reads that history as it stood at "
    "the report's date.",
)


@dataclass(frozen=True)
class Method:
    """The section's content: paragraphs, the checks judged (title and id, catalog order) and
    the probe locations."""

    probed: tuple[str, ...]
    password_safety: tuple[str, ...]
    checks: tuple[tuple[str, str], ...]
    locations: tuple[str, ...]

    def lines(self) -> list[str]:
        """The section as plain lines, for formats without layout."""
        return [
            "What is probed",
            *self.probed,
            "Probe locations: " + ", ".join(self.locations),
            "How a password is never sent in the clear",
            *self.password_safety,
            "Checks judged",
            *(f"{check_id}: {title}" for title, check_id in self.checks),
        ]


def method() -> Method:
    checks = tuple((spec.title, spec.id) for spec in scanner.CATALOG)
    places = tuple(locations.label(name) for name in locations.declared())
    return Method(PROBED, PASSWORD_SAFETY, checks, places)
