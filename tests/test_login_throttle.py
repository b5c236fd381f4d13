"""Login throttling (popcompliance.accounts.throttle, django-axes): failures per username and
client address and per address, the lockout page, its end, the Django admin's login, the
password change, unlocking from the users page, and the client address behind reverse proxies.

The cast: alice (a viewer, the account under attack) signing in from her desk or from an
attacker's address; mallory (a viewer who guesses alice's password); an admin and a viewer
on the users page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from playwright.sync_api import expect

from popcompliance.accounts.throttle import client_ip
from popcompliance.audit.models import AuditEntry
from tests.browser import account as browser_account
from tests.people import client_as, make_user, token_for

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
ADMIN_LOGIN = reverse("admin:login")
USERS = reverse("accounts:users")
PASSWORD_CHANGE = reverse("accounts:password_change")
PASSWORD = "s3cret-pass"
LIMIT = settings.AXES_FAILURE_LIMIT
ADDRESS_LIMIT = settings.POPC_LOGIN_ADDRESS_FAILURE_LIMIT
LOCKOUT = settings.AXES_COOLOFF_TIME
DESK, ATTACKER, PROXY = "192.0.2.10", "198.51.100.66", "192.0.2.1"


@pytest.fixture
def alice() -> User:
    return make_user("viewer", "alice", password=PASSWORD)


def sign_in(
    password: str, username: str = "alice", *, address: str = DESK, url: str = LOGIN, **meta: str
) -> HttpResponse:
    form = {"username": username, "password": password}
    response: HttpResponse = Client(REMOTE_ADDR=address, **meta).post(url, form)
    return response


def fail(times: int, username: str = "alice", **where: str) -> HttpResponse:
    """`times` wrong passwords; the last response."""
    for _ in range(times):
        response = sign_in("wrong", username, **where)
    return response


def signed_in(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("dashboard:overview")


def is_lockout_page(response: HttpResponse) -> bool:
    page = response.content.decode()
    return response.status_code == 429 and "Too many failed sign-in attempts" in page


def test_failures_below_the_limit_still_allow_the_right_password_which_forgets_them(alice):
    assert fail(LIMIT - 1).status_code == 200
    assert signed_in(sign_in(PASSWORD))
    # Forgotten: another LIMIT - 1 failures are allowed again.
    assert fail(LIMIT - 1).status_code == 200
    assert signed_in(sign_in(PASSWORD))


def test_the_limit_locks_the_pair_out_even_with_the_right_password(alice):
    assert is_lockout_page(fail(LIMIT))
    response = sign_in(PASSWORD)
    assert is_lockout_page(response)
    page = response.content.decode()
    assert f"Try again in {LOCKOUT.seconds // 60} minutes" in page
    assert "ask an admin to unlock the account" in page
    assert response["Retry-After"] == str(LOCKOUT.seconds)
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_the_lockout_page_names_the_configured_wait(alice):
    with override_settings(AXES_COOLOFF_TIME=timedelta(minutes=1)):
        assert "Try again in 1 minute." in fail(LIMIT).content.decode()


def test_another_address_still_signs_in_as_the_locked_out_user(alice):
    fail(LIMIT, address=ATTACKER)
    assert is_lockout_page(sign_in(PASSWORD, address=ATTACKER))
    assert signed_in(sign_in(PASSWORD, address=DESK))


def test_the_lockout_ends_after_the_lockout_minutes(alice):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        fail(LIMIT)
    with time_machine.travel(start + LOCKOUT + timedelta(seconds=1), tick=False):
        assert signed_in(sign_in(PASSWORD))


def test_a_try_while_locked_out_starts_the_wait_again(alice):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        fail(LIMIT)
    with time_machine.travel(start + LOCKOUT - timedelta(minutes=1), tick=False):
        assert is_lockout_page(sign_in(PASSWORD))
    with time_machine.travel(start + LOCKOUT + timedelta(seconds=1), tick=False):
        assert is_lockout_page(sign_in(PASSWORD))
    with time_machine.travel(start + 2 * LOCKOUT + timedelta(seconds=2), tick=False):
        assert signed_in(sign_in(PASSWORD))


def alice_session(address: str = ATTACKER) -> Client:
    """A client holding alice's session (stolen, say) from `address`."""
    client = Client(REMOTE_ADDR=address)
    client.force_login(User.objects.get(username="alice"))
    return client


def change_password(client: Client, old: str) -> HttpResponse:
    form = {"old_password": old, "new_password1": "n3w-Pass-2026", "new_password2": "n3w-Pass-2026"}
    response: HttpResponse = client.post(PASSWORD_CHANGE, form)
    return response


def test_wrong_current_passwords_count_as_failed_sign_ins_and_end_the_session(alice):
    stolen = alice_session()
    for _ in range(LIMIT - 1):
        response = change_password(stolen, "guess")
        assert response.status_code == 200
        assert "Your old password was entered incorrectly" in response.content.decode()
    assert is_lockout_page(change_password(stolen, "guess"))
    # The session is over and the account is locked out from that address, right password
    # or not; alice at her desk is not.
    assert stolen.get(PASSWORD_CHANGE).status_code == 302
    assert is_lockout_page(sign_in(PASSWORD, address=ATTACKER))
    assert signed_in(sign_in(PASSWORD, address=DESK))
    assert User.objects.get(username="alice").check_password(PASSWORD)


def test_a_locked_out_account_cannot_change_its_password_from_that_address(alice):
    fail(LIMIT, address=ATTACKER)
    stolen = alice_session(ATTACKER)
    assert is_lockout_page(change_password(stolen, PASSWORD))
    assert User.objects.get(username="alice").check_password(PASSWORD)
    assert change_password(alice_session(DESK), PASSWORD).status_code == 302
    assert User.objects.get(username="alice").check_password("n3w-Pass-2026")


def test_the_admin_site_login_is_throttled_too():
    User.objects.create_superuser("root", password=PASSWORD)
    assert is_lockout_page(fail(LIMIT, "root", url=ADMIN_LOGIN))
    assert is_lockout_page(sign_in(PASSWORD, "root", url=ADMIN_LOGIN))
    # One count for both login pages: the dashboard's refuses that pair as well.
    assert is_lockout_page(sign_in(PASSWORD, "root"))
    response = sign_in(PASSWORD, "root", address=ATTACKER, url=ADMIN_LOGIN)
    assert response.status_code == 302


def test_an_address_spraying_usernames_is_locked_out_for_every_username(alice):
    for number in range(ADDRESS_LIMIT - 1):
        fail(1, f"guess{number}", address=ATTACKER)
    assert signed_in(sign_in(PASSWORD, address=ATTACKER))
    assert is_lockout_page(fail(1, "one-guess-too-many", address=ATTACKER))
    assert is_lockout_page(sign_in(PASSWORD, address=ATTACKER))
    assert signed_in(sign_in(PASSWORD, address=DESK))


def test_signing_in_as_oneself_does_not_forget_failures_against_another_account(alice):
    make_user("viewer", "mallory", password="mallory-pass")
    fail(LIMIT - 1, address=ATTACKER)
    assert signed_in(sign_in("mallory-pass", "mallory", address=ATTACKER))
    assert is_lockout_page(fail(1, address=ATTACKER))


def test_api_tokens_are_not_throttled(alice):
    fail(ADDRESS_LIMIT, address=ATTACKER)
    client = Client(REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
    assert client.get(reverse("api:summary")).status_code == 200


def test_an_admin_sees_a_locked_out_account_and_unlocks_it(alice):
    fail(LIMIT)
    admin = client_as("admin")
    response = admin.get(USERS)
    assert [(u.username, locked) for u, _, locked in response.context["rows"]] == [
        ("admin-user", False),
        ("alice", True),
    ]
    assert "Locked out" in response.content.decode()
    response = admin.post(reverse("accounts:user_unlock", args=[alice.pk]))
    assert response.url == USERS
    assert signed_in(sign_in(PASSWORD))
    unlocked = AuditEntry.objects.get(action="unlocked")
    assert (unlocked.actor_label, unlocked.object_id, unlocked.object_label) == (
        "admin-user",
        alice.pk,
        "alice",
    )


def test_an_admin_sees_a_locked_out_address_and_unlocks_it(alice):
    fail(ADDRESS_LIMIT, "guess", address=ATTACKER)
    admin = client_as("admin")
    assert admin.get(USERS).context["locked_addresses"] == [ATTACKER]
    admin.post(reverse("accounts:address_unlock"), {"address": ATTACKER})
    assert signed_in(sign_in(PASSWORD, address=ATTACKER))
    unlocked = AuditEntry.objects.get(action="unlocked")
    # From where: the admin's own address (the test client's), not the one unlocked.
    assert (unlocked.object_label, unlocked.remote_address) == (
        f"sign-ins from {ATTACKER}",
        "127.0.0.1",
    )
    assert admin.get(USERS).context["locked_addresses"] == []


def test_lockouts_add_no_queries_to_the_users_page(django_assert_num_queries):
    admin = client_as("admin")
    for name in ("bob", "carol", "dave"):
        make_user("viewer", name, password=PASSWORD)
        fail(LIMIT, name, address=ATTACKER)
    # As in test_accounts: session, user, role, count, page, groups, locked-out accounts and
    # addresses.
    with django_assert_num_queries(8):
        response = admin.get(USERS)
    assert [locked for _, _, locked in response.context["rows"]] == [False, True, True, True]
    assert response.context["locked_addresses"] == []


def test_unlocking_an_address_needs_an_address():
    url = reverse("accounts:address_unlock")
    response = client_as("admin").post(url, {"address": "nope"}, follow=True)
    assert response.redirect_chain == [(USERS, 302)]
    assert "That is not an IP address." in response.content.decode()
    assert not AuditEntry.objects.filter(action="unlocked").exists()


def test_a_viewer_cannot_unlock(alice):
    fail(LIMIT)
    viewer = client_as("viewer")
    assert viewer.post(reverse("accounts:user_unlock", args=[alice.pk])).status_code == 403
    assert viewer.post(reverse("accounts:address_unlock"), {"address": DESK}).status_code == 403
    assert not AuditEntry.objects.filter(action="unlocked").exists()
    assert is_lockout_page(sign_in(PASSWORD))


def test_unlocking_is_a_post(alice):
    admin = client_as("admin")
    assert admin.get(reverse("accounts:user_unlock", args=[alice.pk])).status_code == 405
    assert admin.get(reverse("accounts:address_unlock")).status_code == 405


def test_x_forwarded_for_is_ignored_without_trusted_proxies(alice):
    fail(LIMIT, address=ATTACKER, HTTP_X_FORWARDED_FOR="203.0.113.1")
    forged = sign_in(PASSWORD, address=ATTACKER, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert is_lockout_page(forged)


@override_settings(POPC_TRUSTED_PROXY_COUNT=1)
def test_x_forwarded_for_names_the_client_behind_one_proxy(alice):
    fail(LIMIT, address=PROXY, HTTP_X_FORWARDED_FOR=ATTACKER)
    # The attacker writes what it likes left of the address the proxy appends.
    spoofed = f"{DESK}, {ATTACKER}"
    assert is_lockout_page(sign_in(PASSWORD, address=PROXY, HTTP_X_FORWARDED_FOR=spoofed))
    assert signed_in(sign_in(PASSWORD, address=PROXY, HTTP_X_FORWARDED_FOR=DESK))


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.1", PROXY),
        (1, "203.0.113.1, 203.0.113.2", "203.0.113.2"),
        (2, "203.0.113.1, 203.0.113.2", "203.0.113.1"),
        (2, "203.0.113.2", PROXY),
        (1, "", PROXY),
        (1, "not-an-address", PROXY),
    ],
)
def test_the_client_address(proxies, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(POPC_TRUSTED_PROXY_COUNT=proxies):
        assert client_ip(request) == expected


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_lockout_page_in_a_browser(new_page: Any) -> None:
    """In Chromium, under the strict Content Security Policy (new_page fails on a violation)."""
    browser_account("viewer", "alice")
    page = new_page()
    page.goto(LOGIN)
    for _ in range(LIMIT):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Too many failed sign-in attempts")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("ask an admin to unlock the account")
