"""The overview's matrix in a real browser for a fleet serving several client protocols: the
checks under their protocol's or family's heading, each named by its id in a tooltip, and the
checks of an undeclared protocol shown as not applicable (emulators scanned for real)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from popcompliance.inventory.models import Policy
from tests.test_browser import SECURE, add_server, policy, scan_and_record
from tests.test_dashboard_protocols import EVERY_PROTOCOL, GROUPS, LEAKY_EXCHANGE

pytestmark = pytest.mark.slow

__all__ = ["policy"]  # the fixture, imported so this module's tests can ask for it


def test_the_overview_heads_the_checks_by_protocol_with_each_id_in_a_tooltip(
    viewer_page: Page, emulated: Any, policy: Policy
) -> None:
    endpoint = emulated.start(LEAKY_EXCHANGE)
    doors = ("imap", "imaps", "submission", "submissions")
    ports = {f"{door}_port": endpoint.port(door) for door in doors}
    three = add_server("exch03-dublin", endpoint, policy, protocols=EVERY_PROTOCOL, **ports)
    pop3_only = add_server("cas01-london", emulated.start(SECURE), policy)
    scan_and_record(three, pop3_only)
    viewer_page.reload()

    matrix = viewer_page.locator("table.matrix")
    expect(matrix.get_by_role("columnheader").filter(has_text="IMAP4")).to_have_text("IMAP4")
    expect(matrix.locator("thead th[scope=colgroup]")).to_have_text(GROUPS)
    starttls = matrix.locator("thead a[title^='imap.starttls:']")
    expect(starttls).to_have_text("STARTTLS")
    expect(starttls).to_have_attribute("title", re.compile(r"^imap\.starttls: IMAP4 STARTTLS"))
    # The heading stands over its three columns as drawn, not merely in the markup.
    imap = matrix.locator("thead th[scope=colgroup]", has_text="IMAP4").bounding_box()
    for check_id in ("imaps.available", "imap.plaintext_login", "imap.starttls"):
        column = matrix.locator(f"thead a[title^='{check_id}:']").bounding_box()
        assert (
            imap["x"] <= column["x"] and column["x"] + column["width"] <= imap["x"] + imap["width"]
        )

    exposed = matrix.get_by_role("row", name=re.compile("exch03-dublin"))
    expect(exposed).to_contain_text("password in the clear on IMAP4, SMTP submission")
    expect(exposed.locator("td.cell-na")).to_have_count(0)
    undeclared = matrix.get_by_role("row", name=re.compile("cas01-london")).locator("td.cell-na")
    expect(undeclared).to_have_count(6)
    expect(undeclared.first).to_have_attribute(
        "title", "imaps.available: not applicable, IMAP4 is not declared for this server"
    )
    starttls.click()
    expect(viewer_page.get_by_label("Check:", exact=True)).to_have_value("imap.starttls")
