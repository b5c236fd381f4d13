"""Waivers end to end: real scans of the emulator (secure, then taking passwords in the
clear) recorded at chosen moments, beat's steps one at a time, and delivery to a real SMTP
server on loopback.

While a waiver holds, the check shows as excepted, the server as excepted, and no alert email
goes out; when it expires, the status is judged again from the stored facts without a rescan
and, if the check still fails, the owners are alerted once. The owners hear a week before."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.models import Alert, Notification
from popcompliance.compliance.models import CheckState
from popcompliance.inventory.models import Server, Tag
from popcompliance.waivers import settle
from popcompliance.waivers.models import Waiver
from tests.test_alerts import OWNER, PLAINTEXT, SECURE, make_server, scan
from tests.test_maintenance_alerts import beat as alerts_beat
from tests.test_maintenance_alerts import record, regress

pytest_plugins = ["tests.smtp"]

MINUTE = timedelta(minutes=1)
CHECK = "pop3.plaintext_login"
# Every moment below is counted from START, a minute boundary tomorrow.
START = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
EXPIRY = START + timedelta(days=30)


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    return make_server(fixed, settings, lab_dns)


@pytest.fixture
def reports(server, fixed):
    """One real report of each configuration, recorded again at each moment a test picks."""
    return {"secure": scan(server, fixed, SECURE), "plain": scan(server, fixed, PLAINTEXT)}


def beat(moment: datetime) -> None:
    """What beat runs every minute at `moment`: the waivers' step, then the alerts'."""
    with time_machine.travel(moment, tick=False):
        settle.settle(timezone.now())
        settle.warn_expiring(timezone.now())
    alerts_beat(moment)


def grant(on: Server | None, moment: datetime, **fields: object) -> Waiver:
    """A waiver of CHECK on server `on` from `moment` to EXPIRY, granted as the views do."""
    values: dict[str, object] = {
        "server": on,
        "check_id": CHECK,
        "justification": "legacy scanners until the migration",
        "approver": User.objects.get_or_create(username="boss")[0],
        "starts_at": moment,
        "expires_at": EXPIRY,
    }
    values.update(fields)
    with time_machine.travel(moment, tick=False):
        waiver = Waiver.objects.create(**values)
        settle.apply([waiver], timezone.now())
    return waiver


def status_of(server: Server) -> str:
    return Server.objects.get(pk=server.pk).status


def test_a_regression_under_a_waiver_is_excepted_and_sends_no_email(
    server, reports, smtp_sink, viewer
):
    grant(server, START)
    regress(server, reports, START + timedelta(hours=5))
    assert smtp_sink.received == []
    assert status_of(server) == "excepted"
    assert CheckState.objects.filter(check_id=CHECK, status="fail").exists()  # the raw facts
    alert = Alert.objects.get(check_id=CHECK)
    assert alert.maintenance == "held"
    with time_machine.travel(START + timedelta(hours=6), tick=False):
        listed = viewer.get(reverse("alerts:list")).content.decode()
        page = viewer.get(alert.get_absolute_url()).content.decode()
    assert "Waived: email held until the waiver ends" in listed
    assert "Waived: email held until the waiver ends" in page and "During maintenance" not in page


@pytest.mark.parametrize(
    ("moment", "status", "mailed"),
    [
        (EXPIRY - MINUTE, "excepted", 0),
        (EXPIRY, "non_compliant", 1),
        (EXPIRY + MINUTE, "non_compliant", 1),
    ],
)
def test_at_expiry_the_check_is_judged_again_and_the_owners_alerted_once(
    server, reports, smtp_sink, moment, status, mailed
):
    grant(server, START)
    regress(server, reports, START + timedelta(hours=5))
    beat(moment)
    assert status_of(server) == status
    alerts = [m for m in smtp_sink.received if "FAIL" in m.subject]
    assert len(alerts) == mailed
    if mailed:
        assert alerts[0].rcpt_tos == (OWNER,)
        assert "still fails now that its exception ended" in alerts[0].text
        assert "granted by boss" in alerts[0].text
        for later in (moment + MINUTE, moment + timedelta(hours=1)):
            record(server, reports["plain"], later)
            beat(later)
        assert len([m for m in smtp_sink.received if "FAIL" in m.subject]) == 1


def test_a_check_fixed_before_expiry_is_never_mailed(server, reports, smtp_sink):
    grant(server, START)
    regress(server, reports, START + timedelta(hours=5))
    record(server, reports["secure"], START + timedelta(days=2))
    for moment in (START + timedelta(days=2), EXPIRY, EXPIRY + MINUTE):
        beat(moment)
    assert [m for m in smtp_sink.received if "FAIL" in m.subject or "RECOVERED" in m.subject] == []
    assert status_of(server) == "compliant"


def test_a_waiver_granted_on_a_failing_check_excepts_it_at_once_and_holds_its_reminders(
    server, reports, smtp_sink, settings
):
    opened = START - timedelta(hours=1)
    regress(server, reports, opened)
    assert status_of(server) == "non_compliant"
    assert len(smtp_sink.received) == 1  # the alert, before any waiver
    grant(server, START)
    assert status_of(server) == "excepted"
    beat(opened + timedelta(hours=settings.POPC_REMINDER_HOURS, minutes=1))
    assert len(smtp_sink.received) == 1  # no reminder while the waiver holds


def test_revoking_judges_the_server_again_at_once(server, reports, smtp_sink):
    waiver = grant(server, START)
    regress(server, reports, START + timedelta(hours=5))
    revoked_at = START + timedelta(days=1)
    with time_machine.travel(revoked_at, tick=False):
        waiver.revoke(User.objects.get(username="boss"), timezone.now())
        settle.apply([waiver], timezone.now())
    assert status_of(server) == "non_compliant"
    beat(revoked_at + MINUTE)
    assert len([m for m in smtp_sink.received if "FAIL" in m.subject]) == 1


def test_a_tag_waiver_starting_later_excepts_each_tagged_server_from_its_start(
    server, reports, smtp_sink
):
    server.tags.add(Tag.objects.create(name="legacy"))
    regress(server, reports, START - timedelta(hours=1))
    grant(
        server,
        START - timedelta(hours=1),
        server=None,
        tag=Tag.objects.get(name="legacy"),
        starts_at=START,
    )
    assert status_of(server) == "non_compliant"
    beat(START - MINUTE)
    assert status_of(server) == "non_compliant"
    beat(START)
    assert status_of(server) == "excepted"


# --- The owners' warning a week before -------------------------------------------------------


def warnings(smtp_sink) -> list:
    return [m for m in smtp_sink.received if "expires" in m.subject]


@pytest.mark.parametrize(
    ("moment", "warned"),
    [
        (EXPIRY - timedelta(days=7) - MINUTE, 0),
        (EXPIRY - timedelta(days=7), 1),
        (EXPIRY - timedelta(days=7) + MINUTE, 1),
    ],
)
def test_the_owners_are_warned_once_a_week_before_expiry(
    server, reports, smtp_sink, moment, warned
):
    grant(server, START)
    beat(moment)
    found = warnings(smtp_sink)
    assert len(found) == warned
    if warned:
        assert found[0].rcpt_tos == (OWNER,)
        assert f"Exception for {CHECK} on server mail01 expires" in found[0].subject
        assert "legacy scanners until the migration" in found[0].text
        assert f"expires on {EXPIRY:%Y-%m-%d %H:%M}" in found[0].text
    for later in (moment + timedelta(hours=1), moment + timedelta(days=2)):
        beat(later)
    assert len(warnings(smtp_sink)) == 1


def test_the_warning_is_not_lost_while_smtp_is_down(server, smtp_sink):
    grant(server, START)
    smtp_sink.stop()
    week_before = EXPIRY - timedelta(days=7)
    beat(week_before)
    assert Notification.objects.get(kind="waiver_expiry").status == "pending"
    smtp_sink.start()
    with time_machine.travel(week_before + timedelta(minutes=5), tick=False):
        deliver_pending()
    assert len(warnings(smtp_sink)) == 1
