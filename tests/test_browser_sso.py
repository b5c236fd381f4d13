"""Single sign-on as a person goes through it, in Chromium: the login page's "Sign in with ..."
button, the real provider's login page (tests/oidc_server.py), back on the dashboard signed in
with the role of the provider's roles claim."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from popcompliance.accounts.roles import role_of
from tests.browser import ACTION_TIMEOUT, VIEWPORT, Guard, screenshot
from tests.oidc_server import (
    PROVIDER_PASSWORDS,
    OidcProvider,
    oidc_env,
    oidc_provider,  # noqa: F401  (a fixture)
)
from tests.sso import configure_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A page that may reach only loopback (the dashboard and the provider). Chromium does
    not know the tests' CA, so it is told to accept the provider's certificate; the
    dashboard's own connections to the provider verify it against POPC_OIDC_CA_FILE."""
    context = browser.new_context(
        viewport=VIEWPORT, base_url=live_server.url, ignore_https_errors=True
    )
    context.set_default_timeout(ACTION_TIMEOUT)
    guard = Guard()
    context.route("**/*", guard.route)
    opened = context.new_page()
    opened.on("pageerror", lambda error: guard.script_errors.append(str(error)))
    opened.on("console", guard.console)
    yield opened
    context.close()
    assert not guard.problems(), "\n".join(guard.problems())


def test_the_provider_button_signs_in_through_the_providers_login_page(
    oidc_provider: OidcProvider,  # noqa: F811
    page: Page,
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # Local accounts off: only the button is offered.
    env = oidc_env(oidc_provider, POPC_LOCAL_ACCOUNTS="false")
    configure_sign_in(monkeypatch, settings, **env)
    page.goto("/servers/")
    expect(page.get_by_role("heading", name="Log in to PopCompliance")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    screenshot(page, "sso-login")
    page.get_by_role("link", name="Sign in with Test provider").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Provider username").fill("pat")
    page.get_by_label("Provider password").fill(PROVIDER_PASSWORDS["pat"])
    page.get_by_role("button", name="Sign in to the provider").click()
    # Back on the page asked for at first, signed in as an admin.
    expect(page).to_have_url(f"{live_server.url}/servers/")
    expect(page.locator(".user-menu summary")).to_contain_text("pat (Admin)")
    assert role_of(User.objects.get(username="pat")) == "admin"
