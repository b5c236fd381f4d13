"""One certificate has one count of days left everywhere: the scanner's summary, its report,
the dashboard's pages and the emails all round down through scanner.whole_days_left."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.template.loader import render_to_string

from popcompliance.dashboard.templatetags.dashboard import countdown, days_left, expiry_colour
from scanner import whole_days_left
from scanner._report import report_to_dict
from tests.test_evaluate import NOW, chain_of, check, only_995, pop3s, tls
from tests.test_report import STARTED, make_certificate, make_endpoint, make_report, make_tls

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (DAY, 1),
        (DAY - SECOND, 0),
        (SECOND, 0),
        (timedelta(0), 0),
        (-SECOND, -1),
        (-DAY, -1),
        (-DAY - SECOND, -2),
        (364 * DAY + timedelta(hours=14), 364),
    ],
)
def test_whole_days_left_rounds_down_at_every_boundary(left, expected):
    assert whole_days_left(NOW + left, NOW) == expected


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (DAY + SECOND, "in 1 day"),
        (DAY - SECOND, "expires today"),
        (-SECOND, "expired today"),
        (-DAY + SECOND, "expired today"),
        (-DAY - SECOND, "expired 1 day ago"),
    ],
)
def test_the_pages_countdown_around_expiry(left, shown):
    assert countdown(NOW + left, NOW) == shown


def test_the_colour_changes_at_whole_days():
    assert expiry_colour(NOW + 7 * DAY, NOW) == "amber"
    assert expiry_colour(NOW + 7 * DAY - SECOND, NOW) == "red"


def endpoint_expiring_in(left: timedelta):
    leaf, *rest = chain_of()
    leaf = replace(leaf, not_after=NOW + left)
    return replace(only_995(), pop3s=pop3s(tls=replace(tls(), chain=(leaf, *rest)))), leaf


def test_a_certificate_with_364_and_a_half_days_reads_364_everywhere():
    left = 364 * DAY + timedelta(hours=14)  # rounding to nearest would say 365
    endpoint, leaf = endpoint_expiring_in(left)
    assert "(364 days left)" in check("cert.validity", endpoint, now=NOW).summary
    assert countdown(leaf.not_after, NOW) == "in 364 days"
    assert days_left(leaf.not_after, NOW) == "364 days"
    mail = render_to_string(
        "emails/expiry.txt",
        {"certificate": leaf, "name": "pop.example.com", "expired": False, "now": NOW},
    )
    assert "in 364 days." in mail


@pytest.mark.parametrize(("hours", "shown"), [(6 * 24 + 12, "in 6 days"), (12, "today")])
def test_a_critical_summary_counts_whole_days_like_the_pages(hours, shown):
    endpoint, _ = endpoint_expiring_in(timedelta(hours=hours))
    assert f", {shown} (critical)" in check("cert.validity", endpoint, now=NOW).summary


def test_the_json_report_counts_half_a_day_short_of_365_as_364():
    endpoint = make_endpoint()
    leaf = make_certificate(not_after=STARTED + 364 * DAY + timedelta(hours=14))
    endpoint = replace(endpoint, pop3s=replace(endpoint.pop3s, tls=make_tls(leaf)))
    data = report_to_dict(make_report(endpoints=(endpoint,)))
    assert data["endpoints"][0]["pop3s"]["tls"]["chain"][0]["days_left"] == 364
