"""API tokens in a real browser: a viewer creates a token from the account menu, a script uses
it against the live server, the viewer revokes it, and the script is refused."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from popcompliance.accounts.models import ApiToken

pytestmark = pytest.mark.slow


def api_status(base_url: str, token: str) -> int:
    """The status of a script's GET /api/v1/servers/ with the token (and no session)."""
    request = urllib.request.Request(
        f"{base_url}/api/v1/servers/", headers={"Authorization": f"Token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_a_viewer_creates_a_token_a_script_uses_it_and_revoking_it_locks_the_script_out(
    viewer_page: Page, live_server: Any
) -> None:
    viewer_page.locator("summary", has_text="viewer-user").click()
    viewer_page.get_by_role("link", name="API tokens").click()
    viewer_page.get_by_label("Name").fill("nightly report")
    viewer_page.get_by_label("Expires after (days)").fill("30")
    viewer_page.get_by_role("button", name="Create token").click()

    shown = viewer_page.locator("#new-token-value")
    expect(shown).to_be_visible()
    token = shown.inner_text().strip()
    assert api_status(live_server.url, token) == 200
    assert token not in str(list(ApiToken.objects.values()))

    viewer_page.goto("/accounts/tokens/")
    row = viewer_page.get_by_role("row", name=re.compile("nightly report"))
    expect(row).to_contain_text(f"{token[:8]}…")
    assert token not in viewer_page.content()
    row.get_by_role("button", name=re.compile("Revoke")).click()
    expect(viewer_page.get_by_role("status")).to_contain_text("revoked")
    assert api_status(live_server.url, token) == 401
