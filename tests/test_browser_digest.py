"""The daily digest's HTML body as a mail client's browser engine shows it (Chromium), for the
README's fleet of mixed states: sections in order, alerts linking to their pages, nothing
fetched from anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from popcompliance.alerts.digest import queue_digests
from popcompliance.alerts.models import Alert, Notification
from tests.browser import screenshot
from tests.people import make_user
from tests.test_browser import fleet, policy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

OPS = "ops@corp.example"


@pytest.mark.usefixtures("fleet")
def test_the_digest_reads_well_in_a_browser(new_page: Callable[[], Page], settings: Any) -> None:
    settings.POPC_ALERT_RECIPIENTS = [OPS]
    settings.POPC_DIGEST_HOUR = 7
    settings.SITE_URL = "https://popc.corp.example"
    plaintext = Alert.objects.get(server__name="cas02-london")
    plaintext.acknowledge(make_user("operator", "dana"), "Legacy scanner app; reverting tonight.")
    assert queue_digests([OPS], timezone.now()) == 1
    mail = Notification.objects.get(kind="digest", to=OPS)

    page = new_page()
    page.set_content(mail.body_html)
    headings = page.get_by_role("heading").all_inner_texts()
    assert headings[0].startswith("Daily digest, ")
    assert [h.split(" (")[0] for h in headings[1:]] == [
        "Open alerts",
        "Opened in the last 24 hours",
        "Certificates expiring within 30 days",
    ]
    open_alerts = page.get_by_role("list").first.get_by_role("listitem")
    expect(open_alerts.last).to_contain_text("acknowledged by dana")
    link = open_alerts.last.get_by_role("link", name="no password accepted before TLS")
    expect(link).to_have_attribute("href", f"https://popc.corp.example/alerts/{plaintext.pk}/")
    expiring = page.get_by_role("list").last.get_by_role("listitem")
    expect(expiring.first).to_contain_text("EXPIRED")
    expect(expiring.first).to_contain_text("on cas03-paris")
    expect(expiring.last).to_contain_text("on pop-berlin")
    expect(page.get_by_role("link", name="Open the overview")).to_be_visible()
    assert f"{settings.POPC_DIGEST_HOUR}:00 UTC" in page.inner_text("body")
    screenshot(page, "digest")
