"""Waivers: the model's rules (expiry mandatory and within a year, a server or a tag, a known
check), when one is in force, which (server, check) pairs it covers, and what it makes of a
server's status. Real database rows; the time boundaries one minute before, at and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from popcompliance.compliance.models import CheckState
from popcompliance.compliance.recording import settled_status
from popcompliance.inventory.models import Server, ServerStatus, Tag
from popcompliance.waivers.effect import EXCEPTED, shown_status, waived_pairs
from popcompliance.waivers.models import Waiver

pytestmark = pytest.mark.django_db

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
EXPIRY = START + timedelta(days=90)
MINUTE = timedelta(minutes=1)
CHECK = "pop3.plaintext_login"


@pytest.fixture
def approver() -> User:
    return User.objects.create_user("boss")


def make_server(name: str = "mail01", tags: tuple[str, ...] = ()) -> Server:
    server = Server.objects.create(name=name, host=f"{name}.example.com")
    server.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in tags])
    return server


@pytest.fixture(autouse=True)
def granted_before_start():
    """Every waiver here is granted the day before START: one is in force only from its
    grant on (a backdated start does not rewrite the past)."""
    with time_machine.travel(START - timedelta(days=1), tick=False):
        yield


def waiver(approver: User, **fields: object) -> Waiver:
    values: dict[str, object] = {
        "check_id": CHECK,
        "justification": "legacy scanners until the March migration",
        "approver": approver,
        "starts_at": START,
        "expires_at": EXPIRY,
    }
    values.update(fields)
    return Waiver(**values)


def errors_of(candidate: Waiver) -> dict[str, list[str]]:
    try:
        candidate.full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


# --- The model's rules -----------------------------------------------------------------------


def test_a_waiver_of_a_known_check_on_a_server_until_a_set_day_is_valid(approver):
    assert errors_of(waiver(approver, server=make_server())) == {}


def test_the_expiry_is_mandatory(approver):
    assert "expires_at" in errors_of(waiver(approver, server=make_server(), expires_at=None))


@pytest.mark.parametrize(
    ("term", "valid"),
    [(timedelta(days=366), True), (timedelta(days=366, minutes=1), False), (-MINUTE, False)],
)
def test_the_expiry_comes_after_the_start_and_at_most_a_year_later(approver, term, valid):
    found = errors_of(waiver(approver, server=make_server(), expires_at=START + term))
    assert ("expires_at" not in found) is valid


def test_it_covers_exactly_one_of_a_server_or_a_tag(approver):
    tag = Tag.objects.create(name="legacy")
    assert "__all__" in errors_of(waiver(approver))
    assert "__all__" in errors_of(waiver(approver, server=make_server(), tag=tag))
    assert errors_of(waiver(approver, tag=tag)) == {}


def test_an_unknown_check_is_refused_in_words(approver):
    found = errors_of(waiver(approver, server=make_server(), check_id="pop3.nonsense"))
    assert "is not a check of the catalog" in found["check_id"][0]


def test_a_justification_is_required(approver):
    assert "justification" in errors_of(waiver(approver, server=make_server(), justification=""))


# --- In force --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "holds"),
    [
        (START - MINUTE, False),
        (START, True),
        (EXPIRY - MINUTE, True),
        (EXPIRY, False),
        (EXPIRY + MINUTE, False),
    ],
)
def test_a_waiver_is_in_force_from_its_start_until_its_expiry(approver, moment, holds):
    saved = waiver(approver, server=make_server())
    saved.save()
    assert Waiver.objects.in_force(moment).exists() is holds
    assert saved.holds_at(moment) is holds


def test_a_revoked_waiver_stops_holding_at_its_revocation_and_stays_on_record(approver):
    saved = waiver(approver, server=make_server())
    saved.save()
    revoked_at = START + timedelta(days=3)
    saved.revoke(approver, revoked_at)
    assert Waiver.objects.in_force(revoked_at - MINUTE).exists()
    assert not Waiver.objects.in_force(revoked_at).exists()
    assert saved.state(revoked_at) == "revoked" and Waiver.objects.count() == 1


def test_tag_waivers_cover_each_server_with_the_tag_in_one_query(
    approver, django_assert_num_queries
):
    tagged = [make_server(f"edge{n}", tags=("legacy",)) for n in range(3)]
    alone = make_server("core01")
    waiver(approver, tag=Tag.objects.get(name="legacy")).save()
    waiver(approver, server=alone, check_id="cert.name").save()
    waiver(approver, server=alone, check_id="pop3.stls", expires_at=START + MINUTE).save()
    ids = [server.pk for server in [*tagged, alone]]
    with django_assert_num_queries(1):
        pairs = waived_pairs(ids, START + timedelta(days=1))
    assert pairs == {*((s.pk, CHECK) for s in tagged), (alone.pk, "cert.name")}


def test_the_whole_fleet_may_be_asked_with_a_subquery(approver):
    server = make_server(tags=("legacy",))
    waiver(approver, tag=Tag.objects.get(name="legacy")).save()
    assert waived_pairs(Server.objects.values("pk"), START) == {(server.pk, CHECK)}


# --- What a waiver makes of statuses ---------------------------------------------------------


def states(**statuses: str) -> list[CheckState]:
    return [CheckState(check_id=check, status=status) for check, status in statuses.items()]


@pytest.mark.parametrize(
    ("status", "shown"),
    [("fail", EXCEPTED), ("warn", EXCEPTED), ("error", "error"), ("pass", "pass")],
)
def test_a_waiver_shows_a_fail_or_warn_as_excepted_and_nothing_else(status, shown):
    assert shown_status(status, waived=True) == shown
    assert shown_status(status, waived=False) == status


@pytest.mark.parametrize(
    ("found", "waived", "expected"),
    [
        ({"a": "fail", "b": "pass"}, {"a"}, ServerStatus.EXCEPTED),
        ({"a": "fail", "b": "fail"}, {"a"}, ServerStatus.NON_COMPLIANT),
        ({"a": "fail", "b": "error"}, {"a"}, ServerStatus.UNKNOWN),
        ({"a": "warn", "b": "pass"}, {"a"}, ServerStatus.EXCEPTED),
        ({"a": "fail", "b": "warn"}, {"a"}, ServerStatus.EXCEPTED),
        ({"a": "warn", "b": "pass"}, set(), ServerStatus.COMPLIANT),
        ({"a": "pass", "b": "pass"}, {"a"}, ServerStatus.COMPLIANT),
        ({"a": "fail", "b": "pass"}, set(), ServerStatus.NON_COMPLIANT),
    ],
)
def test_a_server_whose_only_failures_and_warnings_are_waived_is_excepted(found, waived, expected):
    assert settled_status(states(**found), waived) == expected


def test_a_waiver_granted_with_a_past_start_holds_only_from_its_grant(approver):
    saved = waiver(approver, server=make_server(), starts_at=START - timedelta(days=30))
    saved.save()
    granted = saved.created_at
    assert not Waiver.objects.in_force(granted - MINUTE).exists()
    assert Waiver.objects.in_force(granted).exists()


def test_joining_or_leaving_a_waived_tag_settles_the_servers_status_at_once(approver):
    server = make_server("edge01")
    CheckState.objects.create(
        server=server, check_id=CHECK, status="fail", summary="in the clear", since=START
    )
    server.settle_status("non_compliant", START)
    server.save()
    legacy = Tag.objects.create(name="legacy")
    waiver(approver, tag=legacy).save()
    with time_machine.travel(START + timedelta(days=1), tick=False):
        server.tags.add(legacy)
        assert Server.objects.get(pk=server.pk).status == "excepted"
        legacy.servers.clear()
        assert Server.objects.get(pk=server.pk).status == "non_compliant"
        legacy.servers.add(server)
        assert Server.objects.get(pk=server.pk).status == "excepted"
        server.tags.remove(legacy)
        assert Server.objects.get(pk=server.pk).status == "non_compliant"
