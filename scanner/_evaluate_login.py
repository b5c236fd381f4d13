"""The login check of one address: pop3.tls_login, the monitoring account's login inside TLS."""

from __future__ import annotations

from scanner._errors import quoted
from scanner._evaluate_common import Context, Verdict, undetermined_tls
from scanner._facts import NOT_JUDGED, EndpointFacts, TlsLoginFacts


def check_tls_login(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Did the server accept the monitoring account's login over TLS?"""
    if context.target.credentials is None:
        return "skip", "no monitoring credentials set"
    login = endpoint.tls_login
    if login is None:
        return _not_attempted(endpoint)
    where = _entry_point(endpoint, login)
    if login.withheld is not None:
        return "skip", f"the password was not sent over {where}: {login.withheld}"
    if login.accepted is None:
        reason = login.error or "no answer to the login"
        return "error", f"the login over {where} could not finish: {reason}"
    said = quoted(login.reply)
    if login.accepted:
        return "pass", f"the server accepted the monitoring login over {where} ({login.mechanism})"
    code = login.response_code
    if code == "IN-USE":
        return (
            "pass",
            f"the server accepted the password over {where}; the mailbox is in use ({said})",
        )
    if code in NOT_JUDGED:
        return "error", f"the server did not judge the login over {where} now: {said}"
    return (
        "fail",
        f"the server rejected the monitoring login over {where} ({login.mechanism}): {said}",
    )


def _not_attempted(endpoint: EndpointFacts) -> Verdict:
    """Credentials set, no login made: no TLS entry point worked, or we could not tell."""
    undetermined = undetermined_tls(endpoint)
    if undetermined is not None:
        return "error", f"the password was not sent: {undetermined}"
    return "skip", "the password was not sent: neither POP3S nor STLS worked"


def _entry_point(endpoint: EndpointFacts, login: TlsLoginFacts) -> str:
    assert endpoint.pop3 is not None and endpoint.pop3s is not None  # a login means POP3
    if login.entry == "pop3s":
        return f"POP3S port {endpoint.pop3s.port}"
    return f"STLS on POP3 port {endpoint.pop3.port}"
