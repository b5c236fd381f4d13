"""Waivers in the fleet as of a past moment (compliance.history): a waiver in force then shows
its check as excepted and its server as excepted, as the dashboard showed it at the time; one
expired by then does not. A real history, recorded from real scans of the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from pop3lab.config import EndpointConfig
from popcompliance.compliance.history import (
    checks_as_of,
    counts_as_of,
    statuses_as_of,
    worst_by_check,
)
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Server
from popcompliance.waivers import settle
from popcompliance.waivers.models import Waiver
from tests.conftest import create_lab_policy, lab_server
from tests.people import make_user, token_for

CHECK = "pop3.plaintext_login"
START = (datetime.now(UTC) - timedelta(days=10)).replace(hour=8, minute=0, second=0, microsecond=0)
GRANTED, EXPIRY = START + timedelta(days=2), START + timedelta(days=4)


def record(server: Server, report, when: datetime, purpose: str = "scheduled") -> None:
    with time_machine.travel(when, tick=False):
        record_report(server.pk, report, purpose=purpose, now=when)


@pytest.fixture
def mail01(db, fixed, settings, lab_dns) -> Server:
    """Secure on day 0, taking passwords in the clear from day 1 (confirmed), waived from day
    2 to day 4, the beat step run at each end."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    with time_machine.travel(START, tick=False):
        server = lab_server("mail01", fixed.address, *fixed.ports, create_lab_policy())
    reports = {}
    for label, config in (
        ("secure", EndpointConfig()),
        ("plain", EndpointConfig(login_type="PlainTextLogin")),
    ):
        with fixed.serving(config):
            reports[label] = scan_servers(
                [Server.objects.select_related("policy").get(pk=server.pk)]
            )[server.pk]
    record(server, reports["secure"], START)
    record(server, reports["plain"], START + timedelta(days=1))
    record(server, reports["plain"], START + timedelta(days=1, minutes=5), "confirmation")
    with time_machine.travel(GRANTED, tick=False):
        waiver = Waiver.objects.create(
            server=server,
            check_id=CHECK,
            justification="legacy scanners",
            approver=make_user("admin", "boss"),
            starts_at=GRANTED,
            expires_at=EXPIRY,
        )
        settle.apply([waiver], GRANTED)
    for moment in (EXPIRY - timedelta(minutes=1), EXPIRY):
        with time_machine.travel(moment, tick=False):
            settle.settle(timezone.now())
    return server


def status_at(when: datetime) -> str:
    return statuses_as_of(when, Server.objects.all())[Server.objects.get().pk]


@pytest.mark.parametrize(
    ("when", "status"),
    [
        (START + timedelta(days=1, hours=1), "non_compliant"),
        (GRANTED - timedelta(minutes=1), "non_compliant"),
        (GRANTED, "excepted"),
        (EXPIRY - timedelta(minutes=1), "excepted"),
        (EXPIRY, "non_compliant"),
    ],
)
def test_the_status_as_of_a_moment_counts_the_waivers_in_force_then(mail01, when, status):
    assert status_at(when) == status
    assert counts_as_of(when, Server.objects.all())[status] == 1


def test_a_waived_check_as_of_then_is_excepted_and_keeps_its_verdict(mail01):
    during = GRANTED + timedelta(days=1)
    [check] = [c for c in checks_as_of(during, Server.objects.all()) if c.check_id == CHECK]
    assert (check.status, check.verdict, check.raw_status) == ("excepted", "fail", "fail")
    assert (
        worst_by_check(checks_as_of(during, Server.objects.all()))[mail01.pk][CHECK] == "excepted"
    )
    after = worst_by_check(checks_as_of(EXPIRY + timedelta(hours=1), Server.objects.all()))
    assert after[mail01.pk][CHECK] == "fail"


def test_the_dashboard_then_and_the_rebuilt_past_agree(mail01, viewer):
    """What the stored status said while the waiver held (photographed by re-settling at that
    moment) is what the history rebuilds."""
    during = GRANTED + timedelta(hours=6)
    with time_machine.travel(during, tick=False):
        settle.resettle([mail01.pk], timezone.now())
        live = viewer.get("/").context
    assert Server.objects.get().status == status_at(during) == "excepted"
    live_row = {cell.check_id: cell.status for cell in live["rows"][0].cells}
    assert live_row[CHECK] == "excepted"
    day = (GRANTED + timedelta(days=1)).date().isoformat()
    past = viewer.get("/", {"as_of": day}).context
    assert past["counts"]["excepted"] == 1
    past_row = {cell.check_id: cell.status for cell in past["rows"][0].cells}
    assert past_row[CHECK] == "excepted" and past["rows"][0].status == "excepted"


def test_the_api_as_of_shows_the_waiver_in_force_then(mail01):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('viewer', 'api-viewer'))}")
    day = (GRANTED + timedelta(days=1)).date().isoformat()
    [row] = api.get("/api/v1/servers/", {"as_of": day}).json()["results"]
    assert (row["status"], row["checks"][CHECK]) == ("excepted", "excepted")
    summary = api.get("/api/v1/summary/", {"as_of": day}).json()
    assert summary["by_status"]["excepted"] == 1
    later = (EXPIRY + timedelta(days=1)).date().isoformat()
    [row] = api.get("/api/v1/servers/", {"as_of": later}).json()["results"]
    assert (row["status"], row["checks"][CHECK]) == ("non_compliant", "fail")
