"""The check catalog as data: one entry per check, the lists derived from it, and statuses the
entries explain. No network."""

from __future__ import annotations

import pytest

import scanner
from scanner._catalog import CATALOG, CHECKS, AddressCheck, TargetCheck
from scanner._facts import DnsFacts
from tests.test_evaluate import checks, endpoint, only_995, pop3, pop3s, support

SWEET32 = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
STATIC_RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"

SPEC = CATALOG[0]


def test_every_check_has_one_entry_and_each_id_list_keeps_catalog_order() -> None:
    assert len(CHECKS) == len(CATALOG)  # no id twice
    split = scanner.ADDRESS_CHECK_IDS + scanner.TARGET_CHECK_IDS
    assert sorted(split) == sorted(scanner.CHECK_IDS)
    for ids in (scanner.ADDRESS_CHECK_IDS, scanner.CLEARTEXT_PASSWORD_CHECK_IDS):
        assert list(ids) == [i for i in scanner.CHECK_IDS if i in ids]
    assert "pop3.plaintext_login" in scanner.CLEARTEXT_PASSWORD_CHECK_IDS


def test_an_entry_is_an_address_or_a_target_check() -> None:
    assert {type(spec) for spec in CATALOG} == {AddressCheck, TargetCheck}


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "Pop3 Login"},
        {"meanings": {"fail": "x"}},
        {"meanings": {"pass": "x", "ok": "y"}},
        {"short": ""},
        {"short": "A heading far too long for a column"},
    ],
    ids=["id not family.name", "no pass", "not a status", "no short", "short too long"],
)
def test_an_entry_refuses_what_the_pages_could_not_show(changes: dict[str, object]) -> None:
    fields = {
        "id": SPEC.id,
        "title": SPEC.title,
        "short": SPEC.short,
        "question": SPEC.question,
        "meanings": SPEC.meanings,
        "remediation": SPEC.remediation,
        "evaluate": SPEC.evaluate,
    }
    with pytest.raises(ValueError):
        AddressCheck(**{**fields, **changes})  # type: ignore[arg-type]


def test_each_group_is_one_run_of_the_catalog_so_pages_head_it_once() -> None:
    groups = [spec.group for spec in CATALOG]
    runs = [group for i, group in enumerate(groups) if i == 0 or groups[i - 1] != group]
    assert runs == [
        "POP3",
        "IMAP4",
        "SMTP submission",
        "Authentication",
        "TLS",
        "Certificate",
        "DNS",
    ]


def test_the_title_of_an_id_the_catalog_no_longer_has_is_the_id() -> None:
    assert scanner.check_title("pop3.stls") == "STLS offered and works"
    assert scanner.check_title("retired.check") == "retired.check"


@pytest.mark.parametrize(
    "facts",
    [
        {},
        {"endpoints": (only_995("exchange_self_signed"),)},
        {
            "endpoints": (
                endpoint(
                    pop3=pop3(outcome="timeout", stls=None),
                    pop3s=pop3s(outcome="timeout", tls=None, support=None),
                ),
            )
        },
        {"endpoints": (endpoint(pop3s=pop3s(support=support({"TLSv1": (SWEET32,)}))),)},
        {"endpoints": (endpoint(pop3s=pop3s(support=support({"TLSv1.2": (STATIC_RSA,)}))),)},
        {"endpoints": (only_995("expiring_soon"), only_995("wrong_name"))},
        {"dns": DnsFacts("mail.example.test", "nxdomain"), "endpoints": ()},
    ],
    ids=[
        "good",
        "Exchange self-signed, 110 closed",
        "timeouts",
        "TLS 1.0 with 3DES",
        "static RSA",
        "two certificates",
        "no such name",
    ],
)
def test_every_status_a_check_gives_is_one_its_entry_explains(facts: dict[str, object]) -> None:
    endpoints = facts.pop("endpoints", ())
    results = checks(*endpoints, **facts)  # type: ignore[arg-type]
    unexplained = [(i, r.status) for i, r in results.items() if r.status not in CHECKS[i].meanings]
    assert unexplained == []
