"""The checks of each protocol's two doors, the same for POP3, IMAP4 and SMTP submission:
implicit TLS works (pop3s.available, imaps.available, submissions.available), the
STLS/STARTTLS upgrade works (pop3.stls, imap.starttls, submission.starttls), and, for IMAP4
and submission, no password before TLS (imap.plaintext_login, submission.plaintext_auth;
POP3's is in scanner._evaluate_pop3). Each factory takes the protocol and returns the check."""

from __future__ import annotations

import re
from collections.abc import Callable

from scanner._errors import quoted
from scanner._evaluate_common import Context, Verdict
from scanner._facts import CleartextFacts, EndpointFacts, ImplicitTlsFacts, Pop3Facts
from scanner._services import ClientProtocol
from scanner._suites import PROTOCOL_LABEL
from scanner._wire import capability_names

Check = Callable[[EndpointFacts, Context], Verdict]

# Outcomes that say nothing about the server's configuration, only that we could not ask.
UNDETERMINED = {"timeout": "timed out", "unreachable": "was unreachable"}


# Parts of a greeting that change at every connection: an SMTP banner's date (Exchange's
# "ready at Fri, 4 Dec 2026 17:20:56 +0000") and a POP3 APOP challenge
# ("<1896.697170952@host>"). Summaries leave them out, so a rescan that finds the same server
# finds the same summary and stores nothing.
_VOLATILE = (
    (
        re.compile(
            r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} [A-Z][a-z]{2} \d{4} "
            r"\d{1,2}:\d{2}(?::\d{2})?(?: [+-]\d{4})?(?: \([^)]*\))?"
        ),
        "[date]",
    ),
    (re.compile(r"<[^<>@\s]+@[^<>\s]+>"), "<…>"),
)


def stable_greeting(greeting: str) -> str:
    """The greeting without what changes at every connection (_VOLATILE), for summaries."""
    for pattern, placeholder in _VOLATILE:
        greeting = pattern.sub(placeholder, greeting)
    return greeting


def undetermined(port: int, outcome: str, error: str | None) -> Verdict:
    detail = f" ({error})" if error else ""
    return "error", f"could not determine: port {port} {UNDETERMINED[outcome]}{detail}"


def implicit_tls_check(protocol: ClientProtocol) -> Check:
    """TCP, the TLS handshake, and the protocol's greeting inside TLS on its implicit port."""

    def check(endpoint: EndpointFacts, context: Context) -> Verdict:
        _, facts = endpoint.doors(protocol)
        assert facts is not None  # the protocol is declared (scanner._evaluate)
        return _implicit_verdict(protocol, facts)

    return check


def _implicit_verdict(protocol: ClientProtocol, facts: ImplicitTlsFacts) -> Verdict:
    port = facts.port
    if facts.outcome in UNDETERMINED:
        return undetermined(port, facts.outcome, facts.error)
    if facts.outcome == "closed":
        return "fail", f"port {port} is closed, so there is no {protocol.label} over implicit TLS"
    if facts.plaintext_reply is not None:
        return "fail", _plaintext_instead_of_tls(protocol, port, facts.plaintext_reply)
    if facts.outcome == "tls_error":
        return "fail", f"the TLS handshake on port {port} failed ({facts.error or 'no reason'})"
    if facts.outcome == "ok" and facts.greeting and protocol.is_greeting(facts.greeting):
        version = PROTOCOL_LABEL.get(facts.tls.version, "TLS") if facts.tls else "TLS"
        greeting = quoted(stable_greeting(facts.greeting))
        return "pass", f"{protocol.label} over {version} on port {port} works (greeting {greeting})"
    said = f"; the server said {quoted(stable_greeting(facts.greeting))}" if facts.greeting else ""
    reason = f" ({facts.error})" if facts.error and not said else ""
    return (
        "fail",
        f"no {protocol.label} greeting after the TLS handshake on port {port}{said}{reason}",
    )


def _plaintext_instead_of_tls(protocol: ClientProtocol, port: int, reply: str) -> str:
    """Exchange answers its TLS ports in plaintext when no certificate is bound; say so."""
    text = f"port {port} answered {quoted(reply)} in plaintext instead of a TLS handshake"
    if "Connection is closed" in reply:
        service = "SMTP" if protocol.name == "submission" else protocol.name.upper()
        text += (
            f"; this is Exchange with no certificate bound to {service} "
            "(X509CertificateName matches no installed certificate)"
        )
    return text


def _lists_upgrade(protocol: ClientProtocol, capabilities: tuple[str, ...] | None) -> bool | None:
    """Whether the cleartext port's capabilities list the upgrade; None when never read."""
    if capabilities is None:
        return None
    if protocol.name == "imap":
        return "STARTTLS" in {atom.upper() for atom in capabilities}
    return protocol.upgrade_command in capability_names(capabilities)


def upgrade_check(protocol: ClientProtocol) -> Check:
    """The cleartext port offers STLS/STARTTLS, grants it, and the handshake completes."""
    command = protocol.upgrade_command

    def check(endpoint: EndpointFacts, context: Context) -> Verdict:
        facts, _ = endpoint.doors(protocol)
        assert facts is not None  # the protocol is declared (scanner._evaluate)
        port = facts.port
        if facts.outcome == "closed":
            return "skip", f"port {port} is closed, so there is no {command} to check"
        upgrade = facts.upgrade
        listed = _lists_upgrade(protocol, facts.capabilities)
        if upgrade is not None and upgrade.outcome == "ok" and upgrade.tls is not None:
            version = PROTOCOL_LABEL.get(upgrade.tls.version, upgrade.tls.version)
            return "pass", f"{command} on port {port} upgrades to {version}"
        if upgrade is not None and upgrade.outcome == "tls_error":
            reason = upgrade.error or "no reason"
            return (
                "fail",
                f"{command} on port {port} was accepted but the TLS handshake failed ({reason})",
            )
        if upgrade is not None and upgrade.reply and not protocol.is_granted(upgrade.reply):
            unlisted = "" if listed else f" (and {protocol.capabilities_command} does not list it)"
            return "fail", f"port {port} refuses {command}{unlisted}: {quoted(upgrade.reply)}"
        if listed is False:
            return (
                "fail",
                f"port {port} does not offer {command} in {protocol.capabilities_command}, "
                "so clients cannot upgrade to TLS",
            )
        outcome = upgrade.outcome if upgrade is not None else facts.outcome
        error = upgrade.error if upgrade is not None else facts.error
        if outcome in UNDETERMINED:
            return undetermined(port, outcome, error)
        reason = error or f"the {command} upgrade was not completed"
        return "error", f"could not determine whether {command} works on port {port}: {reason}"

    return check


def plaintext_login_check(protocol: ClientProtocol) -> Check:
    """Would the cleartext port of IMAP4 or submission take a password before TLS? As for
    POP3: a verdict the probe reached stands even if the connection later broke off, and a
    cleartext port the policy forbids fails by answering at all."""

    def check(endpoint: EndpointFacts, context: Context) -> Verdict:
        facts, _ = endpoint.doors(protocol)
        assert isinstance(facts, CleartextFacts)  # the protocol is declared (scanner._evaluate)
        return _plaintext_verdict(protocol, facts, context)

    return check


def _plaintext_verdict(
    protocol: ClientProtocol, facts: CleartextFacts, context: Context
) -> Verdict:
    port = facts.port
    if facts.outcome == "closed":
        return "skip", f"port {port} is closed, so no password can be sent there in cleartext"
    if facts.plaintext_login == "accepted":
        return (
            "fail",
            f"port {port} asks for the password before TLS ({facts.evidence}), so a client's "
            "password crosses the network in the clear",
        )
    if not context.policy.allows_cleartext(protocol.name) and answered(facts):
        return (
            "fail",
            f"port {port} answers {protocol.label} in cleartext; policy allows implicit TLS only",
        )
    if facts.plaintext_login == "refused":
        return "pass", f"port {port} refuses passwords before TLS ({facts.evidence})"
    if facts.outcome in UNDETERMINED:
        return undetermined(port, facts.outcome, facts.error)
    reason = facts.error or "the replies did not show whether a login would be accepted"
    return "error", f"could not determine whether port {port} takes passwords: {reason}"


def answered(facts: Pop3Facts | CleartextFacts) -> bool:
    """Did anything answer on the cleartext port (a greeting, or a protocol we could read)?"""
    return facts.greeting is not None or facts.outcome in ("ok", "protocol_error")
