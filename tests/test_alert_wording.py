"""The alerts pages' wording: the resolved tab's empty state, and the acknowledgement's end
typed and shown as ISO 8601 in UTC like every other time on the page."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from popcompliance.alerts.models import Alert
from tests.test_alert_views import acknowledge_url, make_alert
from tests.test_dashboard_views import make_server

pytestmark = pytest.mark.django_db


def test_the_resolved_tab_when_empty_does_not_suggest_alerts_are_deleted(viewer):
    html = viewer.get(reverse("alerts:list") + "?state=resolved").content.decode()
    assert "No alert has been resolved yet" in html
    assert "kept" not in html and "deleted" not in html


def test_an_acknowledgement_end_typed_as_iso_utc_is_stored_as_that_utc_moment(operator):
    alert = make_alert(make_server("mail01"))
    until = (timezone.now() + timedelta(days=2)).astimezone(UTC).replace(second=0, microsecond=0)
    data = {"comment": "change window", "until": f"{until:%Y-%m-%d %H:%M}"}
    assert operator.post(acknowledge_url(alert), data).status_code == 302
    assert Alert.objects.get().ack_until == until
    html = operator.get(alert.get_absolute_url()).content.decode()
    assert f'until <time datetime="{until.isoformat()}">{until:%Y-%m-%d %H:%M}</time>' in html
    assert f'value="{until:%Y-%m-%d %H:%M}"' in html  # the form shows it back the same way


def test_the_form_asks_for_the_end_as_iso_in_utc(operator):
    alert = make_alert(make_server("mail01"))
    html = operator.get(alert.get_absolute_url()).content.decode()
    assert 'placeholder="YYYY-MM-DD HH:MM"' in html
    assert "as YYYY-MM-DD HH:MM in UTC" in html
    assert "datetime-local" not in html


def test_an_end_in_another_format_is_refused_in_words(operator):
    alert = make_alert(make_server("mail01"))
    data = {"comment": "change window", "until": "31/12/2099 6pm"}
    response = operator.post(acknowledge_url(alert), data)
    assert "Write the moment as YYYY-MM-DD HH:MM" in response.content.decode()
    assert Alert.objects.get().acknowledged_at is None
