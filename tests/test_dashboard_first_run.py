"""The overview as a new install first shows it: the empty fleet, the "accepts passwords in
the clear" view, the trend before any snapshot, and how times read ("just now")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

import scanner
from popcompliance.compliance.models import FleetSnapshot
from popcompliance.dashboard.catalog import CLEARTEXT_CHECKS
from popcompliance.dashboard.templatetags.dashboard import ago, duration
from tests.test_dashboard_views import make_server

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("dashboard:overview")
ADD = reverse("inventory:server_add")
IMPORT = reverse("inventory:server_import")


def test_an_admin_with_no_server_is_offered_to_add_one_or_import_a_csv(admin):
    html = admin.get(OVERVIEW).content.decode()
    assert "No server is monitored yet" in html
    assert f'href="{ADD}">Add your first server</a>' in html
    assert f'href="{IMPORT}">Import a CSV</a>' in html
    assert "No server matches these filters" not in html
    assert 'aria-label="Filter servers"' not in html  # nothing to filter yet


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_who_may_not_add_servers_is_told_who_can(role, request):
    html = request.getfixturevalue(role).get(OVERVIEW).content.decode()
    assert "No server is monitored yet" in html
    assert "An administrator adds them" in html
    assert ADD not in html and IMPORT not in html


def test_filters_that_hide_every_server_say_so_not_that_there_are_none(admin):
    make_server("mail01")
    html = admin.get(OVERVIEW + "?q=nothing-like-this").content.decode()
    assert "No server matches these filters" in html
    assert "Add your first server" not in html
    assert 'aria-label="Filter servers"' in html


def test_the_cleartext_checks_are_one_list_the_scanner_owns():
    assert scanner.CLEARTEXT_PASSWORD_CHECK_IDS == (
        "pop3.plaintext_login",
        "imap.plaintext_login",
        "submission.plaintext_auth",
    )
    assert [spec.id for spec in CLEARTEXT_CHECKS] == list(scanner.CLEARTEXT_PASSWORD_CHECK_IDS)


def test_the_cleartext_tile_counts_servers_failing_a_cleartext_check(viewer):
    make_server("open01", "non_compliant", checks={"pop3.plaintext_login": "fail"})
    make_server("open02", "non_compliant", checks={"pop3.plaintext_login": "fail"})
    make_server("warn01", "unknown", checks={"pop3.plaintext_login": "error"})
    make_server("other01", "non_compliant", checks={"cert.name": "fail"})
    response = viewer.get(OVERVIEW)
    assert response.context["cleartext"].total == 2
    assert f'href="{OVERVIEW}?exposure=cleartext"' in response.content.decode()


def test_the_cleartext_view_lists_only_servers_accepting_passwords_in_the_clear(viewer):
    make_server("open01", "non_compliant", checks={"pop3.plaintext_login": "fail"})
    make_server("warn01", "unknown", checks={"pop3.plaintext_login": "error"})
    make_server("other01", "non_compliant", checks={"cert.name": "fail"})
    rows = viewer.get(OVERVIEW + "?exposure=cleartext").context["rows"]
    assert [row.server.name for row in rows] == ["open01"]


def test_with_none_in_the_clear_the_cleartext_view_says_no_server_matches(viewer):
    make_server("fine01")
    response = viewer.get(OVERVIEW + "?exposure=cleartext")
    assert response.context["cleartext"].total == 0
    assert "No server matches these filters" in response.content.decode()


def test_before_any_snapshot_the_trend_is_one_line_beside_no_chart(viewer):
    html = viewer.get(OVERVIEW).content.decode()
    assert 'class="overview-grid no-trend"' in html
    assert "trend-chart" not in html and 'data-days="30"' not in html


def test_with_a_snapshot_the_trend_draws_its_chart(viewer):
    now = timezone.now()
    FleetSnapshot.objects.create(day=now.date(), total=1, compliant=1, taken_at=now)
    html = viewer.get(OVERVIEW).content.decode()
    assert 'class="overview-grid"' in html and "trend-chart" in html


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "just now"), (59, "just now"), (60, "1\xa0minute ago"), (3 * 3600, "3\xa0hours ago")],
)
def test_times_read_just_now_within_a_minute(seconds, expected):
    now = timezone.now()
    assert ago(now - timedelta(seconds=seconds), now) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, "under a minute"), (59, "under a minute"), (120, "2\xa0minutes")]
)
def test_durations_under_a_minute_do_not_read_zero_minutes(seconds, expected):
    now = timezone.now()
    assert duration(now - timedelta(seconds=seconds), now) == expected


def test_a_server_scanned_seconds_ago_reads_just_now_on_the_overview(viewer):
    make_server("mail01")
    html = viewer.get(OVERVIEW).content.decode()
    assert "just now" in html
    assert "0\xa0minutes" not in html
