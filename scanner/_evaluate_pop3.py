"""POP3's plaintext-login check (pop3.plaintext_login); its TLS doors are judged like every
protocol's (scanner._evaluate_doors)."""

from __future__ import annotations

from scanner._errors import quoted
from scanner._evaluate_common import Context, Verdict
from scanner._evaluate_doors import UNDETERMINED, answered, undetermined
from scanner._facts import EndpointFacts, Pop3Facts


def check_plaintext_login(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Would the cleartext port take a password before TLS?

    A verdict the probe reached (accepted/refused) stands even if the connection later timed
    out. When `policy.allow_cleartext_port` is False, a port 110 that answered at all fails
    even if it refuses passwords: the policy wants implicit TLS only (RFC 8314), and a
    listening cleartext port is what it forbids. Accepted logins are reported first because
    they are the graver finding.
    """
    facts = endpoint.pop3
    assert facts is not None  # POP3 is declared (scanner._evaluate)
    if facts.outcome == "closed":
        return "skip", f"port {facts.port} is closed, so no password can be sent there in cleartext"
    if facts.plaintext_login == "accepted":
        return "fail", _accepted_summary(facts, endpoint.login_type)
    if not context.policy.allow_cleartext_port and answered(facts):
        return (
            "fail",
            f"port {facts.port} answers POP3 in cleartext; policy allows implicit TLS only",
        )
    if facts.plaintext_login == "refused":
        # The evidence is a sentence that already quotes the reply; a bare reply is quoted.
        shown = facts.evidence or (facts.user_reply and quoted(facts.user_reply))
        why = f" ({shown})" if shown else ""
        return "pass", f"port {facts.port} refuses passwords before TLS{why}"
    if facts.outcome in UNDETERMINED:
        return undetermined(facts.port, facts.outcome, facts.error)
    reason = facts.error or "the replies did not show whether a login would be accepted"
    return "error", f"could not determine whether port {facts.port} takes passwords: {reason}"


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
