"""In a real browser: an operator plans a maintenance window from a server's page, and the
maintenance page, the overview and the server page show it on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from popcompliance.inventory.models import Server
from popcompliance.maintenance.models import MaintenanceWindow

pytestmark = pytest.mark.slow


def test_an_operator_plans_a_window_from_the_server_page_and_the_pages_show_it_on(
    operator_page: Page, transactional_db: None
) -> None:
    server = Server.objects.create(name="mail01", host="mail01.example.com")
    now = timezone.now().replace(second=0, microsecond=0)
    operator_page.goto(server.get_absolute_url())
    operator_page.get_by_role("link", name="Plan maintenance").click()
    operator_page.get_by_label("Name").fill("certificate swap")
    operator_page.get_by_label("Starts").fill(f"{now - timedelta(minutes=5):%Y-%m-%d %H:%M}")
    operator_page.get_by_label("Ends").fill(f"{now + timedelta(hours=2):%Y-%m-%d %H:%M}")
    operator_page.get_by_role("button", name="Save").click()
    window = MaintenanceWindow.objects.get()
    assert window.server_id == server.pk
    row = operator_page.locator(f"#window-{window.pk}")
    expect(row).to_contain_text("server mail01")
    expect(row).to_contain_text("on now")
    operator_page.goto(reverse("dashboard:overview"))
    expect(operator_page.get_by_role("region", name="Maintenance")).to_contain_text(
        "certificate swap"
    )
    operator_page.goto(server.get_absolute_url())
    panel = operator_page.get_by_role("region", name="Maintenance")
    expect(panel).to_contain_text("on now")
