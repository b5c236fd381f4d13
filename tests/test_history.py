"""The fleet as of a past moment (compliance.history) is what the dashboard showed then.

A history is made by the real recording path from real scans of the emulator, replayed at known
moments; after each step the dashboard's own state (Server.status, CheckState) is photographed.
Rebuilt from the history afterwards, every moment must match its photograph.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

import scanner
from pop3lab.config import EndpointConfig
from popcompliance.compliance.history import (
    HistoryPruned,
    checks_as_of,
    counts_as_of,
    moment,
    statuses_as_of,
    worst_by_check,
)
from popcompliance.compliance.models import Change, CheckState
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy, Server
from tests.conftest import create_lab_policy, lab_server
from tests.people import make_user, token_for

SECURE = EndpointConfig()
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin", ntlm=False)
# Three weeks ago at 08:00: within the history kept, one step a day.
START = (datetime.now(UTC) - timedelta(days=21)).replace(hour=8, minute=0, second=0, microsecond=0)


@pytest.fixture
def reports(db, fixed, settings, lab_dns):
    """One real scan report of a secure server and one of a server taking passwords in the
    clear, from the same address."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    probe = lab_server("probe", fixed.address, *fixed.ports, create_lab_policy())
    found = {}
    for label, config in (("secure", SECURE), ("plaintext", PLAINTEXT)):
        with fixed.serving(config):
            found[label] = scan_servers([Server.objects.select_related("policy").get(pk=probe.pk)])[
                probe.pk
            ]
    probe.delete()
    return found


def moved(report: scanner.ScanReport, address: str) -> scanner.ScanReport:
    """The same report as if the name now resolved to `address` instead."""
    return dataclasses.replace(
        report,
        endpoints=tuple(dataclasses.replace(e, address=address) for e in report.endpoints),
        address_checks=tuple(
            dataclasses.replace(c, address=address) for c in report.address_checks
        ),
    )


def lab_policy_row() -> Policy:
    return Policy.objects.get(name="lab")


class Timeline:
    """Servers created and scans recorded at chosen moments, with the dashboard photographed
    after each step."""

    def __init__(self, fixed) -> None:
        self.fixed = fixed
        self.photos: list[tuple[datetime, dict[int, str], dict[int, dict[str, str]]]] = []

    def add(self, name: str, when: datetime) -> Server:
        with time_machine.travel(when, tick=False):
            return lab_server(name, self.fixed.address, *self.fixed.ports, lab_policy_row())

    def record(self, server: Server, report, when: datetime, purpose="scheduled") -> None:
        with time_machine.travel(when, tick=False):
            record_report(server.pk, report, purpose=purpose, now=when)

    def pause(self, server: Server, when: datetime) -> None:
        Server.objects.get(pk=server.pk).pause(when)

    def photograph(self, when: datetime) -> None:
        statuses = dict(Server.objects.values_list("pk", "status"))
        worst: dict[int, dict[str, list[str]]] = {}
        for state in CheckState.objects.all():
            worst.setdefault(state.server_id, {}).setdefault(state.check_id, []).append(
                state.status
            )
        flat = {
            pk: {check: scanner.worst_status(found) for check, found in by.items()}
            for pk, by in worst.items()
        }
        self.photos.append((when, statuses, flat))


@pytest.fixture
def timeline(reports, fixed):
    """One step a day from three weeks ago: mail01 secure, mail02 taking passwords in the
    clear; mail01 regresses (held, then confirmed); mail02 recovers and mail03 arrives; mail01
    recovers and mail02 is paused; mail01's name moves to another address; mail04 is added and
    never scanned."""
    line = Timeline(fixed)
    secure, plaintext = reports["secure"], reports["plaintext"]
    t = START
    mail01, mail02 = line.add("mail01", t), line.add("mail02", t)
    line.record(mail01, secure, t)
    line.record(mail02, plaintext, t)
    line.photograph(t)
    t += timedelta(days=1)
    line.record(mail01, plaintext, t)  # held: one sighting is not a regression yet
    line.photograph(t)
    t += timedelta(minutes=5)
    line.record(mail01, plaintext, t, purpose="confirmation")
    line.photograph(t)
    t += timedelta(days=1)
    mail03 = line.add("mail03", t)
    line.record(mail03, secure, t)
    line.record(mail02, secure, t)
    line.photograph(t)
    t += timedelta(days=1)
    line.record(mail01, secure, t)
    line.pause(mail02, t)
    line.photograph(t)
    t += timedelta(days=1)
    line.record(mail01, moved(plaintext, "127.0.0.99"), t)
    line.photograph(t)
    line.record(mail01, moved(plaintext, "127.0.0.99"), t + timedelta(minutes=5), "confirmation")
    line.photograph(t + timedelta(minutes=5))
    t += timedelta(days=1)
    line.add("mail04", t)
    line.photograph(t)
    return line


def differences(rebuilt: dict[int, dict[str, str]], shown: dict[int, dict[str, str]]) -> set:
    """(server, check, rebuilt, shown) wherever the two disagree."""
    return {
        (pk, check, rebuilt.get(pk, {}).get(check), shown.get(pk, {}).get(check))
        for pk in rebuilt.keys() | shown.keys()
        for check in rebuilt.get(pk, {}).keys() | shown.get(pk, {}).keys()
        if rebuilt.get(pk, {}).get(check) != shown.get(pk, {}).get(check)
    }


def test_every_past_moment_shows_what_the_dashboard_showed_then(timeline):
    assert len({tuple(sorted(statuses.values())) for _, statuses, _ in timeline.photos}) > 3
    for when, statuses, worst in timeline.photos:
        assert statuses_as_of(when, Server.objects.all()) == statuses, when
        assert not differences(worst_by_check(checks_as_of(when, Server.objects.all())), worst)


def test_the_moment_before_a_step_shows_the_step_before(timeline):
    for (_, statuses, worst), (after, _, _) in pairwise(timeline.photos):
        before = after - timedelta(seconds=1)
        assert statuses_as_of(before, Server.objects.all()) == statuses, before
        rebuilt = worst_by_check(checks_as_of(before, Server.objects.all()))
        assert not differences(rebuilt, worst), before


def test_now_reads_the_dashboards_own_state(timeline):
    _, statuses, worst = timeline.photos[-1]
    assert statuses_as_of(None, Server.objects.all()) == statuses
    assert not differences(worst_by_check(checks_as_of(None, Server.objects.all())), worst)


def test_a_failing_check_says_since_when_and_why(timeline):
    confirmed = START + timedelta(days=1, minutes=5)
    mail01 = Server.objects.get(name="mail01")
    found = [
        check
        for check in checks_as_of(confirmed, Server.objects.filter(pk=mail01.pk))
        if check.check_id == "pop3.plaintext_login"
    ]
    assert [(c.status, c.since) for c in found] == [("fail", confirmed)]
    assert "plain" in found[0].summary.lower()
    assert found[0].remediation


def test_problems_only_leaves_out_what_passes(timeline):
    when = START + timedelta(days=1, minutes=5)
    problems = list(checks_as_of(when, Server.objects.all(), problems_only=True))
    every = [c for c in checks_as_of(when, Server.objects.all()) if c.status not in scanner.PASSING]
    assert problems == every
    assert {c.status for c in problems} <= {"fail", "warn", "error"}


def test_servers_added_later_are_not_counted_before_they_existed(timeline):
    counts = counts_as_of(START, Server.objects.all())
    assert counts["non_compliant"] == 1 and counts["compliant"] == 1
    assert sum(counts.values()) == 2
    last = counts_as_of(timeline.photos[-1][0], Server.objects.all())
    assert last == counts_as_of(None, Server.objects.all())
    assert last["new"] == 1 and last["paused"] == 1


def test_an_address_that_went_away_is_no_longer_counted(timeline):
    """mail01 moved to a new address taking passwords in the clear: the old address's checks
    are retired with a Change to skip each, not alerted."""
    retired = Change.objects.filter(server__name="mail01", status="skip", previous_status="pass")
    assert retired.exists()
    assert not retired.filter(alerted_at__isnull=True).exists()
    moved_at = START + timedelta(days=4, minutes=5)
    addresses = {
        c.address
        for c in checks_as_of(moved_at, Server.objects.filter(name="mail01"))
        if c.status != "skip"
    }
    assert addresses == {"", "127.0.0.99"}


def test_moments_before_the_history_kept_are_refused(settings):
    settings.POPC_CHANGE_RETENTION_DAYS = 30
    now = timezone.now()
    assert moment(None, now) is None
    assert moment(now + timedelta(days=1), now) is None
    assert moment(now - timedelta(days=29), now) == now - timedelta(days=29)
    with pytest.raises(HistoryPruned, match="30 days"):
        moment(now - timedelta(days=31), now)


# The overview's "as of" view and the API's ?as_of=, on the same history.


def day(step: int) -> str:
    return (START + timedelta(days=step)).date().isoformat()


def test_the_overview_as_of_a_day_shows_the_fleet_at_its_end(timeline, viewer):
    response = viewer.get("/", {"as_of": day(1)})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="as-of-banner"' in page
    counts = response.context["counts"]
    # The end of day 1: mail01's regression confirmed, mail02 still in the clear.
    assert counts["non_compliant"] == 2 and counts["compliant"] == 0
    assert sum(counts.values()) == 2
    assert [row.server.name for row in response.context["rows"]] == ["mail01", "mail02"]
    assert {row.server.name: row.status for row in response.context["rows"]} == {
        "mail01": "non_compliant",
        "mail02": "non_compliant",
    }
    assert response.context["cleartext"].total == 2
    # What today's panels say is not the past: they are left out.
    assert "Open alerts" not in page


def test_the_overview_as_of_filters_by_the_status_then(timeline, viewer):
    response = viewer.get("/", {"as_of": day(2), "status": "compliant"})
    assert [row.server.name for row in response.context["rows"]] == ["mail02", "mail03"]
    response = viewer.get("/", {"as_of": day(2), "exposure": "cleartext"})
    assert [row.server.name for row in response.context["rows"]] == ["mail01"]
    failing = {"as_of": day(2), "check": "pop3.plaintext_login", "result": "fail"}
    assert [row.server.name for row in viewer.get("/", failing).context["rows"]] == ["mail01"]


def test_the_overview_as_of_runs_a_bounded_number_of_queries(
    timeline, viewer, django_assert_max_num_queries
):
    with django_assert_max_num_queries(25):
        viewer.get("/", {"as_of": day(3)})


def test_a_day_before_the_history_kept_is_refused_in_words(timeline, viewer, settings):
    settings.POPC_CHANGE_RETENTION_DAYS = 7
    response = viewer.get("/", {"as_of": day(0)})
    assert response.status_code == 200
    assert "History is kept for 7 days" in response.content.decode()
    assert "as_of" not in response.context or response.context.get("as_of") is None


def test_today_is_now(timeline, viewer):
    response = viewer.get("/", {"as_of": timezone.now().date().isoformat()})
    assert response.context.get("as_of") is None
    assert "Open alerts" in response.content.decode()


@pytest.fixture
def api(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('viewer', 'api-viewer'))}")
    return client


def test_the_api_lists_servers_as_of_a_past_moment(timeline, api):
    body = api.get("/api/v1/servers/", {"as_of": day(1)}).json()
    assert {row["name"]: row["status"] for row in body["results"]} == {
        "mail01": "non_compliant",
        "mail02": "non_compliant",
    }
    mail01 = next(row for row in body["results"] if row["name"] == "mail01")
    assert mail01["checks"]["pop3.plaintext_login"] == "fail"
    assert mail01["compliant"] is False
    compliant = api.get("/api/v1/servers/", {"as_of": day(3), "status": "compliant"}).json()
    assert [row["name"] for row in compliant["results"]] == ["mail01", "mail03"]


def test_the_api_summary_as_of_agrees_with_the_overview(timeline, api, viewer):
    for step in range(6):
        summary = api.get("/api/v1/summary/", {"as_of": day(step)}).json()
        counts = viewer.get("/", {"as_of": day(step)}).context["counts"]
        assert {k: v for k, v in summary["by_status"].items() if v} == {
            k: v for k, v in counts.items() if v
        }, step
        assert summary["total"] == sum(counts.values())
    assert (
        api.get("/api/v1/summary/", {"as_of": day(1)}).json()["failing_checks"][
            "pop3.plaintext_login"
        ]
        == 2
    )


def test_the_api_refuses_a_bad_moment_in_words(timeline, api, settings):
    assert "ISO 8601" in str(api.get("/api/v1/summary/", {"as_of": "last tuesday"}).json())
    settings.POPC_CHANGE_RETENTION_DAYS = 7
    response = api.get("/api/v1/servers/", {"as_of": day(0)})
    assert response.status_code == 400
    assert "History is kept for 7 days" in str(response.json())


def test_a_location_no_longer_probed_is_retired_from_the_history(reports, fixed, settings):
    """Dropping the DMZ from a server's locations retires what it saw from there: as of later,
    its failing checks no longer count."""
    settings.POPC_LOCATIONS = ["dmz"]
    first = START
    with time_machine.travel(first, tick=False):
        server = lab_server(
            "mail05", fixed.address, *fixed.ports, lab_policy_row(), locations="default,dmz"
        )
    record_report(server.pk, reports["secure"], purpose="scheduled", now=first)
    record_report(server.pk, reports["plaintext"], purpose="scheduled", now=first, location="dmz")
    assert statuses_as_of(first, Server.objects.all())[server.pk] == "non_compliant"
    with time_machine.travel(first + timedelta(days=1), tick=False):
        server.locations = "default"
        server.save()
    later = first + timedelta(days=2)
    assert statuses_as_of(later, Server.objects.all())[server.pk] == "compliant"
    assert statuses_as_of(first, Server.objects.all())[server.pk] == "non_compliant"
    assert not CheckState.objects.filter(server=server, location="dmz").exists()
    retired = Change.objects.filter(server=server, location="dmz", status="skip")
    assert retired.filter(previous_status="fail").exists()


def test_a_check_whose_early_history_was_pruned_keeps_its_status_from_later_changes(timeline):
    """mail02 took passwords in the clear from its first scan (day 0) and recovered on day 2.
    With day 0's Changes pruned, day 1 still shows it failing, from the recovery's previous
    status, since an unknown moment."""
    mail02 = Server.objects.get(name="mail02")
    day_one = START + timedelta(days=1, hours=12)
    before = statuses_as_of(day_one, Server.objects.all())[mail02.pk]
    Change.objects.filter(server=mail02, created_at__lt=START + timedelta(hours=1)).delete()
    assert before == statuses_as_of(day_one, Server.objects.all())[mail02.pk] == "non_compliant"
    failing = [
        c
        for c in checks_as_of(day_one, Server.objects.filter(pk=mail02.pk), problems_only=True)
        if c.check_id == "pop3.plaintext_login"
    ]
    assert [(c.status, c.since) for c in failing] == [("fail", None)]


def test_a_failing_state_whose_whole_history_was_pruned_still_counts(timeline):
    """mail01 has failed at its new address since day 4: with every Change of it pruned, its
    state alone says so."""
    mail01 = Server.objects.get(name="mail01")
    day_five = START + timedelta(days=5, hours=12)
    Change.objects.filter(server=mail01).delete()
    assert statuses_as_of(day_five, Server.objects.all())[mail01.pk] == "non_compliant"


def test_impossible_or_far_days_are_words_or_now_never_a_500(timeline, api, viewer):
    assert api.get("/api/v1/summary/", {"as_of": "2026-02-30"}).status_code == 400
    assert api.get("/api/v1/servers/", {"as_of": "9999-12-31"}).status_code == 200
    response = viewer.get("/", {"as_of": "9999-12-31"})
    assert response.status_code == 200 and response.context.get("as_of") is None
