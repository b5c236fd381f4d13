"""auth.ntlm_disclosure (scanner/_evaluate_ntlm.py) from NTLM challenges built by hand: which
names the service name already tells and which it does not, across doors. No network."""

from __future__ import annotations

from typing import Any

import pytest

from scanner._facts import EndpointFacts, NtlmFacts
from scanner._ntlm import NtlmChallenge
from scanner._target import Target
from tests.test_evaluate import check
from tests.test_evaluate_doors import doors

# What the lab's Exchange (and Microsoft's documentation) names.
CONTOSO = NtlmChallenge(
    target_name="CONTOSO",
    netbios_domain="CONTOSO",
    netbios_computer="EXCH01",
    dns_domain="contoso.local",
    dns_computer="exch01.contoso.local",
    dns_tree="contoso.local",
    os_version="10.0.17763",
)
CONTOSO_NAMES = (
    "NetBIOS domain CONTOSO, NetBIOS computer EXCH01, DNS domain contoso.local, DNS computer "
    "exch01.contoso.local and DNS tree (forest) contoso.local"
)
# A server whose AD names are its public ones.
PUBLIC = NtlmChallenge(
    target_name="EXAMPLE",
    netbios_domain="EXAMPLE",
    netbios_computer="MAIL",
    dns_domain="example.test",
    dns_computer="mail.example.test",
    dns_tree="example.test",
    os_version="6.3.9600",
)
# The address's facts are tests.test_evaluate_doors's: IMAP4 and submission (the NTLM facts of
# a POP3 door are judged the same way).
BOTH = Target("mail.example.test", protocols=("imap", "submission"))


def read(protocol: str, port: int, challenge: NtlmChallenge | None, **kw: Any) -> NtlmFacts:
    outcome = "ok" if challenge is not None else kw.pop("outcome", "protocol_error")
    return NtlmFacts(protocol, port, outcome, kw.pop("error", None), challenge)  # type: ignore[arg-type]


def judged(*ntlm: NtlmFacts, target: Target = BOTH) -> tuple[str, str]:
    facts: EndpointFacts = doors(ntlm=ntlm)
    result = check("auth.ntlm_disclosure", facts, target=target)
    return result.status, result.summary


def test_no_ntlm_before_tls_is_skipped() -> None:
    assert judged() == ("skip", "no declared protocol offers NTLM before TLS")


def test_an_internal_domain_is_named_with_the_door_and_the_windows_build() -> None:
    assert judged(read("imap", 143, CONTOSO)) == (
        "warn",
        f"AUTH NTLM before TLS on port 143 (IMAP4) tells anyone {CONTOSO_NAMES}, and its "
        "Windows build 10.0.17763",
    )


def test_names_the_service_name_already_tells_pass() -> None:
    assert judged(read("submission", 587, PUBLIC)) == (
        "pass",
        "the NTLM challenge on port 587 (SMTP submission) names nothing beyond the service name",
    )


def test_only_the_names_beyond_the_service_name_are_named() -> None:
    # NetBIOS MAIL is a label of mail.example.test, example.test its parent; CORP and the
    # build are news.
    partly = NtlmChallenge(
        target_name="CORP",
        netbios_domain="CORP",
        netbios_computer="MAIL",
        dns_domain="example.test",
        dns_computer="mail.example.test",
    )
    assert judged(read("pop3", 110, partly)) == (
        "warn",
        "AUTH NTLM before TLS on port 110 (POP3) tells anyone NetBIOS domain CORP",
    )


@pytest.mark.parametrize(
    ("dns_computer", "known"),
    [
        ("mail.example.test", True),  # the service name itself
        ("MAIL.Example.Test.", True),  # the same, as DNS compares names
        ("example.test", True),  # a parent domain of it
        ("exch01.example.test", False),  # a sibling host
        ("ample.test", False),  # a suffix that is not a parent domain
        ("test", False),  # one label, unlike any real AD DNS name
    ],
)
def test_a_dns_name_is_known_when_it_is_the_service_name_or_a_parent(
    dns_computer: str, known: bool
) -> None:
    challenge = NtlmChallenge(target_name=None, dns_computer=dns_computer)
    status, summary = judged(read("imap", 143, challenge))
    assert status == ("pass" if known else "warn")
    assert (f"DNS computer {dns_computer}" in summary) is not known


@pytest.mark.parametrize(
    ("target_name", "known"),
    [
        ("MAIL.EXAMPLE.TEST", True),  # Cyrus SASL naming the service's own host
        ("SMTP01.CORP.INTERNAL", False),  # Cyrus SASL naming an internal host
        ("MAIL", True),  # a NetBIOS-style name that is a label of the service name
        ("EXCH01", False),
    ],
)
def test_a_target_name_carried_nowhere_else_is_judged_like_a_name(
    target_name: str, known: bool
) -> None:
    # Cyrus SASL's NTLM sends only a target name: no target information, no version.
    challenge = NtlmChallenge(target_name=target_name)
    status, summary = judged(read("submission", 587, challenge))
    if known:
        assert status == "pass"
    else:
        assert (status, summary) == (
            "warn",
            f"AUTH NTLM before TLS on port 587 (SMTP submission) tells anyone NTLM target name "
            f"{target_name}",
        )


def test_windows_target_name_repeating_its_netbios_domain_is_not_named_twice() -> None:
    status, summary = judged(read("imap", 143, CONTOSO))
    assert status == "warn" and "NTLM target name" not in summary
    assert summary.count("CONTOSO") == 1


def test_the_same_names_on_several_doors_are_named_once_with_every_door() -> None:
    status, summary = judged(
        read("pop3", 110, CONTOSO), read("imap", 143, CONTOSO), read("submission", 587, CONTOSO)
    )
    assert status == "warn"
    assert summary.startswith(
        "AUTH NTLM before TLS on port 110 (POP3), port 143 (IMAP4) and port 587 (SMTP "
        f"submission) tells anyone {CONTOSO_NAMES}"
    )
    assert summary.count("EXCH01") == 1


def test_different_builds_on_different_doors_are_all_named() -> None:
    older = NtlmChallenge(target_name="CONTOSO", netbios_domain="CONTOSO", os_version="6.3.9600")
    _, summary = judged(read("pop3", 110, older), read("submission", 587, CONTOSO))
    assert summary.endswith(", and its Windows build 10.0.17763 and 6.3.9600")


def test_a_challenge_that_could_not_be_read_is_an_error_unless_another_discloses() -> None:
    broken = read("submission", 587, None, error="the challenge is not base64")
    assert judged(broken) == (
        "error",
        "could not read the NTLM challenge on port 587 (SMTP submission): the challenge is "
        "not base64",
    )
    # One door told the names: that is the finding, whatever the other did.
    assert judged(broken, read("imap", 143, CONTOSO))[0] == "warn"
    # One door read and innocent does not make the unread one innocent.
    assert judged(broken, read("imap", 143, PUBLIC))[0] == "error"


def test_without_a_service_name_every_name_is_news() -> None:
    by_address = Target("192.0.2.10", protocols=("imap",))
    status, summary = judged(read("imap", 143, PUBLIC), target=by_address)
    assert status == "warn"
    assert "DNS computer mail.example.test" in summary and "NetBIOS computer MAIL" in summary
