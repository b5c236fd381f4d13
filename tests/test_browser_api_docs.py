"""The API's documentation pages in a real browser (tests/browser.py): Swagger UI and Redoc
draw the schema from our own static files, under the Content Security Policy, and nothing
leaves loopback. Who may open them and what they load: tests/test_api_docs.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import VIEWPORT, Guard, account, screenshot, session_cookie

pytestmark = pytest.mark.slow

# Redoc's sidebar always asks for Redocly's logo from its CDN. The Redoc page's policy refuses
# it (popcompliance.security), Chromium reports that, and Redoc hides the broken image: the one
# report these tests accept, and only on that page.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_swagger_ui_shows_the_operations_and_tries_one_with_the_session(page_as: Any) -> None:
    page = page_as("viewer")
    page.goto("/api/v1/docs/")
    expect(page.locator(".opblock-tag", has_text="servers")).to_be_visible()
    scan = page.locator(".opblock-post", has_text="/api/v1/servers/{id}/scan/")
    expect(scan).to_contain_text("Scan a server now (operator)")
    screenshot(page, "api-docs")
    summary = page.locator(".opblock-get", has_text="/api/v1/summary/")
    summary.locator(".opblock-summary").click()
    summary.get_by_role("button", name="Try it out").click()
    summary.get_by_role("button", name="Execute").click()
    expect(summary.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(summary.locator(".live-responses-table")).to_contain_text('"open_alerts": 0')


@pytest.fixture
def redoc_page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A viewer's page, guarded as tests/browser.py guards every page, except for REDOC_LOGO."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    guard = Guard()
    context.route("**/*", guard.route)
    context.add_cookies([session_cookie(account("viewer"), live_server.url)])
    page = context.new_page()
    page.on("pageerror", lambda error: guard.script_errors.append(str(error)))
    page.on("console", guard.console)
    yield page
    context.close()
    problems = [problem for problem in guard.problems() if REDOC_LOGO not in problem]
    assert not problems, "\n".join(problems)


def test_redoc_shows_the_reference_and_searches_it(redoc_page: Page) -> None:
    redoc_page.goto("/api/v1/redoc/")
    expect(redoc_page.get_by_role("heading", name=re.compile("PopCompliance API"))).to_be_visible()
    expect(redoc_page.get_by_role("heading", name="Scan a server now (operator)")).to_be_visible()
    redoc_page.get_by_placeholder("Search...").fill("acknowledge")
    results = redoc_page.locator("[data-role='search:results']")
    expect(results).to_contain_text("Acknowledge an alert (operator)")
