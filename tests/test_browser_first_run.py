"""The overview of a new install in a real browser: the empty fleet's way in, and the one-click
view of the servers that accept passwords in the clear (emulators scanned for real)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from popcompliance.inventory.models import Policy
from tests.test_browser import PLAINTEXT, SECURE, add_server, policy, scan_and_record

pytestmark = pytest.mark.slow

__all__ = ["policy"]  # the fixture, imported so this module's tests can ask for it


def test_an_admin_on_an_empty_install_goes_from_the_overview_to_the_server_form(
    admin_page: Page,
) -> None:
    empty = admin_page.locator(".empty-state")
    expect(empty).to_contain_text("No server is monitored yet")
    expect(admin_page.get_by_text("No server matches these filters")).to_have_count(0)
    # Nothing above the matrix's heading pushes it out of the first screen.
    heading = admin_page.get_by_role("heading", name="Servers and checks")
    assert heading.bounding_box()["y"] < admin_page.viewport_size["height"]
    admin_page.get_by_role("link", name="Import a CSV").click()
    expect(admin_page).to_have_url(re.compile(re.escape(reverse("inventory:server_import"))))
    admin_page.go_back()
    admin_page.get_by_role("link", name="Add your first server").click()
    expect(admin_page).to_have_url(re.compile(re.escape(reverse("inventory:server_add"))))
    expect(admin_page.get_by_role("button", name="Add server")).to_be_visible()


def test_a_viewer_on_an_empty_install_is_not_offered_to_add_servers(viewer_page: Page) -> None:
    expect(viewer_page.locator(".empty-state")).to_contain_text("An administrator adds them")
    expect(viewer_page.get_by_role("link", name="Add your first server")).to_have_count(0)


def test_one_click_shows_the_servers_accepting_passwords_in_the_clear(
    viewer_page: Page, emulated: Any, policy: Policy
) -> None:
    exposed = add_server("cas02-london", emulated.start(PLAINTEXT), policy)
    safe = add_server("cas01-london", emulated.start(SECURE), policy)
    scan_and_record(exposed, safe)
    viewer_page.reload()
    tile = viewer_page.get_by_role("link", name=re.compile("Accepts passwords in the clear"))
    expect(tile).to_contain_text("1")
    tile.click()
    rows = viewer_page.locator("table.matrix tbody th[scope=row] a")
    expect(rows).to_have_text(["cas02-london"])
    expect(viewer_page.get_by_label("Exposure")).to_have_value("cleartext")


def test_every_page_links_a_favicon_that_is_served_under_the_content_security_policy(
    viewer_page: Page,
) -> None:
    icons = viewer_page.locator("head link[rel~=icon], head link[rel=apple-touch-icon]")
    expect(icons).to_have_count(3)
    types = {"svg": "image/svg+xml", "ico": "image/", "png": "image/png"}
    for href in icons.evaluate_all("links => links.map(link => link.href)"):
        response = viewer_page.request.get(href)
        assert response.status == 200, href
        assert response.headers["content-type"].startswith(types[href.rsplit(".", 1)[1]])
        assert response.body()[:4] in (b"<svg", b"\x00\x00\x01\x00", b"\x89PNG")
