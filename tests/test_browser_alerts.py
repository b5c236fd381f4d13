"""In a real browser: the overview's email banner while the SMTP server (a real one on
loopback) is down and after it is back, and an expired certificate's alert on the alerts page
and the server page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.models import Alert, Notification
from popcompliance.inventory.models import Server
from tests.test_browser import fleet, policy  # noqa: F401 (fixtures)
from tests.test_delivery import outbox

pytestmark = pytest.mark.slow

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]


def deliver_at(moment: Any) -> None:
    with time_machine.travel(moment, tick=False):
        deliver_pending()
    # The banner is cached for half a minute; the test looks at once.
    cache.clear()


def test_the_email_banner_names_the_refusing_smtp_server_and_goes_when_mail_leaves(
    viewer_page: Page, transactional_db: None, smtp_sink: Any
) -> None:
    outbox("ops@example.test", "owner@example.test")
    smtp_sink.stop()
    queued = timezone.now()
    deliver_at(queued)
    viewer_page.goto(reverse("dashboard:overview"))
    banner = viewer_page.locator("#email-health")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text(
        f"Email is not leaving: SMTP at 127.0.0.1:{smtp_sink.port} refuses connections."
    )
    expect(banner).to_contain_text(f"2 emails waiting since {queued:%Y-%m-%d %H:%M} UTC")
    smtp_sink.start()
    deliver_at(queued + timedelta(minutes=2))
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    viewer_page.reload()
    expect(viewer_page.get_by_role("heading", name="Fleet overview")).to_be_visible()
    expect(viewer_page.locator("#email-health")).to_have_count(0)
    assert len(smtp_sink.received) == 2


@pytest.mark.usefixtures("fleet")
def test_an_expired_certificate_is_an_open_alert_on_the_alerts_and_server_pages(
    viewer_page: Page,
) -> None:
    server = Server.objects.get(name="cas03-paris")
    alert = Alert.objects.get(server=server)
    viewer_page.get_by_role("link", name="Alerts", exact=True).click()
    row = viewer_page.locator(f"#alert-{alert.pk}")
    expect(row).to_contain_text("cas03-paris")
    expect(row).to_contain_text("cert.validity")
    expect(row).to_contain_text("expired on")
    row.get_by_role("link", name="cas03-paris").click()
    expect(viewer_page.get_by_role("heading", name="cas03-paris")).to_be_visible()
    alerts = viewer_page.locator("section", has=viewer_page.locator("#server-alerts-heading"))
    expect(alerts.get_by_role("link", name="cert.validity")).to_be_visible()
    alerts.get_by_role("link", name="cert.validity").click()
    expect(viewer_page.get_by_text("the certificate expiry warnings mail one")).to_be_visible()
