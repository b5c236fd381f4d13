"""The server page's evidence in a real browser: a plaintext finding opens on what anyone on the
same Wi-Fi sees, the other checks' conversations open on a click, and redactions read as such
(an emulated Exchange taking passwords before TLS on all three protocols, scanned for real)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from popcompliance.inventory.models import Policy
from tests.browser import screenshot
from tests.test_browser import add_server, policy, scan_and_record
from tests.test_dashboard_protocols import EVERY_PROTOCOL
from tests.test_evidence import LEAKY

pytestmark = pytest.mark.slow

__all__ = ["policy"]  # the fixture, imported so this module's tests can ask for it


def test_a_plaintext_finding_shows_its_conversation_and_the_rest_open_on_a_click(
    viewer_page: Page, emulated: Any, policy: Policy
) -> None:
    endpoint = emulated.start(LEAKY)
    doors = ("imap", "imaps", "submission", "submissions")
    ports = {f"{door}_port": endpoint.port(door) for door in doors}
    server = add_server("exch04-leeds", endpoint, policy, protocols=EVERY_PROTOCOL, **ports)
    scan_and_record(server)
    viewer_page.goto(server.get_absolute_url())

    pop3 = viewer_page.locator("#check-pop3\\.plaintext_login details.evidence")
    expect(pop3.locator("summary")).to_have_text("What anyone on the same Wi-Fi sees")
    conversation = pop3.locator("pre.transcript")
    expect(conversation).to_be_visible()
    expect(conversation).to_contain_text(
        re.compile(r"C: USER popcompliance-probe-[0-9a-f]{12}\s+S: \+OK")
    )

    ntlm = viewer_page.locator("#check-auth\\.ntlm_disclosure details.evidence")
    expect(ntlm.locator("pre.transcript")).to_be_hidden()
    ntlm.locator("summary").click()
    expect(ntlm.locator("pre.transcript")).to_be_visible()
    expect(ntlm.locator(".redacted").first).to_have_text("[redacted]")  # the NEGOTIATE we sent
    pop3.scroll_into_view_if_needed()
    screenshot(viewer_page, "evidence")
