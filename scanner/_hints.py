"""Product hints from what a server says, and Exchange's LoginType read from outside.

Banners are configurable, so these are hints, not proof; the verdicts never rest on them.
"""

from __future__ import annotations

import re

from scanner._facts import CleartextFacts, Pop3Facts
from scanner._wire import capability_names, sasl_mechanisms

# (substring of the greeting, product). Checked in order, case-insensitively.
_GREETING_PRODUCTS = (
    ("microsoft exchange", "Microsoft Exchange"),
    # Exchange's SMTP banner never says Exchange: "220 <fqdn> Microsoft ESMTP MAIL Service ready".
    ("microsoft esmtp mail service", "Microsoft Exchange"),
    ("dovecot", "Dovecot"),
    ("cyrus", "Cyrus IMAP"),
    ("hello there", "Courier"),
    ("courier", "Courier"),
    ("zimbra", "Zimbra"),
    ("hmailserver", "hMailServer"),
    ("qpopper", "Qpopper"),
    ("gpop", "Gmail"),
    ("mdaemon", "MDaemon"),
    ("kerio", "Kerio Connect"),
    ("icewarp", "IceWarp"),
    ("communigate", "CommuniGate Pro"),
    ("axigen", "Axigen"),
    ("kopano", "Kopano"),
    ("uw pop3", "UW POP3"),
    ("popa3d", "popa3d"),
    ("postfix", "Postfix"),
    ("mailutils", "GNU Mailutils"),
)
_EXCHANGE_YEAR = re.compile(r"Microsoft Exchange Server (\d{4})", re.IGNORECASE)
# Exchange Online appends " [<base64 of the server FQDN>]"; on-premises servers never do.
_EXCHANGE_ONLINE = re.compile(r"\[[A-Za-z0-9+/=]{8,}\]\s*$")


def product_hint(*greetings: str | None, quit_reply: str | None = None) -> str | None:
    """A product name (with Exchange's year from the QUIT reply), or None."""
    text = " ".join(g for g in greetings if g).lower()
    product = next((name for needle, name in _GREETING_PRODUCTS if needle in text), None)
    if product != "Microsoft Exchange":
        return product
    if any(g and _EXCHANGE_ONLINE.search(g) for g in greetings):
        return "Exchange Online"
    year = _EXCHANGE_YEAR.search(quit_reply or "")
    return f"Microsoft Exchange {year.group(1)}" if year else product


def login_type_label(login_type: str | None, product: str | None) -> str:
    """The inferred LoginType as pages show it: the value when there is one, "not Exchange"
    when the product seen is something else (LoginType is Exchange's setting), else
    "unknown"."""
    if login_type:
        return login_type
    if product and "Exchange" not in product:
        return "not Exchange"
    return "unknown"


def exchange_login_type(pop3: Pop3Facts) -> str:
    """Exchange's LoginType, read from outside: from CAPA and the USER reply.

    SecureLogin and PlainTextAuthentication with NTLM off look the same from outside; both
    keep cleartext passwords off the wire, and we report SecureLogin.
    """
    if pop3.plaintext_login == "accepted":
        return "PlainTextLogin"
    if pop3.capabilities is None:
        return "unknown"
    names = capability_names(pop3.capabilities)
    mechanisms = sasl_mechanisms(pop3.capabilities)
    if "USER" in names or mechanisms & {"PLAIN", "LOGIN"}:
        return "PlainTextLogin"
    if mechanisms & {"NTLM", "GSSAPI"}:
        return "PlainTextAuthentication"
    return "SecureLogin"


def exchange_imap_login_type(imap: CleartextFacts) -> str:
    """Exchange's IMAP LoginType (Set-ImapSettings), read from outside like POP3's: from
    CAPABILITY (LOGINDISABLED, AUTH=) and what the login probe saw."""
    if imap.plaintext_login == "accepted":
        return "PlainTextLogin"
    if imap.capabilities is None:
        return "unknown"
    atoms = {atom.upper() for atom in imap.capabilities}
    if "LOGINDISABLED" not in atoms or atoms & {"AUTH=PLAIN", "AUTH=LOGIN"}:
        return "PlainTextLogin"
    if atoms & {"AUTH=NTLM", "AUTH=GSSAPI"}:
        return "PlainTextAuthentication"
    return "SecureLogin"
