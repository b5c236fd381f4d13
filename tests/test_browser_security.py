"""Monitoring credentials and the audit log in a real browser: an admin gives a server a
monitoring account, the scan logs in with it over TLS, and the audit log says who did it without
the password."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from pop3lab.config import EndpointConfig
from popcompliance.inventory.models import Policy, Server
from tests.browser import screenshot
from tests.conftest import create_lab_policy
from tests.test_browser import add_server, check_row, field, scan_and_record

pytestmark = pytest.mark.slow

MONITOR, PASSWORD = "popc-monitor", "Tr0ub4dor&3-monitor"


@pytest.fixture
def lab_policy(transactional_db: None, settings: Any, lab_dns: Any) -> Policy:
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    return create_lab_policy()


def test_an_admin_sets_a_monitoring_account_that_logs_in_over_tls_and_is_audited(
    admin_page: Page, emulated: Any, lab_policy: Policy
) -> None:
    endpoint = emulated.start(EndpointConfig(accounts=((MONITOR, PASSWORD),)))
    server = add_server("cas08-lab", endpoint, lab_policy)

    admin_page.goto(server.get_absolute_url())
    admin_page.get_by_role("link", name="Edit").first.click()
    monitoring = admin_page.get_by_role("group", name=re.compile("Monitoring account"))
    field(monitoring, "Username").fill(MONITOR)
    field(monitoring, "Password").fill(PASSWORD)
    admin_page.get_by_role("button", name="Save").click()
    expect(admin_page.get_by_role("status")).to_contain_text("Saved cas08-lab")

    # Stored encrypted, never rendered back: not in the field, not anywhere in the HTML.
    admin_page.goto(reverse("inventory:server_edit", args=[server.pk]))
    expect(field(admin_page, "Password")).to_have_value("")
    expect(admin_page.get_by_text(re.compile("A password is stored"))).to_be_visible()
    assert PASSWORD not in admin_page.content()
    stored = Server.objects.get(pk=server.pk)
    assert stored.monitor_username == MONITOR
    assert PASSWORD not in stored.monitor_password_encrypted

    scan_and_record(stored)
    admin_page.goto(server.get_absolute_url())
    expect(check_row(admin_page, "pop3.tls_login")).to_contain_text("pass")
    expect(check_row(admin_page, "pop3.tls_login")).to_contain_text("POP3S")
    assert PASSWORD not in admin_page.content()
    # The emulator saw the login inside TLS only.
    [attempt] = endpoint.journal.logins
    assert (attempt.username, attempt.tls, attempt.accepted) == (MONITOR, True, True)
    assert all(PASSWORD.encode() not in sent for sent in endpoint.journal.before_tls)

    admin_page.get_by_role("link", name="Audit log").last.click()
    entry = admin_page.locator("table tbody tr").first
    expect(entry).to_contain_text("admin")
    expect(entry).to_contain_text("cas08-lab")
    expect(entry).to_contain_text(re.compile(r"monitor.*password", re.IGNORECASE))
    expect(entry).to_contain_text("(set)")
    assert PASSWORD not in admin_page.content()
    screenshot(admin_page, "audit-log")
