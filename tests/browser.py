"""Browser fixtures: Debian's Chromium, driven by Playwright, against pytest-django's live server.

- `browser` (module): one headless Chromium from /usr/bin/chromium (never a browser Playwright
  downloads), started with the flags that keep it off every network but loopback. A missing
  Chromium fails the test with the package to install.
- `page_as` (per test): `page_as("operator")` is a page in a fresh browser context, signed in as
  a new account with that role. Every request that leaves the live server is refused and fails
  the test (the dashboard must work on an intranet with no internet), and so does an uncaught
  script error or a Content Security Policy violation.
- `admin_page`, `operator_page`, `viewer_page`: one such page each.
- `screenshot(page, name)`: writes docs/screenshots/<name>.png (1280×800) only when
  POPC_SCREENSHOTS=1, so ordinary runs leave the work tree alone.

Playwright's sync API keeps an asyncio loop marked as running in the test's thread while it
lives. So the browser lives for one module, not the session (asyncio.run() in the tests after it
would refuse to start), Django is told that its database calls from this thread are safe (they
are: the loop is idle while test code runs), and code that calls asyncio.run() — the scanner —
goes through `off_the_loop`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from popcompliance.accounts.roles import set_role

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = (
    f"The browser tests drive Debian's Chromium at {CHROMIUM}, which is missing: "
    "apt-get install chromium (make test does this when run as root)."
)
# Without the networking flags Chromium phones home at start-up; this machine's network is
# closed and the tests must not depend on anything but loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
VIEWPORT = {"width": 1280, "height": 800}
# Milliseconds a page action or expectation may take before the test fails.
ACTION_TIMEOUT = 10_000
PASSWORD = "browser-test-password"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the tests of one module. Playwright gives it a new, empty profile
    directory (--user-data-dir) of its own, removed when it closes."""
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING, pytrace=False)
    with (
        pytest.MonkeyPatch.context() as patch,
        tempfile.TemporaryDirectory(prefix="popc-chromium-") as downloads,
        sync_playwright() as playwright,
    ):
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        expect.set_options(timeout=ACTION_TIMEOUT)
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            downloads_path=downloads,
        )
        try:
            yield launched
        finally:
            launched.close()


def off_the_loop(function: Callable[..., T], *args: Any) -> T:
    """Call `function` in a thread of its own: asyncio.run() refuses to start in the test's
    thread while Playwright's loop is marked running there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


class Guard:
    """What a page did that fails its test: requests off loopback, uncaught script errors and
    Content Security Policy violations (which Chromium reports on the console)."""

    def __init__(self) -> None:
        self.off_site: list[str] = []
        self.script_errors: list[str] = []
        self.csp_violations: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def route(self, route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            self.off_site.append(request.url)
            route.abort("blockedbyclient")

    def problems(self) -> list[str]:
        return (
            [f"request off loopback: {url}" for url in self.off_site]
            + [f"uncaught script error: {error}" for error in self.script_errors]
            + [f"CSP violation: {text}" for text in self.csp_violations]
        )


def account(role: str, username: str | None = None) -> User:
    """A new account holding `role`, with PASSWORD."""
    user = User.objects.create_user(username or f"{role}-user", password=PASSWORD)
    set_role(user, role)
    return user


def session_cookie(user: User, url: str) -> dict[str, Any]:
    """A signed-in session for `user`, as a cookie for the browser (skips the login form,
    which test_browser.py tests once)."""
    client = Client()
    client.force_login(user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"name": settings.SESSION_COOKIE_NAME, "value": value, "url": url}


@pytest.fixture
def new_page(browser: Browser, live_server: Any) -> Iterator[Callable[[], Page]]:
    """Make anonymous pages, each in its own context, guarded; checks the guards at the end."""
    opened: list[tuple[BrowserContext, Guard]] = []

    def make() -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(ACTION_TIMEOUT)
        guard = Guard()
        context.route("**/*", guard.route)
        page = context.new_page()
        page.on("pageerror", lambda error: guard.script_errors.append(str(error)))
        page.on("console", guard.console)
        opened.append((context, guard))
        return page

    yield make
    problems = [problem for _, guard in opened for problem in guard.problems()]
    for context, _ in opened:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def page_as(new_page: Callable[[], Page], live_server: Any) -> Callable[[str], Page]:
    """`page_as(role)`: a page signed in as a new account with that role, on the overview."""

    def make(role: str) -> Page:
        page = new_page()
        page.context.add_cookies([session_cookie(account(role), live_server.url)])
        page.goto("/")
        return page

    return make


@pytest.fixture
def admin_page(page_as: Callable[[str], Page]) -> Page:
    return page_as("admin")


@pytest.fixture
def operator_page(page_as: Callable[[str], Page]) -> Page:
    return page_as("operator")


@pytest.fixture
def viewer_page(page_as: Callable[[str], Page]) -> Page:
    return page_as("viewer")


def screenshot(page: Page, name: str) -> None:
    """Save what the page shows as docs/screenshots/<name>.png, when POPC_SCREENSHOTS=1."""
    if os.environ.get("POPC_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")
