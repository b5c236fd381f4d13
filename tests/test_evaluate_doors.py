"""The door checks of IMAP4 and SMTP submission (scanner/_evaluate_doors.py): implicit TLS on
993 and 465, STARTTLS on 143 and 587, and no password before TLS, judged from facts built by
hand. No network."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scanner._facts import CleartextFacts, EndpointFacts, ImplicitTlsFacts, StlsFacts
from scanner._services import IMAP, SUBMISSION, ClientProtocol
from scanner._target import Policy, Target
from tests.test_evaluate import NAME, POLICY, check, checks, support, tls

BOTH = Target(NAME, protocols=("imap", "submission"))
STRICT = replace(POLICY, allow_cleartext_imap=False, allow_cleartext_submission=False)
EXCHANGE_IMAP = "* OK The Microsoft Exchange IMAP4 service is ready."


def imap(**changes: Any) -> CleartextFacts:
    """Port 143 of a well-kept server: LOGINDISABLED, AUTHENTICATE PLAIN refused, STARTTLS."""
    good = CleartextFacts(
        port=143,
        outcome="ok",
        greeting="* OK Dovecot ready.",
        capabilities=("IMAP4rev1", "STARTTLS", "LOGINDISABLED"),
        auth_replies={"AUTHENTICATE PLAIN": "NO [PRIVACYREQUIRED] Plaintext authentication"},
        plaintext_login="refused",
        certainty="confirmed",
        evidence="AUTHENTICATE PLAIN before TLS answered “NO [PRIVACYREQUIRED] …”",
        goodbye="* BYE Logging out",
        starttls=StlsFacts(
            "ok", reply="OK Begin TLS negotiation now.", tls=tls(), support=support()
        ),
    )
    return replace(good, **changes)


def submission(**changes: Any) -> CleartextFacts:
    """Port 587 of a well-kept server: no AUTH before STARTTLS, STARTTLS works."""
    good = CleartextFacts(
        port=587,
        outcome="ok",
        greeting="220 mail.example.test ESMTP Postfix",
        capabilities=("PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME"),
        auth_replies={"AUTH PLAIN": "503 5.5.1 Error: authentication not enabled"},
        plaintext_login="refused",
        certainty="confirmed",
        evidence="EHLO before STARTTLS lists no AUTH mechanism; AUTH PLAIN answered “503 …”",
        goodbye="221 2.0.0 Bye",
        starttls=StlsFacts(
            "ok", reply="220 2.0.0 Ready to start TLS", tls=tls(), support=support()
        ),
    )
    return replace(good, **changes)


def implicit(port: int, greeting: str, **changes: Any) -> ImplicitTlsFacts:
    good = ImplicitTlsFacts(port, "ok", tls=tls(), greeting=greeting, support=support())
    return replace(good, **changes)


def doors(**changes: Any) -> EndpointFacts:
    """An address serving IMAP4 and submission, each on both doors; POP3 not declared."""
    facts = {
        "imap": imap(),
        "imaps": implicit(993, "* OK Dovecot ready."),
        "submission": submission(),
        "submissions": implicit(465, "220 mail.example.test ESMTP Postfix"),
    }
    return EndpointFacts("127.0.0.2", None, None, **(facts | changes))


def cleartext(protocol: ClientProtocol, **changes: Any) -> dict[str, CleartextFacts]:
    """The endpoint field of the protocol's cleartext door, changed."""
    make = imap if protocol is IMAP else submission
    return {protocol.name: make(**changes)}


def verdict(check_id: str, facts: EndpointFacts, policy: Policy = POLICY) -> tuple[str, str]:
    result = check(check_id, facts, target=BOTH, policy=policy)
    return result.status, result.summary


LOGIN_CHECK = {"imap": "imap.plaintext_login", "submission": "submission.plaintext_auth"}
UPGRADE_CHECK = {"imap": "imap.starttls", "submission": "submission.starttls"}
IMPLICIT_CHECK = {"imap": "imaps.available", "submission": "submissions.available"}
PROTOCOLS = pytest.mark.parametrize("protocol", [IMAP, SUBMISSION], ids=["imap", "submission"])


def test_a_well_kept_server_passes_every_door_check() -> None:
    results = checks(doors(), target=BOTH)
    for check_id in (*LOGIN_CHECK.values(), *UPGRADE_CHECK.values(), *IMPLICIT_CHECK.values()):
        assert results[check_id].status == "pass", (check_id, results[check_id].summary)
    assert results["imaps.available"].summary == (
        "IMAP4 over TLS 1.3 on port 993 works (greeting “* OK Dovecot ready.”)"
    )
    assert results["submission.starttls"].summary == "STARTTLS on port 587 upgrades to TLS 1.3"
    # POP3 is not declared: its checks skip instead of failing a closed 110 and 995.
    assert results["pop3s.available"].status == results["pop3.plaintext_login"].status == "skip"


def test_checks_of_an_undeclared_protocol_are_skipped_whatever_the_facts() -> None:
    only_imap = Target(NAME, protocols=("imap",))
    facts = doors(submission=None, submissions=None)
    for check_id in ("submission.plaintext_auth", "submission.starttls", "submissions.available"):
        result = check(check_id, facts, target=only_imap)
        assert (result.status, result.summary) == (
            "skip",
            "SMTP submission is not declared for this server, so it was not probed",
        )
    assert check("imap.plaintext_login", facts, target=only_imap).status == "pass"


# No password before TLS


@PROTOCOLS
def test_a_closed_cleartext_port_skips_the_login_and_upgrade_checks(
    protocol: ClientProtocol,
) -> None:
    port = 143 if protocol is IMAP else 587
    closed = doors(**cleartext(protocol, outcome="closed", greeting=None, starttls=None))
    assert verdict(LOGIN_CHECK[protocol.name], closed) == (
        "skip",
        f"port {port} is closed, so no password can be sent there in cleartext",
    )
    assert verdict(UPGRADE_CHECK[protocol.name], closed) == (
        "skip",
        f"port {port} is closed, so there is no STARTTLS to check",
    )
    # A closed port answers nothing, so a policy of implicit TLS only has nothing to fail.
    assert verdict(LOGIN_CHECK[protocol.name], closed, STRICT)[0] == "skip"


@PROTOCOLS
def test_a_policy_of_implicit_tls_only_fails_a_cleartext_port_that_answers(
    protocol: ClientProtocol,
) -> None:
    port = 143 if protocol is IMAP else 587
    expected = (
        "fail",
        f"port {port} answers {protocol.label} in cleartext; policy allows implicit TLS only",
    )
    assert verdict(LOGIN_CHECK[protocol.name], doors(), STRICT) == expected
    # Greeted, then broke off: it still answered.
    broken = doors(**cleartext(protocol, outcome="protocol_error", plaintext_login="unknown"))
    assert verdict(LOGIN_CHECK[protocol.name], broken, STRICT) == expected
    # The other protocol's policy is its own.
    other = "submission" if protocol is IMAP else "imap"
    lenient = replace(POLICY, **{f"allow_cleartext_{other}": False})
    assert verdict(LOGIN_CHECK[protocol.name], doors(), lenient)[0] == "pass"


@PROTOCOLS
def test_a_policy_of_implicit_tls_only_cannot_judge_a_port_that_never_answered(
    protocol: ClientProtocol,
) -> None:
    silent = doors(
        **cleartext(
            protocol,
            outcome="timeout",
            error="no answer within 10 s",
            greeting=None,
            plaintext_login="unknown",
        )
    )
    status, summary = verdict(LOGIN_CHECK[protocol.name], silent, STRICT)
    assert status == "error"
    assert summary.startswith("could not determine: port ") and "timed out" in summary


@PROTOCOLS
def test_a_password_challenge_before_tls_fails_with_its_evidence(protocol: ClientProtocol) -> None:
    evidence = "AUTH PLAIN before STARTTLS answered “334” (a password challenge)"
    accepted = doors(**cleartext(protocol, plaintext_login="accepted", evidence=evidence))
    status, summary = verdict(LOGIN_CHECK[protocol.name], accepted)
    assert status == "fail"
    assert f"asks for the password before TLS ({evidence})" in summary
    # What the probe saw stands even when the connection broke off afterwards.
    later = doors(
        **cleartext(protocol, plaintext_login="accepted", evidence=evidence, outcome="timeout")
    )
    assert verdict(LOGIN_CHECK[protocol.name], later)[0] == "fail"


@PROTOCOLS
def test_an_undecided_login_probe_is_an_error_never_a_pass(protocol: ClientProtocol) -> None:
    port = 143 if protocol is IMAP else 587
    undecided = doors(**cleartext(protocol, plaintext_login="unknown", evidence=None))
    assert verdict(LOGIN_CHECK[protocol.name], undecided) == (
        "error",
        f"could not determine whether port {port} takes passwords: the replies did not show "
        "whether a login would be accepted",
    )
    timed_out = doors(
        **cleartext(protocol, plaintext_login="unknown", outcome="timeout", error="no answer")
    )
    assert verdict(LOGIN_CHECK[protocol.name], timed_out) == (
        "error",
        f"could not determine: port {port} timed out (no answer)",
    )


# STARTTLS


@PROTOCOLS
def test_a_refused_upgrade_fails_quoting_the_reply(protocol: ClientProtocol) -> None:
    port = 143 if protocol is IMAP else 587
    reply = (
        "BAD Command received in Invalid state."
        if protocol is IMAP
        else "454 4.7.0 TLS not available"
    )
    refused = doors(**cleartext(protocol, starttls=StlsFacts("ok", reply=reply)))
    assert verdict(UPGRADE_CHECK[protocol.name], refused) == (
        "fail",
        f"port {port} refuses STARTTLS: “{reply}”",
    )


@pytest.mark.parametrize(
    ("protocol", "capabilities", "name"),
    [
        (IMAP, ("IMAP4rev1", "LOGINDISABLED"), "CAPABILITY"),
        (SUBMISSION, ("PIPELINING", "AUTH GSSAPI NTLM"), "EHLO"),
    ],
    ids=["imap", "submission"],
)
def test_an_upgrade_neither_listed_nor_granted_says_where_it_is_missing(
    protocol: ClientProtocol, capabilities: tuple[str, ...], name: str
) -> None:
    port = 143 if protocol is IMAP else 587
    reply = (
        "BAD Command received in Invalid state."
        if protocol is IMAP
        else "500 5.3.3 Unrecognized command"
    )
    unlisted = doors(
        **cleartext(protocol, capabilities=capabilities, starttls=StlsFacts("ok", reply=reply))
    )
    assert verdict(UPGRADE_CHECK[protocol.name], unlisted) == (
        "fail",
        f"port {port} refuses STARTTLS (and {name} does not list it): “{reply}”",
    )
    never_tried = doors(**cleartext(protocol, capabilities=capabilities, starttls=None))
    assert verdict(UPGRADE_CHECK[protocol.name], never_tried) == (
        "fail",
        f"port {port} does not offer STARTTLS in {name}, so clients cannot upgrade to TLS",
    )


@PROTOCOLS
def test_an_upgrade_whose_handshake_fails_fails(protocol: ClientProtocol) -> None:
    port = 143 if protocol is IMAP else 587
    broken = doors(
        **cleartext(protocol, starttls=StlsFacts("tls_error", error="no shared cipher", reply="OK"))
    )
    assert verdict(UPGRADE_CHECK[protocol.name], broken) == (
        "fail",
        f"STARTTLS on port {port} was accepted but the TLS handshake failed (no shared cipher)",
    )


@PROTOCOLS
def test_an_upgrade_that_timed_out_is_an_error(protocol: ClientProtocol) -> None:
    port = 143 if protocol is IMAP else 587
    slow = doors(**cleartext(protocol, starttls=StlsFacts("timeout", error="no answer within 5 s")))
    assert verdict(UPGRADE_CHECK[protocol.name], slow) == (
        "error",
        f"could not determine: port {port} timed out (no answer within 5 s)",
    )


def test_an_ehlo_keyword_with_parameters_still_lists_starttls() -> None:
    # EHLO keywords carry parameters ("SIZE 10240000"); STARTTLS is found by its keyword.
    listed = doors(submission=submission(capabilities=("SIZE 10240000", "STARTTLS")))
    assert verdict("submission.starttls", listed)[0] == "pass"


# Implicit TLS


@pytest.mark.parametrize(
    ("protocol", "port", "service"),
    [(IMAP, 993, "IMAP"), (SUBMISSION, 465, "SMTP")],
    ids=["imap", "submission"],
)
def test_implicit_tls_failures_say_what_happened(
    protocol: ClientProtocol, port: int, service: str
) -> None:
    field = protocol.implicit_tls_name
    check_id = IMPLICIT_CHECK[protocol.name]

    def judged(**changes: Any) -> tuple[str, str]:
        facts = replace(implicit(port, "greeting"), support=None, **changes)
        return verdict(check_id, doors(**{field: facts}))

    assert judged(outcome="closed", tls=None, greeting=None) == (
        "fail",
        f"port {port} is closed, so there is no {protocol.label} over implicit TLS",
    )
    said = "* BYE Connection is closed. 14"
    assert judged(outcome="tls_error", tls=None, greeting=None, plaintext_reply=said) == (
        "fail",
        f"port {port} answered “{said}” in plaintext instead of a TLS handshake; this is "
        f"Exchange with no certificate bound to {service} (X509CertificateName matches no "
        "installed certificate)",
    )
    assert judged(outcome="tls_error", error="handshake failure", tls=None, greeting=None) == (
        "fail",
        f"the TLS handshake on port {port} failed (handshake failure)",
    )
    assert judged(outcome="protocol_error", error="the reply is not IMAP", greeting=None) == (
        "fail",
        f"no {protocol.label} greeting after the TLS handshake on port {port} "
        "(the reply is not IMAP)",
    )
    assert judged(outcome="timeout", error="no answer", tls=None, greeting=None) == (
        "error",
        f"could not determine: port {port} timed out (no answer)",
    )


def test_an_exchange_imaps_greeting_passes_naming_the_version() -> None:
    facts = doors(imaps=implicit(993, EXCHANGE_IMAP, tls=tls(version="TLSv1.2")))
    assert verdict("imaps.available", facts) == (
        "pass",
        f"IMAP4 over TLS 1.2 on port 993 works (greeting “{EXCHANGE_IMAP}”)",
    )
