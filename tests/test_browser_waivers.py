"""In a real browser: an admin grants an exception from a server's failing check, and the
server page, the overview's matrix and the Waivers page show it excepted; the admin revokes
it and the check fails again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from popcompliance.waivers.models import Waiver
from tests.test_dashboard_views import make_server

pytestmark = pytest.mark.slow

CHECK = "pop3.plaintext_login"


def test_an_admin_grants_an_exception_from_the_failing_check_and_revokes_it(
    admin_page: Page, transactional_db: None
) -> None:
    server = make_server("mail01", "non_compliant", checks={CHECK: "fail"})
    expires = timezone.now() + timedelta(days=60)
    admin_page.goto(server.get_absolute_url())
    row = admin_page.locator(f'[id="check-{CHECK}"]')
    row.get_by_role("link", name="Grant exception").click()
    expect(admin_page.get_by_label("Check")).to_have_value(CHECK)
    admin_page.get_by_label("Justification").fill("Legacy scanners until the March migration")
    admin_page.get_by_label("Expires (UTC)").fill(f"{expires:%Y-%m-%d %H:%M}")
    admin_page.get_by_role("button", name="Grant").click()
    waiver = Waiver.objects.get()
    assert (waiver.server_id, waiver.check_id) == (server.pk, CHECK)
    expect(admin_page.locator("h1")).to_contain_text("Excepted")
    expect(admin_page.locator(f'[id="check-{CHECK}"]')).to_contain_text("accepted by admin")
    admin_page.goto(reverse("dashboard:overview"))
    expect(admin_page.locator(f'td[title="{CHECK}: excepted"]')).to_have_count(1)
    admin_page.goto(reverse("waivers:list"))
    listed = admin_page.locator(f"#waiver-{waiver.pk}")
    expect(listed).to_contain_text("in force")
    listed.get_by_role("button", name="Revoke").click()
    expect(admin_page.locator(f"#waiver-{waiver.pk}")).to_contain_text("revoked")
    admin_page.goto(server.get_absolute_url())
    expect(admin_page.locator("h1")).to_contain_text("Non-compliant")
