"""The POP3 checks of one address: pop3s.available, pop3.plaintext_login and pop3.stls."""

from __future__ import annotations

from scanner._errors import quoted
from scanner._evaluate_common import Context, Verdict
from scanner._facts import EndpointFacts, Pop3Facts
from scanner._suites import PROTOCOL_LABEL

# Outcomes that say nothing about the server's configuration, only that we could not ask.
_UNDETERMINED = {"timeout": "timed out", "unreachable": "was unreachable"}


def check_pop3s_available(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Implicit TLS on the POP3S port: TCP, the handshake, and a +OK greeting inside TLS."""
    facts = endpoint.pop3s
    port = facts.port
    if facts.outcome in _UNDETERMINED:
        return _undetermined(port, facts.outcome, facts.error)
    if facts.outcome == "closed":
        return "fail", f"port {port} is closed, so there is no POP3 over implicit TLS"
    if facts.plaintext_reply is not None:
        return "fail", _plaintext_instead_of_tls(port, facts.plaintext_reply)
    if facts.outcome == "tls_error":
        return "fail", f"the TLS handshake on port {port} failed ({facts.error or 'no reason'})"
    greeting = facts.greeting or ""
    if facts.outcome == "ok" and greeting.startswith("+OK"):
        version = PROTOCOL_LABEL.get(facts.tls.version, "TLS") if facts.tls else "TLS"
        return "pass", f"POP3 over {version} on port {port} works (greeting {quoted(greeting)})"
    said = f"; the server said {quoted(greeting)}" if greeting else ""
    return "fail", f"no +OK greeting after the TLS handshake on port {port}{said}"


def check_plaintext_login(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Would the cleartext port take a password before TLS?

    A verdict the probe reached (accepted/refused) stands even if the connection later timed
    out. When `policy.allow_cleartext_port` is False, a port 110 that answered at all fails
    even if it refuses passwords: the policy wants implicit TLS only (RFC 8314), and a
    listening cleartext port is what it forbids. Accepted logins are reported first because
    they are the graver finding.
    """
    facts = endpoint.pop3
    if facts.outcome == "closed":
        return "skip", f"port {facts.port} is closed, so no password can be sent there in cleartext"
    if facts.plaintext_login == "accepted":
        return "fail", _accepted_summary(facts, endpoint.login_type)
    if not context.policy.allow_cleartext_port and _answered(facts):
        return (
            "fail",
            f"port {facts.port} answers POP3 in cleartext; policy allows implicit TLS only",
        )
    if facts.plaintext_login == "refused":
        # The evidence is a sentence that already quotes the reply; a bare reply is quoted.
        shown = facts.evidence or (facts.user_reply and quoted(facts.user_reply))
        why = f" ({shown})" if shown else ""
        return "pass", f"port {facts.port} refuses passwords before TLS{why}"
    if facts.outcome in _UNDETERMINED:
        return _undetermined(facts.port, facts.outcome, facts.error)
    reason = facts.error or "the replies did not show whether a login would be accepted"
    return "error", f"could not determine whether port {facts.port} takes passwords: {reason}"


def check_stls(endpoint: EndpointFacts, context: Context) -> Verdict:
    """STLS on the cleartext port: offered in CAPA, accepted, and the handshake completes."""
    facts = endpoint.pop3
    port = facts.port
    if facts.outcome == "closed":
        return "skip", f"port {port} is closed, so there is no STLS to check"
    stls = facts.stls
    offered = _offers_stls(facts.capabilities)
    if stls is not None and stls.outcome == "ok" and stls.tls is not None:
        version = PROTOCOL_LABEL.get(stls.tls.version, stls.tls.version)
        return "pass", f"STLS on port {port} upgrades to {version}"
    if stls is not None and stls.outcome == "tls_error":
        reason = stls.error or "no reason"
        return "fail", f"STLS on port {port} was accepted but the TLS handshake failed ({reason})"
    if stls is not None and (stls.reply or "").startswith("-ERR"):
        unlisted = "" if offered else " (and CAPA does not list it)"
        return "fail", f"port {port} refuses STLS{unlisted}: {quoted(stls.reply)}"
    if offered is False:
        return "fail", f"port {port} does not offer STLS in CAPA, so clients cannot upgrade to TLS"
    return _stls_undetermined(facts)


def _undetermined(port: int, outcome: str, error: str | None) -> Verdict:
    detail = f" ({error})" if error else ""
    return "error", f"could not determine: port {port} {_UNDETERMINED[outcome]}{detail}"


def _plaintext_instead_of_tls(port: int, reply: str) -> str:
    """Exchange answers 995 in plaintext when no certificate is bound to POP; say so."""
    text = f"port {port} answered {quoted(reply)} in plaintext instead of a TLS handshake"
    if reply.startswith("-ERR Connection is closed"):
        text += (
            "; this is Exchange with no certificate bound to POP "
            "(X509CertificateName matches no installed certificate)"
        )
    return text


def _answered(facts: Pop3Facts) -> bool:
    """Did anything answer on the cleartext port (a greeting, or POP3 we could read)?"""
    return facts.greeting is not None or facts.outcome in ("ok", "protocol_error")


def _accepted_summary(facts: Pop3Facts, login_type: str | None) -> str:
    """Quote the evidence and say how sure we are, so operators can weigh the finding."""
    port = facts.port
    if facts.certainty == "confirmed":
        user_ok = facts.user_reply is not None and facts.user_reply.startswith("+OK")
        shown = f"USER answered {quoted(facts.user_reply)}" if user_ok else facts.evidence
        text = (
            f"port {port} asks for the password before TLS ({shown}), so a client's password "
            "crosses the network in the clear"
        )
    else:
        evidence = f" ({facts.evidence})" if facts.evidence else ""
        text = (
            f"the server likely accepts a password before TLS on port {port}{evidence}, "
            "so passwords could cross the network in the clear (advertised, not confirmed)"
        )
    if login_type == "PlainTextLogin":
        text += "; Exchange LoginType is PlainTextLogin"
    return text


def _stls_undetermined(facts: Pop3Facts) -> Verdict:
    """Neither success nor a clear refusal: we could not find out."""
    stls = facts.stls
    outcome = stls.outcome if stls is not None else facts.outcome
    error = stls.error if stls is not None else facts.error
    if outcome in _UNDETERMINED:
        return _undetermined(facts.port, outcome, error)
    reason = error or "the STLS upgrade was not completed"
    return "error", f"could not determine whether STLS works on port {facts.port}: {reason}"


def _offers_stls(capabilities: tuple[str, ...] | None) -> bool | None:
    """True/False when CAPA was read, None when we never saw it."""
    if capabilities is None:
        return None
    return any(line.upper().split()[:1] == ["STLS"] for line in capabilities)
